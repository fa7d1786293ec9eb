//! RDS and ElastiCache: subnet groups, a PostgreSQL instance and a Redis
//! replication group, with secrets handed over as dynamic references
//! (`{{resolve:secretsmanager:...}}`) that only the drivers resolve.

use std::path::Path;
use std::time::Duration;

use fastcart_engine::{get_att, r#ref, sub, ApplyOptions, ResourceSpec, StackSpec};
use serde_json::{json, Value};

use crate::common::{cloud, lifecycle, Cloud};

/// A VPC with two subnets in different zones, as subnet groups need.
fn network(c: &Cloud, s: &mut StackSpec, prefix: &str) {
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", format!("{prefix}.0.0/16")));
    for (i, id) in ["SubnetA", "SubnetB"].into_iter().enumerate() {
        s.add(
            ResourceSpec::new(id, "AWS::EC2::Subnet")
                .prop("VpcId", r#ref("Vpc"))
                .prop("CidrBlock", format!("{prefix}.{}.0/24", i + 1))
                .prop("AvailabilityZone", c.ctx.availability_zones[i].clone()),
        );
    }
}

fn db_subnets(name: &str, purpose: &str) -> ResourceSpec {
    ResourceSpec::new("DbSubnets", "AWS::RDS::DBSubnetGroup")
        .prop("DBSubnetGroupName", name)
        .prop("DBSubnetGroupDescription", "fastcart database subnets")
        .prop("SubnetIds", json!([r#ref("SubnetA"), r#ref("SubnetB")]))
        .prop("Tags", json!([{"Key": "Purpose", "Value": purpose}]))
}

#[tokio::test]
async fn db_subnet_group() {
    let c = cloud("dbsubnet").await;
    let stack = |name: &str, purpose: &str| {
        let mut s = c.stack();
        network(&c, &mut s, "10.40");
        s.add(db_subnets(name, purpose));
        s
    };
    lifecycle(
        &c,
        "AWS::RDS::DBSubnetGroup",
        "DbSubnets",
        &stack(&c.name("db"), "a"),
        // Tags only: moto 5.2.5's ModifyDBSubnetGroup drops the group it
        // modifies from its store.
        Some(&stack(&c.name("db"), "b")),
        Some(&stack(&c.name("db2"), "b")),
    )
    .await;
}

const CACHE_SUBNETS: &str = "AWS::ElastiCache::SubnetGroup";

fn cache_subnets(c: &Cloud, name: &str, purpose: &str) -> StackSpec {
    let mut s = c.stack();
    network(c, &mut s, "10.41");
    s.add(
        ResourceSpec::new("CacheSubnets", CACHE_SUBNETS)
            .prop("CacheSubnetGroupName", name)
            .prop("Description", "fastcart cache subnets")
            .prop("SubnetIds", json!([r#ref("SubnetA"), r#ref("SubnetB")]))
            .prop("Tags", json!([{"Key": "Purpose", "Value": purpose}])),
    );
    s
}

/// The update retags the group in place (moto 5.2.5 has no
/// `ModifyCacheSubnetGroup`); `DeleteCacheSubnetGroup` comes from the test
/// emulator's patch (tests/support/moto_server.py).
#[tokio::test]
async fn cache_subnet_group_lifecycle() {
    let c = cloud("cachesub-all").await;
    lifecycle(
        &c,
        CACHE_SUBNETS,
        "CacheSubnets",
        &cache_subnets(&c, &c.name("cache"), "a"),
        Some(&cache_subnets(&c, &c.name("cache"), "b")),
        Some(&cache_subnets(&c, &c.name("cache2"), "b")),
    )
    .await;
}

/// PostgreSQL in its own subnet group, encrypted with a key of the stack, its
/// master password managed by RDS in Secrets Manager.
fn database(c: &Cloud, id: &str, backup_days: i64, logs: &[&str]) -> StackSpec {
    let mut s = c.stack();
    network(c, &mut s, "10.42");
    s.add(db_subnets(&c.name("dbi"), "database"));
    s.add(
        ResourceSpec::new("DbKey", "AWS::KMS::Key")
            .prop("Description", "fastcart test database key"),
    );
    s.add(
        ResourceSpec::new("Db", "AWS::RDS::DBInstance")
            .prop("DBInstanceIdentifier", id)
            .prop("DBInstanceClass", "db.t3.micro")
            .prop("Engine", "postgres")
            .prop("EngineVersion", "16.3")
            .prop("AllocatedStorage", "20")
            .prop("StorageType", "gp3")
            .prop("StorageEncrypted", true)
            .prop("KmsKeyId", get_att("DbKey", "Arn"))
            .prop("DBName", "fastcart")
            .prop("MasterUsername", "fastcart")
            .prop("ManageMasterUserPassword", true)
            .prop("DBSubnetGroupName", r#ref("DbSubnets"))
            .prop("PubliclyAccessible", false)
            .prop("MultiAZ", false)
            .prop("BackupRetentionPeriod", backup_days)
            .prop("PreferredBackupWindow", "03:00-03:30")
            .prop("EnableCloudwatchLogsExports", json!(logs))
            .prop("DeletionProtection", false)
            .prop("CopyTagsToSnapshot", true)
            .prop("AutoMinorVersionUpgrade", true)
            .prop("DeleteAutomatedBackups", true)
            .prop("Tags", json!([{"Key": "Purpose", "Value": "orders"}])),
    );
    s
}

#[tokio::test]
async fn db_instance() {
    let c = cloud("dbi").await;
    lifecycle(
        &c,
        "AWS::RDS::DBInstance",
        "Db",
        &database(&c, &c.name("db"), 7, &["postgresql"]),
        Some(&database(&c, &c.name("db"), 3, &["postgresql", "upgrade"])),
        Some(&database(&c, &c.name("db2"), 3, &["postgresql", "upgrade"])),
    )
    .await;
}

#[tokio::test]
async fn reading_many_db_instances_is_one_request() {
    let c = cloud("dbi-batch").await;
    let mut s = c.stack();
    s.add(
        ResourceSpec::new("DbSecret", "AWS::SecretsManager::Secret")
            .prop("Name", c.name("db-secret"))
            .prop(
                "GenerateSecretString",
                json!({
                    "SecretStringTemplate": "{\"username\":\"app\"}",
                    "GenerateStringKey": "password",
                    "PasswordLength": 24,
                    "ExcludePunctuation": true
                }),
            ),
    );
    for i in 0..3 {
        s.add(
            ResourceSpec::new(format!("Db{i}"), "AWS::RDS::DBInstance")
                .prop("DBInstanceIdentifier", c.name(&format!("db{i}")))
                .prop("DBInstanceClass", "db.t3.micro")
                .prop("Engine", "postgres")
                .prop("AllocatedStorage", "20")
                .prop("MasterUsername", "app")
                // A password of the stack's own, resolved by the driver.
                .prop(
                    "MasterUserPassword",
                    sub("{{resolve:secretsmanager:${DbSecret}:SecretString:password}}"),
                ),
        );
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("rds:DescribeDBInstances");
    c.plan(&s).await;
    assert_eq!(
        c.clients.requests.get("rds:DescribeDBInstances") - before,
        1
    );
    let db = c
        .read("AWS::RDS::DBInstance", &c.name("db0"))
        .await
        .expect("db0 reads back");
    assert!(db.attributes.contains_key("Endpoint.Address"), "{db:?}");
    assert!(db.attributes.contains_key("DBInstanceArn"), "{db:?}");
    assert!(!db.properties.contains_key("MasterUserPassword"), "{db:?}");
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

/// A Redis replication group whose auth token is a key of a generated secret
/// of the same stack, handed over as a dynamic reference.
fn redis(c: &Cloud, id: &str, description: &str, snapshot_days: i64, token_key: &str) -> StackSpec {
    let mut s = c.stack();
    s.add(
        ResourceSpec::new("RedisSecret", "AWS::SecretsManager::Secret")
            .prop("Name", c.name("redis-token"))
            .prop(
                "GenerateSecretString",
                json!({
                    "SecretStringTemplate": "{}",
                    "GenerateStringKey": "token",
                    "PasswordLength": 32,
                    "ExcludePunctuation": true
                }),
            ),
    );
    s.add(
        ResourceSpec::new("CacheKey", "AWS::KMS::Key")
            .prop("Description", "fastcart test cache key"),
    );
    let reference =
        "{{resolve:secretsmanager:${RedisSecret}:SecretString:".to_string() + token_key + "}}";
    // No CacheSubnetGroupName: moto 5.2.5 cannot delete a cache subnet
    // group, so the group stays in the default network here.
    s.add(
        ResourceSpec::new("Cache", "AWS::ElastiCache::ReplicationGroup")
            .prop("ReplicationGroupId", id)
            .prop("ReplicationGroupDescription", description)
            .prop("Engine", "redis")
            .prop("EngineVersion", "7.0")
            .prop("CacheParameterGroupName", "default.redis7")
            .prop("CacheNodeType", "cache.t3.micro")
            // Two nodes, a primary and a replica (sent as
            // ReplicasPerNodeGroup 1, which moto honours).
            .prop("NumCacheClusters", 2)
            .prop("AutomaticFailoverEnabled", true)
            .prop("MultiAZEnabled", true)
            .prop("TransitEncryptionEnabled", true)
            .prop("AtRestEncryptionEnabled", true)
            .prop("KmsKeyId", get_att("CacheKey", "Arn"))
            .prop("AuthToken", sub(&reference))
            .prop("SnapshotRetentionLimit", snapshot_days)
            .prop("Tags", json!([{"Key": "Purpose", "Value": "sessions"}])),
    );
    s
}

#[tokio::test]
async fn replication_group() {
    let c = cloud("redis").await;
    lifecycle(
        &c,
        "AWS::ElastiCache::ReplicationGroup",
        "Cache",
        &redis(&c, &c.name("cache"), "fastcart sessions", 1, "token"),
        Some(&redis(
            &c,
            &c.name("cache"),
            "fastcart sessions and carts",
            3,
            "token",
        )),
        Some(&redis(
            &c,
            &c.name("cache2"),
            "fastcart sessions and carts",
            3,
            "token",
        )),
    )
    .await;
}

#[tokio::test]
async fn reading_many_replication_groups_is_one_request() {
    let c = cloud("redis-batch").await;
    let mut s = c.stack();
    for i in 0..3 {
        s.add(
            ResourceSpec::new(format!("Cache{i}"), "AWS::ElastiCache::ReplicationGroup")
                .prop("ReplicationGroupId", c.name(&format!("rg{i}")))
                .prop("ReplicationGroupDescription", format!("cache {i}"))
                .prop("Engine", "redis")
                .prop("CacheNodeType", "cache.t3.micro"),
        );
    }
    c.converge(&s).await;
    let op = "elasticache:DescribeReplicationGroups";
    let before = c.clients.requests.get(op);
    c.plan(&s).await;
    assert_eq!(c.clients.requests.get(op) - before, 1);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("the state directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            text.push_str(&files_text(&path));
        } else {
            let bytes = std::fs::read(&path).expect("a state file");
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[tokio::test]
async fn auth_token_never_reaches_state_or_errors() {
    let c = cloud("redis-secret").await;
    let s = redis(&c, &c.name("tok"), "fastcart token check", 0, "token");
    c.converge(&s).await;
    let secret_arn = c.physical_id(&s, "RedisSecret");
    let secret = c
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .expect("the generated secret");
    let doc: Value =
        serde_json::from_str(secret.secret_string().expect("a secret string")).expect("JSON");
    let token = doc["token"].as_str().expect("a token").to_string();
    assert!(!token.is_empty());
    let on_disk = files_text(c.dir.path());
    assert!(
        on_disk.contains(&c.name("tok")),
        "not the state of this stack"
    );
    assert!(
        !on_disk.contains(&token),
        "the resolved auth token is in the state directory"
    );

    // A key the secret does not have fails the create; the error names the
    // key, never the secret.
    let bad = cloud("redis-badkey").await;
    let s2 = redis(&bad, &bad.name("tok"), "fastcart token check", 0, "nokey");
    let mut session = bad.session(&s2);
    let plan = session
        .plan(&s2, &bad.registry, &bad.ctx)
        .await
        .expect("plan");
    let opts = ApplyOptions {
        retry_base: Duration::from_millis(50),
        ..ApplyOptions::default()
    };
    let report = session
        .apply(&s2, &bad.registry, &bad.ctx, &plan, opts)
        .await
        .expect("apply runs");
    drop(session);
    assert!(!report.succeeded(), "{report:#?}");
    let failure = format!("{report:?}");
    assert!(failure.contains("nokey"), "{failure}");
    let bad_arn = bad.physical_id(&s2, "RedisSecret");
    let bad_secret = bad
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&bad_arn)
        .send()
        .await
        .expect("the other generated secret");
    let bad_doc: Value =
        serde_json::from_str(bad_secret.secret_string().expect("a secret string")).expect("JSON");
    let bad_token = bad_doc["token"].as_str().expect("a token");
    assert!(!failure.contains(bad_token), "the error quotes the secret");
    assert!(!files_text(bad.dir.path()).contains(bad_token));

    bad.converge(&StackSpec::new(&s2.name, &s2.env)).await;
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

/// An Aurora PostgreSQL cluster with a writer and a reader instance, in its
/// own subnet group, encrypted with a key of the stack, its master password
/// managed by RDS in Secrets Manager.
fn aurora(c: &Cloud, id: &str, backup_days: i64, logs: &[&str]) -> StackSpec {
    let mut s = c.stack();
    network(c, &mut s, "10.43");
    s.add(db_subnets(&c.name("aurora"), "aurora"));
    s.add(
        ResourceSpec::new("DbKey", "AWS::KMS::Key")
            .prop("Description", "fastcart test cluster key"),
    );
    s.add(
        ResourceSpec::new("Cluster", "AWS::RDS::DBCluster")
            .prop("DBClusterIdentifier", id)
            .prop("Engine", "aurora-postgresql")
            .prop("EngineVersion", "15.8")
            .prop("DatabaseName", "flaskapi")
            .prop("MasterUsername", "dbadmin")
            .prop("ManageMasterUserPassword", true)
            .prop("StorageEncrypted", true)
            .prop("KmsKeyId", get_att("DbKey", "Arn"))
            .prop("DBSubnetGroupName", r#ref("DbSubnets"))
            .prop("BackupRetentionPeriod", backup_days)
            .prop("PreferredBackupWindow", "03:00-03:30")
            .prop("EnableCloudwatchLogsExports", json!(logs))
            .prop("DeletionProtection", false)
            .prop("DeleteAutomatedBackups", true)
            .prop("Tags", json!([{"Key": "Purpose", "Value": "api"}])),
    );
    for i in 0..2 {
        s.add(
            ResourceSpec::new(format!("Member{i}"), "AWS::RDS::DBInstance")
                .prop("DBInstanceIdentifier", format!("{id}-{i}"))
                .prop("DBClusterIdentifier", r#ref("Cluster"))
                .prop("DBInstanceClass", "db.t3.medium")
                .prop("Engine", "aurora-postgresql")
                .prop("PubliclyAccessible", false),
        );
    }
    // The reader after the writer: the first instance of a cluster writes.
    let reader = s.resources.pop().expect("the reader");
    s.add(reader.depends_on("Member0"));
    s
}

#[tokio::test]
async fn aurora_cluster() {
    let c = cloud("aurora").await;
    lifecycle(
        &c,
        "AWS::RDS::DBCluster",
        "Cluster",
        &aurora(&c, &c.name("db"), 7, &["postgresql"]),
        Some(&aurora(&c, &c.name("db"), 3, &[])),
        // A new identifier: the members move to the new cluster with it.
        Some(&aurora(&c, &c.name("db2"), 3, &[])),
    )
    .await;
}

#[tokio::test]
async fn aurora_members_and_endpoints() {
    let c = cloud("aurora-members").await;
    let s = aurora(&c, &c.name("db"), 7, &["postgresql"]);
    c.converge(&s).await;
    let id = c.physical_id(&s, "Cluster");
    let out = c
        .clients
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
        .expect("the cluster is there");
    let cluster = &out.db_clusters()[0];
    let members = cluster.db_cluster_members();
    assert_eq!(members.len(), 2, "{members:?}");
    let writers: Vec<_> = members
        .iter()
        .filter(|m| m.is_cluster_writer() == Some(true))
        .filter_map(|m| m.db_instance_identifier())
        .collect();
    assert_eq!(writers, [c.physical_id(&s, "Member0")]);
    assert_eq!(cluster.storage_encrypted(), Some(true));
    let seen = c
        .read("AWS::RDS::DBCluster", &id)
        .await
        .expect("reads back");
    for a in [
        "Endpoint.Address",
        "ReadEndpoint.Address",
        "DBClusterArn",
        "MasterUserSecret.SecretArn",
    ] {
        assert!(seen.attributes.contains_key(a), "{a} missing: {seen:?}");
    }
    // One read answers for every cluster of a plan.
    let before = c.clients.requests.get("rds:DescribeDBClusters");
    c.plan(&s).await;
    assert_eq!(c.clients.requests.get("rds:DescribeDBClusters") - before, 1);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}
