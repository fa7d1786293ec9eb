//! FastCart's Flask API: a containerized API on ECS Fargate behind an
//! internet-facing application load balancer, with Aurora PostgreSQL, two NAT
//! gateways (one per zone) and CPU target-tracking auto scaling from 2 to 10
//! tasks. It takes over the Pulumi program that runs it today, under the
//! names that program gives (`flask-api-<kind>[-<n>]-<env>`).
//!
//! The service's task count is the scaler's once it runs: the stack sets the
//! first count (`ResourceSpec::initial`), so a count the scaler moved is not
//! drift, while the scaler's own bounds and target are.

use fastcart_engine::{get_att, get_azs, r#ref, select, sub, ResourceSpec, StackSpec};
use serde_json::{json, Value};

use crate::StackOptions;

pub const NAME: &str = "flask-api";
/// Where the current program deploys it.
pub const HOME_REGION: &str = "eu-south-1";
pub const VPC_CIDR: &str = "10.0.0.0/16";
pub const CONTAINER_NAME: &str = "flask-api";
pub const CONTAINER_PORT: u16 = 5000;
pub const DB_NAME: &str = "flaskapi";
pub const DB_USER: &str = "dbadmin";
pub const MIN_TASKS: i64 = 2;
pub const MAX_TASKS: i64 = 10;
pub const CPU_TARGET: f64 = 70.0;

/// Public and private subnets, one of each per zone: (CIDR, zone index).
const PUBLIC: [&str; 2] = ["10.0.0.0/24", "10.0.1.0/24"];
const PRIVATE: [&str; 2] = ["10.0.10.0/24", "10.0.11.0/24"];

/// The stack for one environment.
pub fn stack(o: &StackOptions) -> StackSpec {
    let env = if o.env.is_empty() { "dev" } else { &o.env };
    let name = |kind: &str| format!("flask-api-{kind}-{env}");
    let mut s = StackSpec::new(NAME, env);
    // As the current program tags it: Environment is the estate's, not the
    // suffix (every suffix of this stack is a copy of production).
    s.tag("Environment", "production")
        .tag("Project", "ecommerce-api")
        .tag("ManagedBy", "fastcart");
    let named = |kind: &str| json!([{"Key": "Name", "Value": name(kind)}]);

    network(&mut s, &name);
    security_groups(&mut s, &name);

    // --- Aurora PostgreSQL: a writer and a reader, the password managed by
    // RDS in Secrets Manager.
    s.add(
        ResourceSpec::new("DbSubnetGroup", "AWS::RDS::DBSubnetGroup")
            .prop("DBSubnetGroupName", name("db-subnet-group"))
            .prop(
                "DBSubnetGroupDescription",
                format!("flask-api {env} database, private subnets"),
            )
            .prop(
                "SubnetIds",
                json!([r#ref("PrivateSubnet0"), r#ref("PrivateSubnet1")]),
            )
            .prop("Tags", named("db-subnet-group")),
    );
    s.add(
        ResourceSpec::new("AuroraCluster", "AWS::RDS::DBCluster")
            .prop("DBClusterIdentifier", name("aurora"))
            .prop("Engine", "aurora-postgresql")
            .prop("EngineVersion", "15.8")
            .prop("DatabaseName", DB_NAME)
            .prop("MasterUsername", DB_USER)
            .prop("ManageMasterUserPassword", true)
            .prop("StorageEncrypted", true)
            .prop("DBSubnetGroupName", r#ref("DbSubnetGroup"))
            .prop(
                "VpcSecurityGroupIds",
                json!([get_att("DbSecurityGroup", "GroupId")]),
            )
            .prop("BackupRetentionPeriod", 7)
            .prop("DeletionProtection", false)
            .prop("CopyTagsToSnapshot", true)
            .prop("Tags", named("aurora")),
    );
    for i in 0..2 {
        let id = format!("AuroraInstance{i}");
        let mut r = ResourceSpec::new(&id, "AWS::RDS::DBInstance")
            .prop(
                "DBInstanceIdentifier",
                name(&format!("aurora-instance-{i}")),
            )
            .prop("DBClusterIdentifier", r#ref("AuroraCluster"))
            .prop("DBInstanceClass", "db.t3.medium")
            .prop("Engine", "aurora-postgresql")
            .prop("PubliclyAccessible", false)
            .prop("Tags", named(&format!("aurora-instance-{i}")));
        // The first instance of a cluster is its writer: the reader waits.
        if i > 0 {
            r = r.depends_on("AuroraInstance0");
        }
        s.add(r);
    }
    let db_secret = get_att("AuroraCluster", "MasterUserSecret.SecretArn");

    // --- Images and logs.
    s.add(
        ResourceSpec::new("Repository", "AWS::ECR::Repository")
            .prop("RepositoryName", name("repo"))
            .prop("ImageScanningConfiguration", json!({"ScanOnPush": true}))
            .prop("EmptyOnDelete", true)
            .prop("Tags", named("repo")),
    );
    for (id, group) in [
        ("EcsLogGroup", format!("/ecs/flask-api-{env}")),
        ("AlbLogGroup", format!("/aws/alb/flask-api-{env}")),
    ] {
        s.add(
            ResourceSpec::new(id, "AWS::Logs::LogGroup")
                .prop("LogGroupName", group)
                .prop("RetentionInDays", 7),
        );
    }

    // --- IAM, scoped to this stack's own database secret.
    let assume_ecs_tasks = crate::ecs_tasks_trust_policy();
    let secret_policy = |name: &str, actions: &[&str]| {
        json!([{"PolicyName": name, "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "ReadDatabaseSecret", "Effect": "Allow",
                           "Action": actions, "Resource": db_secret.clone()}]}}])
    };
    s.add(
        ResourceSpec::new("ExecutionRole", "AWS::IAM::Role")
            .prop("RoleName", name("execution-role"))
            .prop(
                "Description",
                format!("flask-api {env}: pulls images, writes logs, injects the database secret"),
            )
            .prop("AssumeRolePolicyDocument", assume_ecs_tasks.clone())
            .prop("ManagedPolicyArns", crate::ecs_task_execution_policy())
            .prop(
                "Policies",
                secret_policy("database-secret", &["secretsmanager:GetSecretValue"]),
            )
            .prop("Tags", named("execution-role")),
    );
    s.add(
        ResourceSpec::new("TaskRole", "AWS::IAM::Role")
            .prop("RoleName", name("task-role"))
            .prop(
                "Description",
                format!("flask-api {env}: the API's own permissions"),
            )
            .prop("AssumeRolePolicyDocument", assume_ecs_tasks)
            .prop(
                "Policies",
                secret_policy(
                    "database-secret",
                    &[
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:DescribeSecret",
                    ],
                ),
            )
            .prop("Tags", named("task-role")),
    );

    // --- Load balancer.
    s.add(
        ResourceSpec::new("LoadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer")
            .prop("Name", name("alb"))
            .prop("Scheme", "internet-facing")
            .prop("Type", "application")
            .prop(
                "Subnets",
                json!([r#ref("PublicSubnet0"), r#ref("PublicSubnet1")]),
            )
            .prop(
                "SecurityGroups",
                json!([get_att("AlbSecurityGroup", "GroupId")]),
            )
            .prop("Tags", named("alb"))
            .depends_on("GatewayAttachment"),
    );
    s.add(
        ResourceSpec::new("TargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup")
            .prop("Name", name("tg"))
            .prop("Protocol", "HTTP")
            .prop("Port", CONTAINER_PORT)
            .prop("VpcId", r#ref("Vpc"))
            .prop("TargetType", "ip")
            .prop("HealthCheckPath", "/health")
            .prop("Matcher", json!({"HttpCode": "200"}))
            .prop("HealthCheckIntervalSeconds", 30)
            .prop("HealthCheckTimeoutSeconds", 5)
            .prop("HealthyThresholdCount", 2)
            .prop("UnhealthyThresholdCount", 2)
            .prop("Tags", named("tg")),
    );
    s.add(
        ResourceSpec::new("HttpListener", "AWS::ElasticLoadBalancingV2::Listener")
            .prop("LoadBalancerArn", r#ref("LoadBalancer"))
            .prop("Port", 80)
            .prop("Protocol", "HTTP")
            .prop(
                "DefaultActions",
                json!([{"Type": "forward", "TargetGroupArn": r#ref("TargetGroup")}]),
            ),
    );

    // --- Compute.
    s.add(
        ResourceSpec::new("Cluster", "AWS::ECS::Cluster")
            .prop("ClusterName", name("cluster"))
            .prop("Tags", named("cluster")),
    );
    let env_var = |k: &str, v: Value| json!({"Name": k, "Value": v});
    s.add(
        ResourceSpec::new("TaskDefinition", "AWS::ECS::TaskDefinition")
            .prop("Family", format!("flask-api-{env}"))
            .prop("Cpu", "1024")
            .prop("Memory", "2048")
            .prop("NetworkMode", "awsvpc")
            .prop("RequiresCompatibilities", json!(["FARGATE"]))
            .prop("ExecutionRoleArn", get_att("ExecutionRole", "Arn"))
            .prop("TaskRoleArn", get_att("TaskRole", "Arn"))
            .prop(
                "ContainerDefinitions",
                json!([{
                    "Name": CONTAINER_NAME,
                    "Image": sub("${Repository.RepositoryUri}:latest"),
                    "Essential": true,
                    "PortMappings": [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}],
                    "Environment": [
                        env_var("DATABASE_HOST", get_att("AuroraCluster", "Endpoint.Address")),
                        env_var("DATABASE_NAME", json!(DB_NAME)),
                        env_var("DATABASE_USER", json!(DB_USER)),
                        env_var("DATABASE_SECRET_ARN", db_secret.clone()),
                    ],
                    "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                        "awslogs-group": r#ref("EcsLogGroup"),
                        "awslogs-region": r#ref("AWS::Region"),
                        "awslogs-stream-prefix": CONTAINER_NAME
                    }}
                }]),
            )
            .prop("Tags", named("task")),
    );
    s.add(
        ResourceSpec::new("Service", "AWS::ECS::Service")
            .prop("ServiceName", name("service"))
            .prop("Cluster", r#ref("Cluster"))
            .prop("TaskDefinition", r#ref("TaskDefinition"))
            // The scaler's from the first task on.
            .initial("DesiredCount", MIN_TASKS)
            .prop("LaunchType", "FARGATE")
            .prop(
                "NetworkConfiguration",
                json!({"AwsvpcConfiguration": {
                    "Subnets": [r#ref("PrivateSubnet0"), r#ref("PrivateSubnet1")],
                    "SecurityGroups": [get_att("TaskSecurityGroup", "GroupId")],
                    "AssignPublicIp": "DISABLED"}}),
            )
            .prop(
                "LoadBalancers",
                json!([{"ContainerName": CONTAINER_NAME, "ContainerPort": CONTAINER_PORT,
                        "TargetGroupArn": r#ref("TargetGroup")}]),
            )
            .prop("Tags", named("service"))
            // A target group takes tasks only once a listener forwards to
            // it; the tasks pull their image through the NAT gateways.
            .depends_on("HttpListener")
            .depends_on("PrivateDefaultRoute0")
            .depends_on("PrivateDefaultRoute1"),
    );

    // --- Auto scaling on CPU.
    s.add(
        ResourceSpec::new(
            "ScalableTarget",
            "AWS::ApplicationAutoScaling::ScalableTarget",
        )
        .prop("ServiceNamespace", "ecs")
        .prop("ResourceId", sub("service/${Cluster}/${Service.Name}"))
        .prop("ScalableDimension", "ecs:service:DesiredCount")
        .prop("MinCapacity", MIN_TASKS)
        .prop("MaxCapacity", MAX_TASKS),
    );
    s.add(
        ResourceSpec::new(
            "CpuScalingPolicy",
            "AWS::ApplicationAutoScaling::ScalingPolicy",
        )
        .prop("PolicyName", name("cpu-scaling"))
        .prop("PolicyType", "TargetTrackingScaling")
        .prop("ScalingTargetId", r#ref("ScalableTarget"))
        .prop(
            "TargetTrackingScalingPolicyConfiguration",
            json!({
                "TargetValue": CPU_TARGET,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60
            }),
        ),
    );

    // --- Outputs (written to cfn-outputs/flask-api-flat-outputs.json).
    let ids = |ids: &[&str]| Value::Array(ids.iter().map(|i| r#ref(i)).collect());
    let outputs: Vec<(&str, Value)> = vec![
        ("environment_suffix", json!(env)),
        ("region", r#ref("AWS::Region")),
        ("vpc_id", r#ref("Vpc")),
        ("vpc_cidr", json!(VPC_CIDR)),
        (
            "public_subnet_ids",
            ids(&["PublicSubnet0", "PublicSubnet1"]),
        ),
        (
            "private_subnet_ids",
            ids(&["PrivateSubnet0", "PrivateSubnet1"]),
        ),
        ("nat_gateway_ids", ids(&["NatGateway0", "NatGateway1"])),
        ("alb_arn", r#ref("LoadBalancer")),
        ("alb_dns_name", get_att("LoadBalancer", "DNSName")),
        ("target_group_arn", r#ref("TargetGroup")),
        ("listener_arn", r#ref("HttpListener")),
        ("ecr_repository_url", get_att("Repository", "RepositoryUri")),
        ("rds_cluster_id", r#ref("AuroraCluster")),
        (
            "rds_cluster_endpoint",
            get_att("AuroraCluster", "Endpoint.Address"),
        ),
        (
            "rds_cluster_reader_endpoint",
            get_att("AuroraCluster", "ReadEndpoint.Address"),
        ),
        ("db_secret_arn", db_secret),
        ("ecs_cluster_name", r#ref("Cluster")),
        ("ecs_service_name", get_att("Service", "Name")),
        ("task_definition_arn", r#ref("TaskDefinition")),
        ("ecs_log_group_name", r#ref("EcsLogGroup")),
        ("alb_log_group_name", r#ref("AlbLogGroup")),
    ];
    for (k, v) in outputs {
        s.output(k, v);
    }
    s
}

/// VPC, two public and two private subnets over two zones, an internet
/// gateway, a NAT gateway with its own address in each zone, one public route
/// table and a private one per zone.
fn network(s: &mut StackSpec, name: &dyn Fn(&str) -> String) {
    let named = |kind: &str| json!([{"Key": "Name", "Value": name(kind)}]);
    let tiered = |kind: &str, tier: &str| json!([{"Key": "Name", "Value": name(kind)}, {"Key": "Tier", "Value": tier}]);
    s.add(
        ResourceSpec::new("Vpc", "AWS::EC2::VPC")
            .prop("CidrBlock", VPC_CIDR)
            .prop("EnableDnsSupport", true)
            .prop("EnableDnsHostnames", true)
            .prop("Tags", named("vpc")),
    );
    s.add(
        ResourceSpec::new("InternetGateway", "AWS::EC2::InternetGateway")
            .prop("Tags", named("igw")),
    );
    s.add(
        ResourceSpec::new("GatewayAttachment", "AWS::EC2::VPCGatewayAttachment")
            .prop("VpcId", r#ref("Vpc"))
            .prop("InternetGatewayId", r#ref("InternetGateway")),
    );
    s.add(
        ResourceSpec::new("PublicRouteTable", "AWS::EC2::RouteTable")
            .prop("VpcId", r#ref("Vpc"))
            .prop("Tags", named("public-rt")),
    );
    s.add(
        ResourceSpec::new("PublicDefaultRoute", "AWS::EC2::Route")
            .prop("RouteTableId", r#ref("PublicRouteTable"))
            .prop("DestinationCidrBlock", "0.0.0.0/0")
            .prop("GatewayId", r#ref("InternetGateway"))
            .depends_on("GatewayAttachment"),
    );
    for (i, (public, private)) in PUBLIC.iter().zip(PRIVATE).enumerate() {
        let subnet = |id: String, kind: &str, cidr: &str, tier: &str| {
            ResourceSpec::new(id, "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", cidr)
                .prop("AvailabilityZone", select(i, get_azs()))
                .prop("Tags", tiered(&format!("{kind}-subnet-{i}"), tier))
        };
        s.add(
            subnet(format!("PublicSubnet{i}"), "public", public, "Public")
                .prop("MapPublicIpOnLaunch", true),
        );
        s.add(subnet(
            format!("PrivateSubnet{i}"),
            "private",
            private,
            "Private",
        ));
        s.add(
            ResourceSpec::new(
                format!("PublicSubnet{i}RouteTableAssociation"),
                "AWS::EC2::SubnetRouteTableAssociation",
            )
            .prop("SubnetId", r#ref(&format!("PublicSubnet{i}")))
            .prop("RouteTableId", r#ref("PublicRouteTable")),
        );
        s.add(
            ResourceSpec::new(format!("NatEip{i}"), "AWS::EC2::EIP")
                .prop("Domain", "vpc")
                .prop("Tags", named(&format!("nat-eip-{i}")))
                .depends_on("GatewayAttachment"),
        );
        s.add(
            ResourceSpec::new(format!("NatGateway{i}"), "AWS::EC2::NatGateway")
                .prop("SubnetId", r#ref(&format!("PublicSubnet{i}")))
                .prop(
                    "AllocationId",
                    get_att(&format!("NatEip{i}"), "AllocationId"),
                )
                .prop("Tags", named(&format!("nat-{i}"))),
        );
        let table = format!("PrivateRouteTable{i}");
        s.add(
            ResourceSpec::new(&table, "AWS::EC2::RouteTable")
                .prop("VpcId", r#ref("Vpc"))
                .prop("Tags", named(&format!("private-rt-{i}"))),
        );
        s.add(
            ResourceSpec::new(format!("PrivateDefaultRoute{i}"), "AWS::EC2::Route")
                .prop("RouteTableId", r#ref(&table))
                .prop("DestinationCidrBlock", "0.0.0.0/0")
                .prop("NatGatewayId", r#ref(&format!("NatGateway{i}"))),
        );
        s.add(
            ResourceSpec::new(
                format!("PrivateSubnet{i}RouteTableAssociation"),
                "AWS::EC2::SubnetRouteTableAssociation",
            )
            .prop("SubnetId", r#ref(&format!("PrivateSubnet{i}")))
            .prop("RouteTableId", r#ref(&table)),
        );
    }
}

/// The load balancer's group is the only one open to the world (HTTP, and
/// HTTPS for the listener to come); tasks take the API port from the load
/// balancer only, the database PostgreSQL from the tasks only.
fn security_groups(s: &mut StackSpec, name: &dyn Fn(&str) -> String) {
    let world = |port: u16, what: &str| {
        json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": "0.0.0.0/0",
               "Description": what})
    };
    let from = |port: u16, group: &str, what: &str| {
        json!([{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "SourceSecurityGroupId": get_att(group, "GroupId"), "Description": what}])
    };
    let all_out =
        json!([{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "all outbound"}]);
    for (id, kind, description, ingress) in [
        (
            "AlbSecurityGroup",
            "alb-sg",
            "flask-api load balancer: HTTP and HTTPS from anywhere",
            json!([
                world(80, "HTTP from anywhere"),
                world(443, "HTTPS from anywhere")
            ]),
        ),
        (
            "TaskSecurityGroup",
            "ecs-sg",
            "flask-api tasks: the API port from the load balancer only",
            from(
                CONTAINER_PORT,
                "AlbSecurityGroup",
                "the API from the load balancer",
            ),
        ),
        (
            "DbSecurityGroup",
            "db-sg",
            "flask-api database: PostgreSQL from the tasks only",
            from(5432, "TaskSecurityGroup", "PostgreSQL from the API tasks"),
        ),
    ] {
        s.add(
            ResourceSpec::new(id, "AWS::EC2::SecurityGroup")
                .prop("GroupName", name(kind))
                .prop("GroupDescription", description)
                .prop("VpcId", r#ref("Vpc"))
                .prop("SecurityGroupIngress", ingress)
                .prop("SecurityGroupEgress", all_out.clone())
                .prop("Tags", json!([{"Key": "Name", "Value": name(kind)}])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(env: &str) -> StackOptions {
        StackOptions {
            env: env.into(),
            region: HOME_REGION.into(),
            db_secret_arn: None,
        }
    }

    #[test]
    fn every_name_carries_the_suffix_and_follows_the_program() {
        let s = stack(&opts("pr7"));
        assert_eq!(s.qualified_name(), "flask-api-pr7");
        let prop = |id: &str, key: &str| {
            s.resource(id).unwrap().properties[key]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(prop("LoadBalancer", "Name"), "flask-api-alb-pr7");
        assert_eq!(prop("TargetGroup", "Name"), "flask-api-tg-pr7");
        assert_eq!(
            prop("AuroraCluster", "DBClusterIdentifier"),
            "flask-api-aurora-pr7"
        );
        assert_eq!(
            prop("AuroraInstance1", "DBInstanceIdentifier"),
            "flask-api-aurora-instance-1-pr7"
        );
        assert_eq!(prop("Cluster", "ClusterName"), "flask-api-cluster-pr7");
        assert_eq!(prop("Service", "ServiceName"), "flask-api-service-pr7");
        assert_eq!(prop("TaskDefinition", "Family"), "flask-api-pr7");
        assert_eq!(prop("Repository", "RepositoryName"), "flask-api-repo-pr7");
        let name_tag = |id: &str| {
            s.resource(id).unwrap().properties["Tags"][0]["Value"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(name_tag("Vpc"), "flask-api-vpc-pr7");
        assert_eq!(name_tag("PublicSubnet0"), "flask-api-public-subnet-0-pr7");
        assert_eq!(name_tag("NatGateway1"), "flask-api-nat-1-pr7");
    }

    #[test]
    fn only_the_load_balancer_is_open_to_the_world() {
        let s = stack(&opts("dev"));
        let open: Vec<&str> = s
            .resources
            .iter()
            .filter(|r| r.type_name == "AWS::EC2::SecurityGroup")
            .filter(|r| {
                r.properties["SecurityGroupIngress"]
                    .to_string()
                    .contains("0.0.0.0/0")
            })
            .map(|r| r.logical_id.as_str())
            .collect();
        assert_eq!(open, ["AlbSecurityGroup"]);
    }

    #[test]
    fn the_task_count_is_the_scalers_after_creation() {
        let s = stack(&opts("dev"));
        let service = s.resource("Service").unwrap();
        assert!(service.is_initial_only("DesiredCount"));
        assert_eq!(service.properties["DesiredCount"], json!(MIN_TASKS));
        let target = s.resource("ScalableTarget").unwrap();
        assert!(target.initial_only.is_empty());
    }
}
