//! EC2 routing and security groups: route tables, routes, subnet
//! associations and security groups, each with the network it needs.

use aws_sdk_ec2::types::{IpPermission, IpRange};
use fastcart_engine::{get_att, r#ref, ResourceHandle, ResourceSpec, StackSpec};
use serde_json::{json, Value};

use crate::common::{cloud, lifecycle, Cloud};

const VPC: &str = "AWS::EC2::VPC";
const SUBNET: &str = "AWS::EC2::Subnet";
const ROUTE_TABLE: &str = "AWS::EC2::RouteTable";
const ROUTE: &str = "AWS::EC2::Route";
const ASSOCIATION: &str = "AWS::EC2::SubnetRouteTableAssociation";
const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

fn vpc(logical_id: &str, cidr: &str) -> ResourceSpec {
    ResourceSpec::new(logical_id, VPC).prop("CidrBlock", cidr)
}

/// A VPC with an internet gateway attached to it.
fn internet(c: &Cloud, s: &mut StackSpec, cidr: &str) {
    s.add(vpc("Vpc", cidr));
    s.add(
        ResourceSpec::new("Igw", "AWS::EC2::InternetGateway")
            .prop("Tags", json!([{"Key": "Name", "Value": c.name("igw")}])),
    );
    s.add(
        ResourceSpec::new("Attach", "AWS::EC2::VPCGatewayAttachment")
            .prop("VpcId", r#ref("Vpc"))
            .prop("InternetGatewayId", r#ref("Igw")),
    );
}

/// Destroys everything the test made.
async fn destroy(c: &Cloud, s: &StackSpec) {
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn route_table() {
    let c = cloud("rtb").await;
    let stack = |vpc_id: &str, team: &str| {
        let mut s = c.stack();
        s.add(vpc("VpcA", "10.21.0.0/16"));
        s.add(vpc("VpcB", "10.22.0.0/16"));
        s.add(
            ResourceSpec::new("Table", ROUTE_TABLE)
                .prop("VpcId", r#ref(vpc_id))
                .prop(
                    "Tags",
                    json!([
                        {"Key": "Name", "Value": c.name("rtb")},
                        {"Key": "Team", "Value": team}
                    ]),
                ),
        );
        s
    };
    lifecycle(
        &c,
        ROUTE_TABLE,
        "Table",
        &stack("VpcA", "blue"),
        Some(&stack("VpcA", "green")),
        Some(&stack("VpcB", "green")),
    )
    .await;
}

/// 0.0.0.0/0 through the internet gateway, then through a NAT gateway (an
/// in-place `ReplaceRoute`), then another destination (a new route).
#[tokio::test]
async fn route() {
    let c = cloud("route").await;
    let stack = |destination: &str, via_nat: bool| {
        let mut s = c.stack();
        internet(&c, &mut s, "10.23.0.0/16");
        s.add(
            ResourceSpec::new("Public", SUBNET)
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", "10.23.1.0/24"),
        );
        s.add(
            ResourceSpec::new("Eip", "AWS::EC2::EIP")
                .prop("Domain", "vpc")
                .depends_on("Attach"),
        );
        s.add(
            ResourceSpec::new("Nat", "AWS::EC2::NatGateway")
                .prop("SubnetId", r#ref("Public"))
                .prop("AllocationId", get_att("Eip", "AllocationId")),
        );
        s.add(ResourceSpec::new("Table", ROUTE_TABLE).prop("VpcId", r#ref("Vpc")));
        let route = ResourceSpec::new("Route", ROUTE)
            .prop("RouteTableId", r#ref("Table"))
            .prop("DestinationCidrBlock", destination);
        s.add(if via_nat {
            route.prop("NatGatewayId", r#ref("Nat"))
        } else {
            // A route to an internet gateway needs it attached first.
            route.prop("GatewayId", r#ref("Igw")).depends_on("Attach")
        });
        s
    };
    lifecycle(
        &c,
        ROUTE,
        "Route",
        &stack("0.0.0.0/0", false),
        Some(&stack("0.0.0.0/0", true)),
        Some(&stack("192.168.0.0/16", true)),
    )
    .await;
}

/// Moving the association to another table is a replacement: the new one
/// takes the subnet over, then the old one is gone.
#[tokio::test]
async fn subnet_route_table_association() {
    let c = cloud("rtbassoc").await;
    let stack = |table: &str| {
        let mut s = c.stack();
        s.add(vpc("Vpc", "10.24.0.0/16"));
        s.add(
            ResourceSpec::new("Subnet", SUBNET)
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", "10.24.1.0/24"),
        );
        s.add(ResourceSpec::new("TableA", ROUTE_TABLE).prop("VpcId", r#ref("Vpc")));
        s.add(ResourceSpec::new("TableB", ROUTE_TABLE).prop("VpcId", r#ref("Vpc")));
        s.add(
            ResourceSpec::new("Assoc", ASSOCIATION)
                .prop("SubnetId", r#ref("Subnet"))
                .prop("RouteTableId", r#ref(table)),
        );
        s
    };
    lifecycle(
        &c,
        ASSOCIATION,
        "Assoc",
        &stack("TableA"),
        None,
        Some(&stack("TableB")),
    )
    .await;
}

/// Routes and associations take no tags, so a create that finds its route
/// or association already there (made by a lost attempt, or by hand) adopts
/// it instead of failing.
#[tokio::test]
async fn existing_routes_and_associations_are_adopted() {
    let c = cloud("rtbadopt").await;
    let mut base = c.stack();
    internet(&c, &mut base, "10.25.0.0/16");
    base.add(
        ResourceSpec::new("Subnet", SUBNET)
            .prop("VpcId", r#ref("Vpc"))
            .prop("CidrBlock", "10.25.1.0/24"),
    );
    base.add(ResourceSpec::new("Table", ROUTE_TABLE).prop("VpcId", r#ref("Vpc")));
    c.converge(&base).await;
    let table = c.physical_id(&base, "Table");
    let igw = c.physical_id(&base, "Igw");
    let subnet = c.physical_id(&base, "Subnet");
    c.clients
        .ec2
        .create_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .expect("route made by hand");
    let assoc = c
        .clients
        .ec2
        .associate_route_table()
        .route_table_id(&table)
        .subnet_id(&subnet)
        .send()
        .await
        .expect("association made by hand")
        .association_id()
        .expect("an association id")
        .to_string();

    let mut full = base.clone();
    full.add(
        ResourceSpec::new("Route", ROUTE)
            .prop("RouteTableId", r#ref("Table"))
            .prop("DestinationCidrBlock", "0.0.0.0/0")
            .prop("GatewayId", r#ref("Igw"))
            .depends_on("Attach"),
    );
    full.add(
        ResourceSpec::new("Assoc", ASSOCIATION)
            .prop("SubnetId", r#ref("Subnet"))
            .prop("RouteTableId", r#ref("Table")),
    );
    c.converge(&full).await;
    assert_eq!(c.physical_id(&full, "Route"), format!("{table}|0.0.0.0/0"));
    assert_eq!(c.physical_id(&full, "Assoc"), assoc);
    destroy(&c, &full).await;
}

/// A group's stack: `App` allows 8080 (or `port`) from the VPC's range and
/// only HTTPS out (so the allow-all egress rule AWS adds must go); with
/// `from_peer`, also PostgreSQL from the `Peer` group. `Peer` spells its rules
/// the loose ways templates do (`-1` as a number, ports on "all protocols").
fn security_groups(c: &Cloud, name: &str, port: u16, from_peer: bool) -> StackSpec {
    let mut s = c.stack();
    s.add(vpc("Vpc", "10.26.0.0/16"));
    s.add(
        ResourceSpec::new("Peer", SECURITY_GROUP)
            .prop("GroupDescription", "the peer")
            .prop("VpcId", r#ref("Vpc"))
            .prop(
                "SecurityGroupIngress",
                json!([{"IpProtocol": -1, "FromPort": -1, "ToPort": -1, "CidrIp": "10.26.0.0/16"}]),
            )
            .prop(
                "SecurityGroupEgress",
                json!([{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}]),
            ),
    );
    let mut ingress = vec![json!({
        "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": "10.0.0.0/16"
    })];
    if from_peer {
        ingress.push(json!({
            "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "SourceSecurityGroupId": get_att("Peer", "GroupId"),
            "Description": "from the peer"
        }));
    }
    s.add(
        ResourceSpec::new("App", SECURITY_GROUP)
            .prop("GroupName", c.name(name))
            .prop("GroupDescription", "app servers")
            .prop("VpcId", r#ref("Vpc"))
            .prop("SecurityGroupIngress", Value::Array(ingress))
            .prop(
                "SecurityGroupEgress",
                json!([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0", "Description": "HTTPS"}]),
            )
            .prop("Tags", json!([{"Key": "Name", "Value": c.name(name)}])),
    );
    s
}

#[tokio::test]
async fn security_group() {
    let c = cloud("sg").await;
    lifecycle(
        &c,
        SECURITY_GROUP,
        "App",
        &security_groups(&c, "app", 8080, false),
        Some(&security_groups(&c, "app", 8081, true)),
        Some(&security_groups(&c, "app-b", 8081, true)),
    )
    .await;
}

#[tokio::test]
async fn a_rule_added_behind_fastcarts_back_is_a_difference() {
    let c = cloud("sg-drift").await;
    let s = security_groups(&c, "app", 8080, true);
    c.converge(&s).await;
    let id = c.physical_id(&s, "App");
    c.clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .expect("rule added by hand");
    let plan = c.plan(&s).await;
    assert!(
        plan.has_changes(),
        "the extra rule went unnoticed:\n{}",
        fastcart_engine::render_plan(&plan)
    );
    // Applying again takes it away.
    c.converge(&s).await;
    let seen = c
        .read(SECURITY_GROUP, &id)
        .await
        .expect("the group still exists");
    let ingress = seen.properties["SecurityGroupIngress"]
        .as_array()
        .expect("a rule list")
        .clone();
    assert_eq!(ingress.len(), 2, "{ingress:?}");
    assert!(
        !ingress.iter().any(|r| r["FromPort"] == json!(22)),
        "{ingress:?}"
    );
    destroy(&c, &s).await;
}

#[tokio::test]
async fn reading_many_security_groups_is_one_request() {
    let c = cloud("sg-batch").await;
    let mut s = c.stack();
    s.add(vpc("Vpc", "10.27.0.0/16"));
    for i in 0..5 {
        s.add(
            ResourceSpec::new(format!("Group{i}"), SECURITY_GROUP)
                .prop("GroupDescription", format!("group {i}"))
                .prop("VpcId", r#ref("Vpc"))
                .prop(
                    "SecurityGroupIngress",
                    json!([{"IpProtocol": "tcp", "FromPort": 8000 + i, "ToPort": 8000 + i, "CidrIp": "10.27.0.0/16"}]),
                ),
        );
    }
    c.converge(&s).await;
    let mut handles: Vec<ResourceHandle> = (0..5)
        .map(|i| {
            let logical_id = format!("Group{i}");
            ResourceHandle {
                physical_id: c.physical_id(&s, &logical_id),
                logical_id,
                properties: serde_json::Map::new(),
                attributes: Default::default(),
            }
        })
        .collect();
    // One that is gone: a filter leaves it out instead of failing the call.
    handles.push(ResourceHandle {
        logical_id: "Gone".into(),
        physical_id: "sg-0123456789abcdef0".into(),
        properties: serde_json::Map::new(),
        attributes: Default::default(),
    });
    let before = c.clients.requests.get("ec2:DescribeSecurityGroups");
    let seen = c
        .driver(SECURITY_GROUP)
        .read(&handles)
        .await
        .expect("read security groups");
    assert_eq!(
        c.clients.requests.get("ec2:DescribeSecurityGroups") - before,
        1
    );
    assert_eq!(seen.len(), 6);
    assert!(seen[..5].iter().all(Option::is_some), "{seen:?}");
    assert!(seen[5].is_none());
    for (i, o) in seen[..5].iter().enumerate() {
        let ingress = &o.as_ref().expect("read").properties["SecurityGroupIngress"];
        assert_eq!(
            ingress,
            &json!([{"IpProtocol": "tcp", "FromPort": 8000 + i, "ToPort": 8000 + i, "CidrIp": "10.27.0.0/16"}])
        );
    }
    destroy(&c, &s).await;
}
