//! Natural keys: every driver of a small stack finds what it made by the
//! stack's properties alone (`find_by_key`, which import and the
//! exactly-once create use), with the tags that say whose it is (reads
//! report tags when the stack sets some).

use fastcart_engine::{get_att, r#ref, KeyQuery, Ownership, ResourceSpec, StackSpec};
use serde_json::json;

use crate::common::{cloud, Cloud};

#[tokio::test]
async fn each_object_is_found_by_its_key_with_its_ownership_tags() {
    let c = cloud("keys").await;
    let name = |base: &str| json!([{"Key": "Name", "Value": c.name(base)}]);
    let mut s = c.stack();
    s.add(
        ResourceSpec::new("Vpc", "AWS::EC2::VPC")
            .prop("CidrBlock", "10.40.0.0/16")
            .prop("Tags", name("vpc")),
    );
    s.add(
        ResourceSpec::new("Subnet", "AWS::EC2::Subnet")
            .prop("VpcId", r#ref("Vpc"))
            .prop("CidrBlock", "10.40.1.0/24")
            .prop("Tags", name("subnet")),
    );
    s.add(
        ResourceSpec::new("Table", "AWS::EC2::RouteTable")
            .prop("VpcId", r#ref("Vpc"))
            .prop("Tags", name("table")),
    );
    s.add(ResourceSpec::new("Igw", "AWS::EC2::InternetGateway").prop("Tags", name("igw")));
    s.add(
        ResourceSpec::new("Attachment", "AWS::EC2::VPCGatewayAttachment")
            .prop("VpcId", r#ref("Vpc"))
            .prop("InternetGatewayId", r#ref("Igw")),
    );
    s.add(
        ResourceSpec::new("Route", "AWS::EC2::Route")
            .prop("RouteTableId", r#ref("Table"))
            .prop("DestinationCidrBlock", "0.0.0.0/0")
            .prop("GatewayId", r#ref("Igw"))
            .depends_on("Attachment"),
    );
    s.add(
        ResourceSpec::new("Association", "AWS::EC2::SubnetRouteTableAssociation")
            .prop("SubnetId", r#ref("Subnet"))
            .prop("RouteTableId", r#ref("Table")),
    );
    s.add(
        ResourceSpec::new("Group", "AWS::EC2::SecurityGroup")
            .prop("GroupDescription", "keys")
            .prop("VpcId", get_att("Vpc", "VpcId"))
            .prop("Tags", name("sg")),
    );
    s.add(
        ResourceSpec::new("Logs", "AWS::Logs::LogGroup")
            .prop("LogGroupName", format!("/keys/{}", c.env))
            .prop("Tags", name("logs")),
    );
    s.add(
        ResourceSpec::new("Secret", "AWS::SecretsManager::Secret")
            .prop("Name", c.name("secret"))
            .prop("SecretString", "not-a-real-secret")
            .prop("Tags", name("secret")),
    );
    s.add(
        ResourceSpec::new("Role", "AWS::IAM::Role")
            .prop("RoleName", c.name("role"))
            .prop(
                "AssumeRolePolicyDocument",
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]}),
            )
            .prop("Tags", name("role")),
    );
    found_by_key(&c, &s).await;
}

/// Converges `s`, then finds each of its resources by its key alone, with
/// the ownership tags where the type is taggable.
pub async fn found_by_key(c: &Cloud, s: &StackSpec) {
    c.converge(s).await;
    let state = c.session(s).state().clone();
    let owner = Ownership::of(s);
    for r in &s.resources {
        let held = &state.resources[&r.logical_id];
        let driver = c.driver(&r.type_name);
        let query = KeyQuery {
            logical_id: &r.logical_id,
            properties: &held.properties,
            context: &c.ctx,
        };
        let found = driver
            .find_by_key(&query)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} has a key", r.logical_id));
        let ids: Vec<&str> = found.iter().map(|f| f.physical_id.as_str()).collect();
        assert_eq!(ids, [held.physical_id.as_str()], "{}", r.logical_id);
        if driver.schema().taggable {
            assert!(
                owner.made(&found[0].tags, &r.logical_id),
                "{}: {:?}",
                r.logical_id,
                found[0].tags
            );
        }
    }
}
