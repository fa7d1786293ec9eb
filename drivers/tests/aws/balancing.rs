//! Application load balancing: load balancers, target groups and listeners.

use fastcart_engine::{get_azs, r#ref, select, CreateRequest, ErrorKind, ResourceSpec, StackSpec};
use serde_json::{json, Map, Value};

use crate::common::{cloud, lifecycle, Cloud};

/// A VPC with two public subnets in two zones and a group for the load
/// balancer: what an internet-facing load balancer needs.
fn network(c: &Cloud, cidr: u8) -> StackSpec {
    let mut s = c.stack();
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", format!("10.{cidr}.0.0/16")));
    for i in 0..2 {
        s.add(
            ResourceSpec::new(format!("Public{i}"), "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", format!("10.{cidr}.{i}.0/24"))
                .prop("AvailabilityZone", select(i, get_azs())),
        );
    }
    s.add(
        ResourceSpec::new("AlbGroup", "AWS::EC2::SecurityGroup")
            .prop("GroupDescription", "load balancer")
            .prop("VpcId", r#ref("Vpc")),
    );
    s
}

fn target_group(c: &Cloud, port: u16, interval: u16) -> ResourceSpec {
    ResourceSpec::new("Tg", "AWS::ElasticLoadBalancingV2::TargetGroup")
        .prop("Name", c.name("tg"))
        .prop("Protocol", "HTTP")
        .prop("Port", port)
        .prop("VpcId", r#ref("Vpc"))
        .prop("TargetType", "ip")
        .prop("HealthCheckPath", "/health")
        .prop("HealthCheckIntervalSeconds", interval)
        .prop("HealthCheckTimeoutSeconds", 5)
        .prop("HealthyThresholdCount", 2)
        .prop("UnhealthyThresholdCount", 2)
        .prop("Matcher", json!({"HttpCode": "200"}))
}

fn load_balancer(c: &Cloud, name: &str, team: &str) -> ResourceSpec {
    ResourceSpec::new("Alb", "AWS::ElasticLoadBalancingV2::LoadBalancer")
        .prop("Name", c.name(name))
        .prop("Scheme", "internet-facing")
        .prop("Type", "application")
        .prop("Subnets", json!([r#ref("Public0"), r#ref("Public1")]))
        .prop("SecurityGroups", json!([r#ref("AlbGroup")]))
        .prop("Tags", json!([{"Key": "Team", "Value": team}]))
}

fn listener(port: u16) -> ResourceSpec {
    ResourceSpec::new("Http", "AWS::ElasticLoadBalancingV2::Listener")
        .prop("LoadBalancerArn", r#ref("Alb"))
        .prop("Port", port)
        .prop("Protocol", "HTTP")
        .prop(
            "DefaultActions",
            json!([{"Type": "forward", "TargetGroupArn": r#ref("Tg")}]),
        )
}

/// A load balancer and a target group are found by the name the stack
/// gives them (their physical ids are ARNs), with their ownership tags.
#[tokio::test]
async fn load_balancers_and_target_groups_are_found_by_name() {
    let c = cloud("albkey").await;
    let mut s = network(&c, 65);
    // The VPC's and the group's keys include their `Name` tags.
    for r in &mut s.resources {
        if r.logical_id == "Vpc" || r.logical_id == "AlbGroup" {
            let name = c.name(&r.logical_id.to_lowercase());
            r.properties
                .insert("Tags".into(), json!([{"Key": "Name", "Value": name}]));
        }
    }
    s.add(target_group(&c, 80, 30).prop("Tags", json!([{"Key": "Team", "Value": "orders"}])));
    s.add(load_balancer(&c, "alb", "orders"));
    crate::keys::found_by_key(&c, &s).await;
}

#[tokio::test]
async fn target_group_lifecycle() {
    let c = cloud("albtg").await;
    let stack = |port, interval| {
        let mut s = network(&c, 61);
        s.add(target_group(&c, port, interval));
        s
    };
    lifecycle(
        &c,
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "Tg",
        &stack(5000, 30),
        Some(&stack(5000, 20)),
        Some(&stack(5001, 20)),
    )
    .await;
}

#[tokio::test]
async fn load_balancer_and_listener() {
    let c = cloud("alb").await;
    let stack = |team: &str, port| {
        let mut s = network(&c, 62);
        s.add(target_group(&c, 5000, 30));
        s.add(load_balancer(&c, "alb", team));
        s.add(listener(port));
        s
    };
    lifecycle(
        &c,
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Alb",
        &stack("orders", 80),
        Some(&stack("payments", 80)),
        None,
    )
    .await;
    // The listener: created, read back, moved to another port in place.
    lifecycle(
        &c,
        "AWS::ElasticLoadBalancingV2::Listener",
        "Http",
        &stack("orders", 80),
        Some(&stack("orders", 8080)),
        None,
    )
    .await;
}

/// A listener create whose answer was lost is sent again: the second finds
/// the first's listener by its port and returns it; a listener on that port
/// with other actions is an error naming it.
#[tokio::test]
async fn a_listener_already_on_its_port_is_adopted_only_when_identical() {
    let c = cloud("albport").await;
    let mut s = network(&c, 63);
    s.add(target_group(&c, 5000, 30));
    s.add(load_balancer(&c, "albport", "orders"));
    s.add(listener(80));
    c.converge(&s).await;
    let first = c.physical_id(&s, "Http");
    let state = c.session(&s).state().clone();
    let lb = state.resources["Alb"].physical_id.clone();
    let tg = state.resources["Tg"].physical_id.clone();
    let driver = c.driver("AWS::ElasticLoadBalancingV2::Listener");
    let props = |port: u16, tg: &str| -> Map<String, Value> {
        json!({
            "LoadBalancerArn": lb,
            "Port": port,
            "Protocol": "HTTP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg}],
        })
        .as_object()
        .unwrap()
        .clone()
    };
    let tags = Default::default();
    let (same, other) = (props(80, &tg), props(80, &format!("{tg}-other")));
    let [again, clash] = [&same, &other].map(|p| CreateRequest {
        logical_id: "Http",
        properties: p,
        tags: &tags,
        idempotency_token: "t",
        context: &c.ctx,
    });
    let again = driver.create(again).await.unwrap();
    assert_eq!(
        again.physical_id, first,
        "the listener on port 80 is this one"
    );
    let err = driver.create(clash).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err}");
    assert!(err.message.contains(&first), "{err}");
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

/// The attributes other resources and outputs use are in the state.
#[tokio::test]
async fn a_load_balancer_publishes_its_dns_name_and_full_names() {
    let c = cloud("albattr").await;
    let mut s = network(&c, 64);
    s.add(target_group(&c, 5000, 30));
    s.add(load_balancer(&c, "albattr", "orders"));
    s.add(listener(80));
    c.converge(&s).await;
    let state = c.session(&s).state().clone();
    let alb = &state.resources["Alb"];
    assert!(
        alb.attributes["DNSName"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{:?}",
        alb.attributes
    );
    assert!(
        alb.attributes["LoadBalancerFullName"]
            .as_str()
            .is_some_and(|f| f.starts_with("app/")),
        "{:?}",
        alb.attributes
    );
    let tg = &state.resources["Tg"];
    assert!(
        tg.attributes["TargetGroupFullName"]
            .as_str()
            .is_some_and(|f| f.starts_with("targetgroup/")),
        "{:?}",
        tg.attributes
    );
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}
