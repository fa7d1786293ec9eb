//! The edge of the network: internet gateways and their attachments,
//! subnets, Elastic IPs and NAT gateways.

use std::collections::BTreeMap;

use fastcart_engine::{
    get_att, get_azs, r#ref, select, CreateRequest, Driver, ResourceHandle, ResourceSpec, StackSpec,
};
use serde_json::{json, Map, Value};

use crate::common::{cloud, lifecycle};

fn name_tag(name: String) -> Value {
    json!([{"Key": "Name", "Value": name}])
}

#[tokio::test]
async fn internet_gateway() {
    let c = cloud("igw").await;
    let igw = |name: &str| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Igw", "AWS::EC2::InternetGateway")
                .prop("Tags", name_tag(c.name(name))),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::EC2::InternetGateway",
        "Igw",
        &igw("igw"),
        Some(&igw("igw-renamed")),
        None,
    )
    .await;
}

#[tokio::test]
async fn gateway_attachment() {
    let c = cloud("igwatt").await;
    let attached_to = |vpc: &str| {
        let mut s = c.stack();
        s.add(ResourceSpec::new("VpcA", "AWS::EC2::VPC").prop("CidrBlock", "10.10.0.0/16"));
        s.add(ResourceSpec::new("VpcB", "AWS::EC2::VPC").prop("CidrBlock", "10.11.0.0/16"));
        s.add(ResourceSpec::new("Igw", "AWS::EC2::InternetGateway"));
        s.add(
            ResourceSpec::new("Attach", "AWS::EC2::VPCGatewayAttachment")
                .prop("VpcId", r#ref(vpc))
                .prop("InternetGatewayId", r#ref("Igw")),
        );
        s
    };
    // Moving the gateway to another VPC detaches it first: a gateway takes
    // one VPC.
    lifecycle(
        &c,
        "AWS::EC2::VPCGatewayAttachment",
        "Attach",
        &attached_to("VpcA"),
        None,
        Some(&attached_to("VpcB")),
    )
    .await;
}

/// Attachments take no tags: a second create (after a lost first) adopts
/// the attachment, and detaching twice succeeds.
#[tokio::test]
async fn attaching_twice_adopts_the_attachment() {
    let c = cloud("igwatt-twice").await;
    let mut s = c.stack();
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", "10.12.0.0/16"));
    s.add(ResourceSpec::new("Igw", "AWS::EC2::InternetGateway"));
    c.converge(&s).await;
    let vpc = c.physical_id(&s, "Vpc");
    let igw = c.physical_id(&s, "Igw");
    let mut props = Map::new();
    props.insert("VpcId".into(), Value::String(vpc.clone()));
    props.insert("InternetGatewayId".into(), Value::String(igw.clone()));
    let tags = BTreeMap::new();
    let driver: &std::sync::Arc<dyn Driver> = c.driver("AWS::EC2::VPCGatewayAttachment");
    let mut ids = Vec::new();
    for token in ["first", "second"] {
        let created = driver
            .create(CreateRequest {
                logical_id: "Attach",
                properties: &props,
                tags: &tags,
                idempotency_token: token,
                context: &c.ctx,
            })
            .await
            .unwrap_or_else(|e| panic!("attach ({token}): {e}"));
        ids.push(created.physical_id);
    }
    assert_eq!(ids[0], format!("{igw}|{vpc}"));
    assert_eq!(ids[0], ids[1]);
    assert!(c
        .read("AWS::EC2::VPCGatewayAttachment", &ids[0])
        .await
        .is_some());
    let h = ResourceHandle {
        logical_id: "Attach".into(),
        physical_id: ids[0].clone(),
        properties: props.clone(),
        attributes: Default::default(),
    };
    driver
        .delete(&h)
        .await
        .unwrap_or_else(|e| panic!("detach: {e}"));
    driver
        .delete(&h)
        .await
        .unwrap_or_else(|e| panic!("detach again: {e}"));
    assert!(c
        .read("AWS::EC2::VPCGatewayAttachment", &ids[0])
        .await
        .is_none());
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn subnet() {
    let c = cloud("subnet").await;
    let subnet = |cidr: &str, zone: usize, public: bool| {
        let mut s = c.stack();
        s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", "10.20.0.0/16"));
        s.add(
            ResourceSpec::new("Subnet", "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", cidr)
                .prop("AvailabilityZone", select(zone, get_azs()))
                .prop("MapPublicIpOnLaunch", public)
                .prop("Tags", name_tag(c.name("subnet"))),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::EC2::Subnet",
        "Subnet",
        &subnet("10.20.1.0/24", 0, false),
        Some(&subnet("10.20.1.0/24", 0, true)),
        Some(&subnet("10.20.2.0/24", 1, true)),
    )
    .await;
}

#[tokio::test]
async fn reading_many_subnets_is_one_request() {
    let c = cloud("subnet-batch").await;
    let mut s = c.stack();
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", "10.30.0.0/16"));
    for i in 0..3 {
        s.add(
            ResourceSpec::new(format!("Subnet{i}"), "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", format!("10.30.{i}.0/24"))
                .prop("AvailabilityZone", select(i % 2, get_azs())),
        );
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("ec2:DescribeSubnets");
    let searches = c
        .clients
        .requests
        .get("resource groups tagging api:GetResources");
    c.plan(&s).await;
    // One read for all of them, and one stack-wide search by ownership
    // tags for twins (a create sent twice): neither grows with the count.
    assert_eq!(c.clients.requests.get("ec2:DescribeSubnets") - before, 1);
    assert_eq!(
        c.clients
            .requests
            .get("resource groups tagging api:GetResources")
            - searches,
        1
    );
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn elastic_ip() {
    let c = cloud("eip").await;
    let eip = |name: &str, address: Option<&str>| {
        let mut spec = ResourceSpec::new("Eip", "AWS::EC2::EIP")
            .prop("Domain", "vpc")
            .prop("Tags", name_tag(c.name(name)));
        if let Some(a) = address {
            spec = spec.prop("Address", a);
        }
        let mut s = c.stack();
        s.add(spec);
        s
    };
    lifecycle(
        &c,
        "AWS::EC2::EIP",
        "Eip",
        &eip("eip", None),
        Some(&eip("eip-renamed", None)),
        Some(&eip("eip-renamed", Some("198.51.100.27"))),
    )
    .await;
}

#[tokio::test]
async fn nat_gateway() {
    let c = cloud("natgw").await;
    let nat = |eip: &str, name: &str| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Vpc", "AWS::EC2::VPC")
                .prop("CidrBlock", "10.40.0.0/16")
                .prop("EnableDnsSupport", true)
                .prop("EnableDnsHostnames", true),
        );
        s.add(
            ResourceSpec::new("Public", "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", "10.40.0.0/24")
                .prop("AvailabilityZone", select(0, get_azs()))
                .prop("MapPublicIpOnLaunch", true),
        );
        s.add(ResourceSpec::new("Igw", "AWS::EC2::InternetGateway"));
        s.add(
            ResourceSpec::new("Attach", "AWS::EC2::VPCGatewayAttachment")
                .prop("VpcId", r#ref("Vpc"))
                .prop("InternetGatewayId", r#ref("Igw")),
        );
        s.add(ResourceSpec::new("Eip1", "AWS::EC2::EIP").prop("Domain", "vpc"));
        s.add(ResourceSpec::new("Eip2", "AWS::EC2::EIP").prop("Domain", "vpc"));
        s.add(
            ResourceSpec::new("Nat", "AWS::EC2::NatGateway")
                .prop("SubnetId", r#ref("Public"))
                .prop("AllocationId", get_att(eip, "AllocationId"))
                .prop("ConnectivityType", "public")
                .prop("Tags", name_tag(c.name(name)))
                .depends_on("Attach"),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::EC2::NatGateway",
        "Nat",
        &nat("Eip1", "nat"),
        Some(&nat("Eip1", "nat-renamed")),
        Some(&nat("Eip2", "nat-renamed")),
    )
    .await;
}

/// The twin search lists every address, and a plan's read of its addresses
/// takes them from that answer: one `DescribeAddresses` per plan. An
/// address released behind fastcart's back is still seen gone.
#[tokio::test]
async fn a_plan_reads_its_addresses_from_the_twin_search() {
    let c = cloud("eipkept").await;
    let mut s = c.stack();
    for i in 0..2 {
        s.add(ResourceSpec::new(format!("Eip{i}"), "AWS::EC2::EIP").prop("Domain", "vpc"));
    }
    c.converge(&s).await;
    let describe = "ec2:DescribeAddresses";
    let before = c.clients.requests.get(describe);
    let plan = c.plan(&s).await;
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(c.clients.requests.get(describe) - before, 1);

    let state = c.session(&s).state().clone();
    let released = &state.resources["Eip0"].physical_id;
    c.clients
        .ec2
        .release_address()
        .allocation_id(released)
        .send()
        .await
        .unwrap();
    let plan = c.plan(&s).await;
    assert!(
        plan.step("Eip0")
            .is_some_and(|st| st.action == fastcart_engine::Action::Create),
        "{:?}",
        plan.steps
    );
    assert!(plan.step("Eip1").is_none(), "{:?}", plan.steps);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}
