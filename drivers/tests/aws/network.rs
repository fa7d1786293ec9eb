//! EC2 network resources.

use fastcart_engine::{get_att, r#ref, ResourceSpec};
use serde_json::json;

use crate::common::{cloud, lifecycle};

#[tokio::test]
async fn vpc() {
    let c = cloud("vpc").await;
    let vpc = |cidr: &str, dns: bool| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Vpc", "AWS::EC2::VPC")
                .prop("CidrBlock", cidr)
                .prop("EnableDnsSupport", true)
                .prop("EnableDnsHostnames", dns)
                .prop("Tags", json!([{"Key": "Name", "Value": c.name("vpc")}])),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::EC2::VPC",
        "Vpc",
        &vpc("10.1.0.0/16", false),
        Some(&vpc("10.1.0.0/16", true)),
        Some(&vpc("10.2.0.0/16", true)),
    )
    .await;
    let _ = (get_att("x", "y"), r#ref("x"));
}

#[tokio::test]
async fn reading_many_vpcs_is_one_request() {
    let c = cloud("vpc-batch").await;
    let mut s = c.stack();
    for i in 0..5 {
        s.add(
            ResourceSpec::new(format!("Vpc{i}"), "AWS::EC2::VPC")
                .prop("CidrBlock", format!("10.{i}.0.0/16")),
        );
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("ec2:DescribeVpcs");
    let searches = c
        .clients
        .requests
        .get("resource groups tagging api:GetResources");
    c.plan(&s).await;
    // One read for all of them, and one stack-wide search by ownership
    // tags for twins (a create sent twice): neither grows with the count.
    assert_eq!(c.clients.requests.get("ec2:DescribeVpcs") - before, 1);
    assert_eq!(
        c.clients
            .requests
            .get("resource groups tagging api:GetResources")
            - searches,
        1
    );
    c.converge(&fastcart_engine::StackSpec::new(&s.name, &s.env))
        .await;
}
