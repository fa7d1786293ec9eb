//! ECS: the cluster, the order processor's task definition and its service.

use fastcart_engine::{get_att, r#ref, ResourceSpec, StackSpec};
use serde_json::{json, Value};

use crate::common::{cloud, lifecycle, Cloud};

const IMAGE: &str = "public.ecr.aws/docker/library/busybox:latest";

#[tokio::test]
async fn ecs_cluster() {
    let c = cloud("ecscluster").await;
    let cluster = |name: &str, insights: &str| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Cluster", "AWS::ECS::Cluster")
                .prop("ClusterName", c.name(name))
                .prop(
                    "ClusterSettings",
                    json!([{"Name": "containerInsights", "Value": insights}]),
                )
                .prop("CapacityProviders", json!(["FARGATE", "FARGATE_SPOT"]))
                .prop(
                    "DefaultCapacityProviderStrategy",
                    json!([{"CapacityProvider": "FARGATE", "Weight": 1}]),
                )
                .prop("Tags", json!([{"Key": "Team", "Value": "orders"}])),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::ECS::Cluster",
        "Cluster",
        &cluster("orders", "enabled"),
        Some(&cluster("orders", "disabled")),
        Some(&cluster("orders-next", "disabled")),
    )
    .await;
}

/// The order processor's container: port 8080, its settings in the
/// environment, the database password from Secrets Manager, logs to
/// CloudWatch Logs.
fn order_processor(c: &crate::common::Cloud, level: &str) -> Value {
    json!([{
        "Name": "order-processor",
        "Image": IMAGE,
        "Essential": true,
        "PortMappings": [{"ContainerPort": 8080, "Protocol": "tcp"}],
        "Environment": [
            {"Name": "QUEUE_NAME", "Value": c.name("orders")},
            {"Name": "LOG_LEVEL", "Value": level}
        ],
        "Secrets": [{"Name": "DB_PASSWORD", "ValueFrom": r#ref("DbSecret")}],
        "LogConfiguration": {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": format!("/fastcart/{}", c.name("order-processor")),
                "awslogs-region": c.ctx.region.clone(),
                "awslogs-stream-prefix": "order-processor"
            }
        }
    }])
}

#[tokio::test]
async fn ecs_task_definition() {
    let c = cloud("ecstaskdef").await;
    let task = |level: &str, team: &str| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("ExecRole", "AWS::IAM::Role")
                .prop("RoleName", c.name("order-processor-exec"))
                .prop(
                    "AssumeRolePolicyDocument",
                    json!({
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole"
                        }]
                    }),
                ),
        );
        s.add(
            ResourceSpec::new("DbSecret", "AWS::SecretsManager::Secret")
                .prop("Name", c.name("orders-db"))
                .prop("SecretString", "correct-horse-battery-staple"),
        );
        s.add(
            ResourceSpec::new("TaskDef", "AWS::ECS::TaskDefinition")
                .prop("Family", c.name("order-processor"))
                .prop("Cpu", "512")
                .prop("Memory", "1024")
                .prop("NetworkMode", "awsvpc")
                .prop("RequiresCompatibilities", json!(["FARGATE"]))
                .prop("ExecutionRoleArn", get_att("ExecRole", "Arn"))
                .prop("ContainerDefinitions", order_processor(&c, level))
                .prop("Tags", json!([{"Key": "Team", "Value": team}])),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::ECS::TaskDefinition",
        "TaskDef",
        &task("info", "orders"),
        Some(&task("info", "fulfilment")),
        Some(&task("debug", "fulfilment")),
    )
    .await;
}

/// A Fargate service of `count` tasks in two private subnets, with its
/// cluster, task definition and security group: `name` is the service's.
pub(crate) fn service_stack(c: &Cloud, name: &str, count: i64) -> StackSpec {
    let zones = &c.ctx.availability_zones;
    let zone = |i: usize| zones[i % zones.len()].clone();
    let mut s = c.stack();
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", "10.60.0.0/16"));
    for (i, id) in ["PrivateA", "PrivateB"].iter().enumerate() {
        s.add(
            ResourceSpec::new(*id, "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", format!("10.60.{}.0/24", i + 1))
                .prop("AvailabilityZone", zone(i)),
        );
    }
    s.add(
        ResourceSpec::new("TaskSg", "AWS::EC2::SecurityGroup")
            .prop("GroupDescription", "order-processor tasks")
            .prop("VpcId", r#ref("Vpc")),
    );
    s.add(ResourceSpec::new("Cluster", "AWS::ECS::Cluster").prop("ClusterName", c.name("svc")));
    s.add(
        ResourceSpec::new("TaskDef", "AWS::ECS::TaskDefinition")
            .prop("Family", c.name("svc-order-processor"))
            .prop("Cpu", "512")
            .prop("Memory", "1024")
            .prop("NetworkMode", "awsvpc")
            .prop("RequiresCompatibilities", json!(["FARGATE"]))
            .prop(
                "ContainerDefinitions",
                json!([{
                    "Name": "order-processor",
                    "Image": IMAGE,
                    "Essential": true,
                    "PortMappings": [{"ContainerPort": 8080, "Protocol": "tcp"}]
                }]),
            ),
    );
    s.add(
        ResourceSpec::new("Service", "AWS::ECS::Service")
            .prop("ServiceName", c.name(name))
            .prop("Cluster", r#ref("Cluster"))
            .prop("TaskDefinition", r#ref("TaskDef"))
            .prop("DesiredCount", count)
            .prop("LaunchType", "FARGATE")
            .prop("PlatformVersion", "LATEST")
            .prop("PropagateTags", "SERVICE")
            .prop(
                "NetworkConfiguration",
                json!({
                    "AwsvpcConfiguration": {
                        "Subnets": [r#ref("PrivateA"), r#ref("PrivateB")],
                        "SecurityGroups": [r#ref("TaskSg")],
                        "AssignPublicIp": "DISABLED"
                    }
                }),
            )
            .prop("Tags", json!([{"Key": "Team", "Value": "orders"}])),
    );
    s
}

#[tokio::test]
async fn ecs_service() {
    let c = cloud("ecsservice").await;
    let service = |name: &str, count: i64| service_stack(&c, name, count);
    lifecycle(
        &c,
        "AWS::ECS::Service",
        "Service",
        &service("order-processor", 2),
        Some(&service("order-processor", 1)),
        Some(&service("order-processor-v2", 1)),
    )
    .await;
}

#[tokio::test]
async fn reading_many_ecs_clusters_is_one_request() {
    let c = cloud("ecscluster-batch").await;
    let mut s = c.stack();
    for i in 0..3 {
        s.add(
            ResourceSpec::new(format!("Cluster{i}"), "AWS::ECS::Cluster")
                .prop("ClusterName", c.name(&format!("batch{i}"))),
        );
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("ecs:DescribeClusters");
    c.plan(&s).await;
    assert_eq!(c.clients.requests.get("ecs:DescribeClusters") - before, 1);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}
