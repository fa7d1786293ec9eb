//! The FastCart order-processing platform: a VPC with public and private
//! subnets and one NAT gateway; a Kinesis stream of orders feeding an ECS
//! Fargate service; RDS PostgreSQL for orders; ElastiCache Redis for hot
//! queries; Secrets Manager for credentials; one customer-managed KMS key
//! encrypting all of it; ECR; CloudWatch logs and alarms; least-privilege IAM
//! and security groups.
//!
//! Every name carries the environment suffix; every taggable resource carries
//! the stack's tags (and the engine adds the ownership tags).

use fastcart_engine::{get_att, get_azs, lookup, r#ref, select, sub, ResourceSpec, StackSpec};
use serde_json::{json, Value};

use crate::StackOptions;

pub const APPLICATION: &str = "FastCartOrderProcessing";
pub const VPC_CIDR: &str = "10.0.0.0/16";
pub const CONTAINER_PORT: u16 = 8080;
pub const CONTAINER_NAME: &str = "order-processor";
pub const DB_NAME: &str = "ordersdb";
pub const REDIS_PORT: u16 = 6379;
pub const SHARD_COUNT: u32 = 2;
pub const RETENTION_HOURS: u32 = 24;
pub const LOG_RETENTION_DAYS: u32 = 7;
pub const DESIRED_COUNT: u32 = 2;

/// The stack for one environment.
pub fn stack(o: &StackOptions) -> StackSpec {
    let env = if o.env.is_empty() { "dev" } else { &o.env };
    let name = |base: &str| format!("fastcart-{base}-{env}");
    let mut s = StackSpec::new("fastcart", env);
    s.tag("Environment", env)
        .tag("Application", APPLICATION)
        .tag("ManagedBy", "fastcart")
        .tag("Region", &o.region);
    let tags = |base: &str| json!([{"Key": "Name", "Value": name(base)}]);

    // --- KMS: one customer-managed key for everything encrypted.
    s.add(
        ResourceSpec::new("Key", "AWS::KMS::Key")
            .prop(
                "Description",
                format!(
                    "fastcart {env}: encrypts logs, streams, databases, caches, secrets and images"
                ),
            )
            .prop("EnableKeyRotation", true)
            .prop("PendingWindowInDays", 7)
            .prop("KeyPolicy", key_policy())
            .prop("Tags", tags("key")),
    );
    s.add(
        ResourceSpec::new("KeyAlias", "AWS::KMS::Alias")
            .prop("AliasName", format!("alias/fastcart-{env}"))
            .prop("TargetKeyId", r#ref("Key")),
    );

    // --- Network.
    s.add(
        ResourceSpec::new("Vpc", "AWS::EC2::VPC")
            .prop("CidrBlock", VPC_CIDR)
            .prop("EnableDnsSupport", true)
            .prop("EnableDnsHostnames", true)
            .prop("Tags", tags("vpc")),
    );
    let subnets = [
        ("PublicSubnet1", "10.0.1.0/24", 0, true),
        ("PublicSubnet2", "10.0.2.0/24", 1, true),
        ("PrivateSubnet1", "10.0.11.0/24", 0, false),
        ("PrivateSubnet2", "10.0.12.0/24", 1, false),
    ];
    for (id, cidr, az, public) in subnets {
        let mut r = ResourceSpec::new(id, "AWS::EC2::Subnet")
            .prop("VpcId", r#ref("Vpc"))
            .prop("CidrBlock", cidr)
            .prop("AvailabilityZone", select(az, get_azs()))
            .prop("Tags", tags(&kebab(id)));
        if public {
            r = r.prop("MapPublicIpOnLaunch", true);
        }
        s.add(r);
    }
    s.add(
        ResourceSpec::new("InternetGateway", "AWS::EC2::InternetGateway").prop("Tags", tags("igw")),
    );
    s.add(
        ResourceSpec::new("GatewayAttachment", "AWS::EC2::VPCGatewayAttachment")
            .prop("VpcId", r#ref("Vpc"))
            .prop("InternetGatewayId", r#ref("InternetGateway")),
    );
    s.add(
        ResourceSpec::new("NatEip", "AWS::EC2::EIP")
            .prop("Domain", "vpc")
            .prop("Tags", tags("nat-eip"))
            .depends_on("GatewayAttachment"),
    );
    s.add(
        ResourceSpec::new("NatGateway", "AWS::EC2::NatGateway")
            .prop("SubnetId", r#ref("PublicSubnet1"))
            .prop("AllocationId", get_att("NatEip", "AllocationId"))
            .prop("Tags", tags("nat")),
    );
    for (table, target_key, target, subnets) in [
        (
            "PublicRouteTable",
            "GatewayId",
            "InternetGateway",
            ["PublicSubnet1", "PublicSubnet2"],
        ),
        (
            "PrivateRouteTable",
            "NatGatewayId",
            "NatGateway",
            ["PrivateSubnet1", "PrivateSubnet2"],
        ),
    ] {
        s.add(
            ResourceSpec::new(table, "AWS::EC2::RouteTable")
                .prop("VpcId", r#ref("Vpc"))
                .prop("Tags", tags(&kebab(table))),
        );
        let route = table.replace("RouteTable", "DefaultRoute");
        let mut r = ResourceSpec::new(&route, "AWS::EC2::Route")
            .prop("RouteTableId", r#ref(table))
            .prop("DestinationCidrBlock", "0.0.0.0/0")
            .prop(target_key, r#ref(target));
        if target == "InternetGateway" {
            r = r.depends_on("GatewayAttachment");
        }
        s.add(r);
        for subnet in subnets {
            s.add(
                ResourceSpec::new(
                    format!("{subnet}RouteTableAssociation"),
                    "AWS::EC2::SubnetRouteTableAssociation",
                )
                .prop("SubnetId", r#ref(subnet))
                .prop("RouteTableId", r#ref(table)),
            );
        }
    }

    // --- Security groups: least privilege, nothing open to the world inbound.
    s.add(
        // No GroupName: as with the Pulumi program, AWS's name is picked by
        // the driver, and the Name tag says which group it is.
        ResourceSpec::new("EcsSecurityGroup", "AWS::EC2::SecurityGroup")
            .prop("GroupDescription", "fastcart order processor tasks")
            .prop("VpcId", r#ref("Vpc"))
            .prop(
                "SecurityGroupIngress",
                json!([{"IpProtocol": "tcp", "FromPort": CONTAINER_PORT, "ToPort": CONTAINER_PORT,
                        "CidrIp": VPC_CIDR, "Description": "order processor from inside the VPC"}]),
            )
            .prop(
                "SecurityGroupEgress",
                json!([{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "all outbound"}]),
            )
            .prop("Tags", tags("ecs-sg")),
    );
    for (id, base, port, what) in [
        ("RdsSecurityGroup", "rds", 5432, "PostgreSQL"),
        ("RedisSecurityGroup", "redis", 6379, "Redis"),
    ] {
        s.add(
            ResourceSpec::new(id, "AWS::EC2::SecurityGroup")
                .prop(
                    "GroupDescription",
                    format!("fastcart {what}, reachable from the order processor only"),
                )
                .prop("VpcId", r#ref("Vpc"))
                .prop(
                    "SecurityGroupIngress",
                    json!([{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                            "SourceSecurityGroupId": get_att("EcsSecurityGroup", "GroupId"),
                            "Description": format!("{what} from the order processor")}]),
                )
                .prop("Tags", tags(&format!("{base}-sg"))),
        );
    }

    // --- Database: RDS PostgreSQL, credentials in Secrets Manager.
    s.add(
        // No DBSubnetGroupName either (the Pulumi program lets it be picked).
        ResourceSpec::new("DbSubnetGroup", "AWS::RDS::DBSubnetGroup")
            .prop(
                "DBSubnetGroupDescription",
                format!("fastcart {env} database, private subnets"),
            )
            .prop(
                "SubnetIds",
                json!([r#ref("PrivateSubnet1"), r#ref("PrivateSubnet2")]),
            )
            .prop("Tags", tags("db-subnet")),
    );
    let mut db = ResourceSpec::new("Database", "AWS::RDS::DBInstance")
        .prop("DBInstanceIdentifier", name("rds"))
        .prop("DBName", DB_NAME)
        .prop("Engine", "postgres")
        .prop("EngineVersion", "16.9")
        .prop("DBInstanceClass", "db.t3.micro")
        .prop("AllocatedStorage", 20)
        .prop("StorageType", "gp2")
        .prop("StorageEncrypted", true)
        .prop("KmsKeyId", get_att("Key", "Arn"))
        .prop("DBSubnetGroupName", r#ref("DbSubnetGroup"))
        .prop(
            "VPCSecurityGroups",
            json!([get_att("RdsSecurityGroup", "GroupId")]),
        )
        .prop("PubliclyAccessible", false)
        .prop("MultiAZ", false)
        .prop("BackupRetentionPeriod", 7)
        // Touching, not overlapping: AWS takes them (see the README).
        .prop("PreferredBackupWindow", "03:00-04:00")
        .prop("PreferredMaintenanceWindow", "mon:04:00-mon:05:00")
        .prop(
            "EnableCloudwatchLogsExports",
            json!(["postgresql", "upgrade"]),
        )
        .prop("DeletionProtection", false)
        .prop("CopyTagsToSnapshot", true)
        .prop("MasterUsername", "fastcart_admin")
        .prop("Tags", tags("orders-db"));
    let db_secret: Value = match &o.db_secret_arn {
        // An existing secret: its password is read by the RDS driver at apply
        // time and never stored; its rotation stays with its owner.
        Some(arn) => {
            db = db.prop(
                "MasterUserPassword",
                format!("{{{{resolve:secretsmanager:{arn}:SecretString:password}}}}"),
            );
            Value::String(arn.clone())
        }
        // RDS manages the password in Secrets Manager, encrypted with the key;
        // fastcart only sets its rotation.
        None => {
            db = db.prop("ManageMasterUserPassword", true).prop(
                "MasterUserSecret",
                json!({"KmsKeyId": get_att("Key", "Arn")}),
            );
            s.add(
                ResourceSpec::new("DbSecretRotation", "AWS::SecretsManager::RotationSchedule")
                    .prop(
                        "SecretId",
                        get_att("Database", "MasterUserSecret.SecretArn"),
                    )
                    .prop("RotationRules", json!({"AutomaticallyAfterDays": 30})),
            );
            get_att("Database", "MasterUserSecret.SecretArn")
        }
    };
    s.add(db);

    // --- Cache: Redis with an auth token that only Secrets Manager holds.
    s.add(
        ResourceSpec::new("RedisAuthSecret", "AWS::SecretsManager::Secret")
            .prop("Name", name("redis-auth"))
            .prop("Description", format!("fastcart {env}: Redis auth token"))
            .prop("KmsKeyId", get_att("Key", "Arn"))
            .prop(
                "GenerateSecretString",
                json!({"SecretStringTemplate": "{}", "GenerateStringKey": "token",
                       "PasswordLength": 32, "ExcludePunctuation": true}),
            )
            .prop("Tags", tags("redis-auth")),
    );
    s.add(
        ResourceSpec::new("CacheSubnetGroup", "AWS::ElastiCache::SubnetGroup")
            .prop("CacheSubnetGroupName", name("redis-subnet"))
            .prop(
                "Description",
                format!("fastcart {env} cache, private subnets"),
            )
            .prop(
                "SubnetIds",
                json!([r#ref("PrivateSubnet1"), r#ref("PrivateSubnet2")]),
            )
            .prop("Tags", tags("redis-subnet")),
    );
    s.add(
        ResourceSpec::new("Redis", "AWS::ElastiCache::ReplicationGroup")
            .prop("ReplicationGroupId", name("redis"))
            .prop(
                "ReplicationGroupDescription",
                format!("fastcart {env} hot order queries"),
            )
            .prop("Engine", "redis")
            .prop("EngineVersion", "7.0")
            .prop("CacheParameterGroupName", "default.redis7")
            .prop("CacheNodeType", "cache.t3.micro")
            .prop("NumCacheClusters", 2)
            .prop("AutomaticFailoverEnabled", true)
            .prop("MultiAZEnabled", true)
            .prop("CacheSubnetGroupName", r#ref("CacheSubnetGroup"))
            .prop(
                "SecurityGroupIds",
                json!([get_att("RedisSecurityGroup", "GroupId")]),
            )
            .prop("AtRestEncryptionEnabled", true)
            .prop("KmsKeyId", get_att("Key", "Arn"))
            .prop("TransitEncryptionEnabled", true)
            .prop(
                "AuthToken",
                sub("{{resolve:secretsmanager:${RedisAuthSecret}:SecretString:token}}"),
            )
            .prop("Port", REDIS_PORT)
            .prop("SnapshotRetentionLimit", 5)
            .prop("SnapshotWindow", "02:00-03:00")
            .prop("PreferredMaintenanceWindow", "sun:05:00-sun:06:00")
            .prop("Tags", tags("redis")),
    );

    // --- Orders stream and logs.
    s.add(
        ResourceSpec::new("OrdersStream", "AWS::Kinesis::Stream")
            .prop("Name", name("orders-stream"))
            .prop("StreamModeDetails", json!({"StreamMode": "PROVISIONED"}))
            .prop("ShardCount", SHARD_COUNT)
            .prop("RetentionPeriodHours", RETENTION_HOURS)
            .prop(
                "StreamEncryption",
                json!({"EncryptionType": "KMS", "KeyId": get_att("Key", "Arn")}),
            )
            .prop(
                "DesiredShardLevelMetrics",
                json!([
                    "IncomingBytes",
                    "IncomingRecords",
                    "OutgoingBytes",
                    "OutgoingRecords",
                    "WriteProvisionedThroughputExceeded",
                    "ReadProvisionedThroughputExceeded"
                ]),
            )
            .prop("Tags", tags("orders-stream")),
    );
    s.add(
        ResourceSpec::new("LogGroup", "AWS::Logs::LogGroup")
            .prop(
                "LogGroupName",
                format!("/ecs/fastcart-order-processor-{env}"),
            )
            .prop("RetentionInDays", LOG_RETENTION_DAYS)
            .prop("KmsKeyId", get_att("Key", "Arn"))
            .prop("Tags", tags("logs")),
    );

    // --- IAM, scoped to this stack's own resources.
    let assume_ecs_tasks = crate::ecs_tasks_trust_policy();
    let read_db_secret = json!({"Sid": "ReadDatabaseSecret", "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": db_secret.clone()});
    let decrypt = json!({"Sid": "DecryptWithStackKey", "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": get_att("Key", "Arn")});
    s.add(
        ResourceSpec::new("ExecutionRole", "AWS::IAM::Role")
            .prop("RoleName", name("ecs-exec-role"))
            .prop("Description", format!("fastcart {env}: pulls images, writes logs, injects the database secret"))
            .prop("AssumeRolePolicyDocument", assume_ecs_tasks.clone())
            .prop(
                "ManagedPolicyArns",
                crate::ecs_task_execution_policy(),
            )
            .prop(
                "Policies",
                json!([{"PolicyName": "database-secret", "PolicyDocument": {
                    "Version": "2012-10-17", "Statement": [read_db_secret.clone(), decrypt.clone()]}}]),
            )
            .prop("Tags", tags("ecs-exec-role")),
    );
    s.add(
        ResourceSpec::new("TaskRole", "AWS::IAM::Role")
            .prop("RoleName", name("ecs-task-role"))
            .prop("Description", format!("fastcart {env}: the order processor's own permissions"))
            .prop("AssumeRolePolicyDocument", assume_ecs_tasks)
            .prop(
                "Policies",
                json!([{"PolicyName": "order-processor", "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Sid": "ReadOrdersStream", "Effect": "Allow",
                         "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                                    "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"],
                         "Resource": get_att("OrdersStream", "Arn")},
                        read_db_secret,
                        decrypt,
                        {"Sid": "WriteOwnLogs", "Effect": "Allow",
                         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                         "Resource": get_att("LogGroup", "Arn")}
                    ]}}]),
            )
            .prop("Tags", tags("ecs-task-role")),
    );

    // --- Images and compute.
    s.add(
        ResourceSpec::new("Repository", "AWS::ECR::Repository")
            .prop("RepositoryName", name("order-processor"))
            .prop("ImageScanningConfiguration", json!({"ScanOnPush": true}))
            .prop("ImageTagMutability", "MUTABLE")
            .prop(
                "EncryptionConfiguration",
                json!({"EncryptionType": "KMS", "KmsKey": get_att("Key", "Arn")}),
            )
            .prop("EmptyOnDelete", true)
            .prop("Tags", tags("order-processor")),
    );
    s.add(
        ResourceSpec::new("Cluster", "AWS::ECS::Cluster")
            .prop("ClusterName", name("cluster"))
            .prop(
                "ClusterSettings",
                json!([{"Name": "containerInsights", "Value": "enabled"}]),
            )
            .prop("Tags", tags("cluster")),
    );
    let env_var = |k: &str, v: Value| json!({"Name": k, "Value": v});
    s.add(
        ResourceSpec::new("TaskDefinition", "AWS::ECS::TaskDefinition")
            .prop("Family", name("order-processor"))
            .prop("Cpu", "512")
            .prop("Memory", "1024")
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
                        env_var("DB_HOST", get_att("Database", "Endpoint.Address")),
                        env_var("DB_NAME", json!(DB_NAME)),
                        env_var("DB_PORT", sub("${Database.Endpoint.Port}")),
                        env_var("REDIS_HOST", get_att("Redis", "PrimaryEndPoint.Address")),
                        env_var("REDIS_PORT", json!(REDIS_PORT.to_string())),
                        env_var("KINESIS_STREAM", r#ref("OrdersStream")),
                        env_var("AWS_REGION", r#ref("AWS::Region")),
                    ],
                    "Secrets": [{"Name": "DB_CREDENTIALS", "ValueFrom": db_secret.clone()}],
                    "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                        "awslogs-group": r#ref("LogGroup"),
                        "awslogs-region": r#ref("AWS::Region"),
                        "awslogs-stream-prefix": "ecs"
                    }}
                }]),
            )
            .prop("Tags", tags("order-processor")),
    );
    s.add(
        ResourceSpec::new("Service", "AWS::ECS::Service")
            .prop("ServiceName", name("order-processor"))
            .prop("Cluster", r#ref("Cluster"))
            .prop("TaskDefinition", r#ref("TaskDefinition"))
            .prop("DesiredCount", DESIRED_COUNT)
            .prop("LaunchType", "FARGATE")
            .prop(
                "NetworkConfiguration",
                json!({"AwsvpcConfiguration": {
                    "Subnets": [r#ref("PrivateSubnet1"), r#ref("PrivateSubnet2")],
                    "SecurityGroups": [get_att("EcsSecurityGroup", "GroupId")],
                    "AssignPublicIp": "DISABLED"}}),
            )
            .prop("Tags", tags("order-processor"))
            .depends_on("PrivateDefaultRoute"),
    );

    // --- Alarms.
    s.add(
        ResourceSpec::new("IteratorAgeAlarm", "AWS::CloudWatch::Alarm")
            .prop("AlarmName", name("kinesis-iterator-age"))
            .prop(
                "AlarmDescription",
                "Orders are waiting in the stream: the processor is falling behind",
            )
            .prop("Namespace", "AWS/Kinesis")
            .prop("MetricName", "GetRecords.IteratorAgeMilliseconds")
            .prop(
                "Dimensions",
                json!([{"Name": "StreamName", "Value": r#ref("OrdersStream")}]),
            )
            .prop("Statistic", "Average")
            .prop("Period", 300)
            .prop("EvaluationPeriods", 2)
            .prop("Threshold", 60000)
            .prop("ComparisonOperator", "GreaterThanThreshold")
            .prop("TreatMissingData", "notBreaching")
            .prop("Tags", tags("kinesis-iterator-age")),
    );
    s.add(
        ResourceSpec::new("DatabaseCpuAlarm", "AWS::CloudWatch::Alarm")
            .prop("AlarmName", name("rds-cpu"))
            .prop("AlarmDescription", "The orders database is busy")
            .prop("Namespace", "AWS/RDS")
            .prop("MetricName", "CPUUtilization")
            .prop(
                "Dimensions",
                json!([{"Name": "DBInstanceIdentifier", "Value": r#ref("Database")}]),
            )
            .prop("Statistic", "Average")
            .prop("Period", 300)
            .prop("EvaluationPeriods", 2)
            .prop("Threshold", 80)
            .prop("ComparisonOperator", "GreaterThanThreshold")
            .prop("TreatMissingData", "notBreaching")
            .prop("Tags", tags("rds-cpu")),
    );

    // --- Outputs (written to cfn-outputs/flat-outputs.json after every
    // apply), every key the Pulumi program writes, in its JSON types: lists
    // are lists and counts are numbers because the stack gives them so.
    let ids = |ids: &[&str]| Value::Array(ids.iter().map(|i| r#ref(i)).collect());
    let arn = |service: &str, rest: &str| {
        sub(&format!(
            "arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{rest}"
        ))
    };
    let current_version =
        |secret: Value| lookup("AWS::SecretsManager::Secret", secret, "CurrentVersionId");
    let subnet_arns = |ids: &[&str]| {
        Value::Array(
            ids.iter()
                .map(|i| arn("ec2", &format!("subnet/${{{i}}}")))
                .collect(),
        )
    };
    let public = ["PublicSubnet1", "PublicSubnet2"];
    let private = ["PrivateSubnet1", "PrivateSubnet2"];
    let redis_endpoint = get_att("Redis", "PrimaryEndPoint.Address");
    let outputs: Vec<(&str, Value)> = vec![
        ("environment_suffix", json!(env)),
        ("region", r#ref("AWS::Region")),
        (
            "availability_zones",
            json!([select(0, get_azs()), select(1, get_azs())]),
        ),
        ("kms_key_id", r#ref("Key")),
        ("kms_key_arn", get_att("Key", "Arn")),
        ("kms_alias_name", r#ref("KeyAlias")),
        ("kms_alias_arn", arn("kms", "${KeyAlias}")),
        ("vpc_id", r#ref("Vpc")),
        ("vpc_arn", arn("ec2", "vpc/${Vpc}")),
        ("vpc_cidr", json!(VPC_CIDR)),
        ("internet_gateway_id", r#ref("InternetGateway")),
        ("nat_gateway_id", r#ref("NatGateway")),
        ("nat_eip_allocation_id", get_att("NatEip", "AllocationId")),
        ("nat_eip_public_ip", get_att("NatEip", "PublicIp")),
        ("public_subnet_ids", ids(&public)),
        ("public_subnet_arns", subnet_arns(&public)),
        ("private_subnet_ids", ids(&private)),
        ("private_subnet_arns", subnet_arns(&private)),
        ("public_route_table_id", r#ref("PublicRouteTable")),
        ("private_route_table_id", r#ref("PrivateRouteTable")),
        ("public_route_id", r#ref("PublicDefaultRoute")),
        ("private_route_id", r#ref("PrivateDefaultRoute")),
        (
            "ecs_security_group_id",
            get_att("EcsSecurityGroup", "GroupId"),
        ),
        (
            "rds_security_group_id",
            get_att("RdsSecurityGroup", "GroupId"),
        ),
        (
            "redis_security_group_id",
            get_att("RedisSecurityGroup", "GroupId"),
        ),
        // A secret's id is its ARN, as Pulumi's is.
        ("db_secret_id", db_secret.clone()),
        ("db_secret_arn", db_secret.clone()),
        // No attribute publishes a version: it is read after the apply.
        ("db_secret_version_id", current_version(db_secret)),
        ("redis_secret_id", r#ref("RedisAuthSecret")),
        ("redis_secret_arn", r#ref("RedisAuthSecret")),
        (
            "redis_secret_version_id",
            current_version(r#ref("RedisAuthSecret")),
        ),
        ("db_subnet_group_name", r#ref("DbSubnetGroup")),
        ("rds_instance_id", r#ref("Database")),
        ("rds_instance_arn", get_att("Database", "DBInstanceArn")),
        // address:port, as Pulumi's endpoint is.
        (
            "rds_endpoint",
            sub("${Database.Endpoint.Address}:${Database.Endpoint.Port}"),
        ),
        ("rds_address", get_att("Database", "Endpoint.Address")),
        ("redis_subnet_group_name", r#ref("CacheSubnetGroup")),
        ("redis_replication_group_id", r#ref("Redis")),
        // Cluster mode is off: AWS gives no configuration endpoint, and
        // both carry the primary endpoint (see the README).
        ("redis_endpoint", redis_endpoint.clone()),
        ("redis_configuration_endpoint", redis_endpoint.clone()),
        ("redis_primary_endpoint", redis_endpoint),
        ("redis_port", json!(REDIS_PORT)),
        ("redis_auth_token_enabled", json!(true)),
        ("kinesis_stream_name", r#ref("OrdersStream")),
        ("kinesis_stream_arn", get_att("OrdersStream", "Arn")),
        ("kinesis_stream_shard_count", json!(SHARD_COUNT)),
        ("kinesis_stream_retention_period", json!(RETENTION_HOURS)),
        ("log_group_name", r#ref("LogGroup")),
        // Without the `:*` that CloudWatch Logs' own ARN ends in.
        ("log_group_arn", arn("logs", "log-group:${LogGroup}")),
        ("log_group_kms_key", get_att("Key", "Arn")),
        ("log_group_retention_days", json!(LOG_RETENTION_DAYS)),
        ("ecs_execution_role_name", r#ref("ExecutionRole")),
        ("ecs_execution_role_arn", get_att("ExecutionRole", "Arn")),
        ("ecs_task_role_name", r#ref("TaskRole")),
        ("ecs_task_role_arn", get_att("TaskRole", "Arn")),
        ("ecs_cluster_name", r#ref("Cluster")),
        ("ecs_cluster_arn", get_att("Cluster", "Arn")),
        ("ecs_service_name", get_att("Service", "Name")),
        ("ecs_service_id", r#ref("Service")),
        ("ecs_service_cluster_arn", get_att("Cluster", "Arn")),
        ("ecs_service_desired_count", json!(DESIRED_COUNT)),
        ("task_definition_arn", r#ref("TaskDefinition")),
        ("task_definition_family", json!(name("order-processor"))),
        ("ecr_repository_url", get_att("Repository", "RepositoryUri")),
        ("ecr_repository_arn", get_att("Repository", "Arn")),
        ("ecr_repository_name", r#ref("Repository")),
        ("kinesis_iterator_age_alarm_name", r#ref("IteratorAgeAlarm")),
        (
            "kinesis_iterator_age_alarm_arn",
            get_att("IteratorAgeAlarm", "Arn"),
        ),
        ("rds_cpu_alarm_name", r#ref("DatabaseCpuAlarm")),
        ("rds_cpu_alarm_arn", get_att("DatabaseCpuAlarm", "Arn")),
        ("flat_outputs_path", json!("cfn-outputs/flat-outputs.json")),
    ];
    for (k, v) in outputs {
        s.output(k, v);
    }
    s
}

/// The key policy: the account administers the key; CloudWatch Logs of this
/// region and the services that encrypt with it may use it.
fn key_policy() -> Value {
    let use_key = json!([
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
        "kms:CreateGrant"
    ]);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow",
             "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "CloudWatchLogsEncrypts", "Effect": "Allow",
             "Principal": {"Service": sub("logs.${AWS::Region}.amazonaws.com")},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*",
             "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                 sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*")}}},
            {"Sid": "ServicesEncrypt", "Effect": "Allow",
             "Principal": {"Service": ["ecs-tasks.amazonaws.com", "rds.amazonaws.com",
                 "elasticache.amazonaws.com", "kinesis.amazonaws.com",
                 "secretsmanager.amazonaws.com", "ecr.amazonaws.com"]},
             "Action": use_key, "Resource": "*"}
        ]
    })
}

/// `PublicSubnet1` → `public-subnet-1`.
fn kebab(id: &str) -> String {
    let mut out = String::new();
    for (i, ch) in id.chars().enumerate() {
        if (ch.is_ascii_uppercase() || ch.is_ascii_digit()) && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(env: &str) -> StackOptions {
        StackOptions {
            env: env.into(),
            region: "eu-central-1".into(),
            db_secret_arn: None,
        }
    }

    #[test]
    fn every_name_carries_the_suffix() {
        let s = stack(&opts("pr42"));
        assert_eq!(s.env, "pr42");
        for r in &s.resources {
            for key in [
                "RoleName",
                "GroupName",
                "Name",
                "AliasName",
                "ClusterName",
                "LogGroupName",
                "RepositoryName",
                "ServiceName",
                "Family",
                "AlarmName",
                "DBInstanceIdentifier",
                "ReplicationGroupId",
                "DBSubnetGroupName",
                "CacheSubnetGroupName",
            ] {
                if let Some(v) = r.properties.get(key).and_then(Value::as_str) {
                    assert!(v.contains("pr42"), "{}.{key} = {v}", r.logical_id);
                }
            }
        }
        assert_eq!(kebab("PublicSubnet1"), "public-subnet-1");
    }

    /// The physical names the Pulumi program gives, so that an import
    /// finds and keeps every resource; and no name where it lets Pulumi
    /// pick one (the security groups, the database's subnet group).
    #[test]
    fn names_are_the_pulumi_programs() {
        let s = stack(&opts("pr42"));
        let name = |id: &str, key: &str| s.resource(id).unwrap().properties.get(key).cloned();
        for (id, key, want) in [
            ("Database", "DBInstanceIdentifier", "fastcart-rds-pr42"),
            ("Redis", "ReplicationGroupId", "fastcart-redis-pr42"),
            (
                "CacheSubnetGroup",
                "CacheSubnetGroupName",
                "fastcart-redis-subnet-pr42",
            ),
            ("RedisAuthSecret", "Name", "fastcart-redis-auth-pr42"),
            ("OrdersStream", "Name", "fastcart-orders-stream-pr42"),
            ("ExecutionRole", "RoleName", "fastcart-ecs-exec-role-pr42"),
            ("TaskRole", "RoleName", "fastcart-ecs-task-role-pr42"),
            (
                "Repository",
                "RepositoryName",
                "fastcart-order-processor-pr42",
            ),
            ("Cluster", "ClusterName", "fastcart-cluster-pr42"),
            ("TaskDefinition", "Family", "fastcart-order-processor-pr42"),
            ("Service", "ServiceName", "fastcart-order-processor-pr42"),
            (
                "IteratorAgeAlarm",
                "AlarmName",
                "fastcart-kinesis-iterator-age-pr42",
            ),
            ("DatabaseCpuAlarm", "AlarmName", "fastcart-rds-cpu-pr42"),
            (
                "LogGroup",
                "LogGroupName",
                "/ecs/fastcart-order-processor-pr42",
            ),
            ("KeyAlias", "AliasName", "alias/fastcart-pr42"),
        ] {
            assert_eq!(name(id, key), Some(json!(want)), "{id}.{key}");
        }
        for (id, key, tag) in [
            ("EcsSecurityGroup", "GroupName", "fastcart-ecs-sg-pr42"),
            ("RdsSecurityGroup", "GroupName", "fastcart-rds-sg-pr42"),
            ("RedisSecurityGroup", "GroupName", "fastcart-redis-sg-pr42"),
            (
                "DbSubnetGroup",
                "DBSubnetGroupName",
                "fastcart-db-subnet-pr42",
            ),
        ] {
            assert_eq!(name(id, key), None, "{id} is named by AWS");
            assert_eq!(
                name(id, "Tags"),
                Some(json!([{"Key": "Name", "Value": tag}]))
            );
        }
        assert_eq!(s.tags["Region"], "eu-central-1");
    }

    /// Outputs in the Pulumi program's JSON types, from the stack's own
    /// values (a list stays a list), not from a per-key rule.
    #[test]
    fn outputs_are_lists_numbers_and_strings_as_the_pulumi_programs() {
        let s = stack(&opts("dev"));
        assert_eq!(s.outputs.len(), 71, "{:?}", s.outputs.keys());
        for k in [
            "availability_zones",
            "public_subnet_ids",
            "private_subnet_arns",
        ] {
            assert_eq!(s.outputs[k].as_array().map(Vec::len), Some(2), "{k}");
        }
        for (k, n) in [
            ("redis_port", 6379),
            ("kinesis_stream_shard_count", 2),
            ("kinesis_stream_retention_period", 24),
            ("log_group_retention_days", 7),
            ("ecs_service_desired_count", 2),
        ] {
            assert_eq!(s.outputs[k], json!(n), "{k}");
        }
        assert_eq!(s.outputs["redis_auth_token_enabled"], json!(true));
    }

    #[test]
    fn nothing_is_open_to_the_world_inbound() {
        let s = stack(&opts("dev"));
        for r in s
            .resources
            .iter()
            .filter(|r| r.type_name == "AWS::EC2::SecurityGroup")
        {
            let ingress = r.properties["SecurityGroupIngress"].to_string();
            assert!(
                !ingress.contains("0.0.0.0/0"),
                "{}: {ingress}",
                r.logical_id
            );
        }
    }

    #[test]
    fn an_existing_db_secret_replaces_the_managed_one() {
        let mut o = opts("dev");
        o.db_secret_arn =
            Some("arn:aws:secretsmanager:eu-central-1:123456789012:secret:db-AbCdEf".into());
        let s = stack(&o);
        let db = s.resource("Database").unwrap();
        assert!(!db.properties.contains_key("ManageMasterUserPassword"));
        assert!(s.resource("DbSecretRotation").is_none());
        assert_eq!(s.outputs["db_secret_arn"], json!(o.db_secret_arn.unwrap()));
    }
}
