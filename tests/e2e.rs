//! The whole product end to end against the local AWS emulator (moto server,
//! installed and started by the test itself): the `fastcart` binary plans,
//! applies, checks drift, repairs, replaces and destroys the FastCart stack;
//! what exists is checked through the AWS SDK, not through fastcart's state.
//!
//! Each test has its own emulator-wide environment suffix, so the two tests
//! share one emulator without seeing each other's resources.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use std::process::{Command, Stdio};
use std::sync::Arc;

use fastcart::cli::Cli;
use fastcart::run::{run, Aws, Provider};
use fastcart_drivers::Clients;
use fastcart_engine::{CloudContext, Registry, StackSpec};
use fastcart_stacks::StackOptions;
use serde_json::Value;

use world::{destroy_leaves_nothing, World, REGION};

fn outputs(w: &World) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(w.path("cfn-outputs/flat-outputs.json")).unwrap();
    let v: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
    v.into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// Every key the Pulumi program writes to flat-outputs.json (but its two
/// secret version ids), with its JSON type there: `[]` a list of strings,
/// `0` a number, `true` a boolean, `text` a non-empty string.
const OUTPUT_KEYS: &[(&str, &str)] = &[
    ("environment_suffix", "text"),
    ("region", "text"),
    ("availability_zones", "[]"),
    ("kms_key_id", "text"),
    ("kms_key_arn", "text"),
    ("kms_alias_name", "text"),
    ("kms_alias_arn", "text"),
    ("vpc_id", "text"),
    ("vpc_arn", "text"),
    ("vpc_cidr", "text"),
    ("internet_gateway_id", "text"),
    ("nat_gateway_id", "text"),
    ("nat_eip_allocation_id", "text"),
    ("nat_eip_public_ip", "text"),
    ("public_subnet_ids", "[]"),
    ("public_subnet_arns", "[]"),
    ("private_subnet_ids", "[]"),
    ("private_subnet_arns", "[]"),
    ("public_route_table_id", "text"),
    ("private_route_table_id", "text"),
    ("public_route_id", "text"),
    ("private_route_id", "text"),
    ("ecs_security_group_id", "text"),
    ("rds_security_group_id", "text"),
    ("redis_security_group_id", "text"),
    ("db_secret_id", "text"),
    ("db_secret_arn", "text"),
    ("db_secret_version_id", "text"),
    ("redis_secret_id", "text"),
    ("redis_secret_arn", "text"),
    ("redis_secret_version_id", "text"),
    ("db_subnet_group_name", "text"),
    ("rds_instance_id", "text"),
    ("rds_instance_arn", "text"),
    ("rds_endpoint", "text"),
    ("rds_address", "text"),
    ("redis_subnet_group_name", "text"),
    ("redis_replication_group_id", "text"),
    ("redis_endpoint", "text"),
    ("redis_configuration_endpoint", "text"),
    ("redis_primary_endpoint", "text"),
    ("redis_port", "0"),
    ("redis_auth_token_enabled", "true"),
    ("kinesis_stream_name", "text"),
    ("kinesis_stream_arn", "text"),
    ("kinesis_stream_shard_count", "0"),
    ("kinesis_stream_retention_period", "0"),
    ("log_group_name", "text"),
    ("log_group_arn", "text"),
    ("log_group_kms_key", "text"),
    ("log_group_retention_days", "0"),
    ("ecs_execution_role_name", "text"),
    ("ecs_execution_role_arn", "text"),
    ("ecs_task_role_name", "text"),
    ("ecs_task_role_arn", "text"),
    ("ecs_cluster_name", "text"),
    ("ecs_cluster_arn", "text"),
    ("ecs_service_name", "text"),
    ("ecs_service_id", "text"),
    ("ecs_service_cluster_arn", "text"),
    ("ecs_service_desired_count", "0"),
    ("task_definition_arn", "text"),
    ("task_definition_family", "text"),
    ("ecr_repository_url", "text"),
    ("ecr_repository_arn", "text"),
    ("ecr_repository_name", "text"),
    ("kinesis_iterator_age_alarm_name", "text"),
    ("kinesis_iterator_age_alarm_arn", "text"),
    ("rds_cpu_alarm_name", "text"),
    ("rds_cpu_alarm_arn", "text"),
    ("flat_outputs_path", "text"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_drift_repair_replace_and_destroy() {
    let w = World::new("e2e");
    let c = w.clients().await;
    let total = w.stack().resources.len();

    // From an empty emulator, plan shows every resource to create.
    let plan = w.expect(2, &["plan", "--detailed-exitcode"]);
    assert!(plan.contains(&format!("{total} to create")), "{plan}");
    let json: Value = serde_json::from_str(&w.expect(0, &["plan", "--json"])).unwrap();
    assert_eq!(json["summary"]["create"], total, "{json}");

    // Apply; without a terminal and without --auto-approve it refuses.
    let refused = w.expect(1, &["apply"]);
    assert!(refused.contains("--auto-approve"), "{refused}");
    let applied = w.expect(0, &["apply", "--auto-approve"]);
    assert!(applied.contains("Apply finished"), "{applied}");

    // Outputs hold every key, in its JSON type, with the real values.
    let out = outputs(&w);
    let raw: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(w.path("cfn-outputs/flat-outputs.json")).unwrap(),
    )
    .unwrap();
    for (k, kind) in OUTPUT_KEYS {
        let v = raw.get(*k);
        let holds = match *kind {
            "[]" => v.and_then(Value::as_array).is_some_and(|a| {
                a.len() == 2 && a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty()))
            }),
            "0" => v.is_some_and(Value::is_u64),
            "true" => v == Some(&Value::Bool(true)),
            _ => v.and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
        };
        assert!(holds, "output {k} is not a {kind}: {v:?}");
    }
    assert_eq!(raw.len(), OUTPUT_KEYS.len(), "{:?}", raw.keys());
    assert_eq!(raw["redis_port"], 6379);
    assert_eq!(raw["kinesis_stream_shard_count"], 2);
    assert_eq!(raw["log_group_retention_days"], 7);
    assert_eq!(out["flat_outputs_path"], "cfn-outputs/flat-outputs.json");
    assert_eq!(
        out["rds_endpoint"],
        format!("{}:5432", out["rds_address"]),
        "address:port, as Pulumi's"
    );
    assert_eq!(
        out["redis_configuration_endpoint"],
        out["redis_primary_endpoint"]
    );
    assert!(
        out["vpc_arn"].ends_with(&format!(":vpc/{}", out["vpc_id"])),
        "{}",
        out["vpc_arn"]
    );
    verify_in_aws(&c, &out, "e2e").await;
    for (version, secret) in [
        ("db_secret_version_id", "db_secret_arn"),
        ("redis_secret_version_id", "redis_secret_arn"),
    ] {
        let d = c
            .secrets
            .describe_secret()
            .secret_id(&out[secret])
            .send()
            .await
            .unwrap();
        let current = d
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v.as_str());
        assert_eq!(Some(out[version].as_str()), current, "{version}");
    }
    let printed = w.expect(0, &["outputs", "--json"]);
    assert!(printed.contains(&out["vpc_id"]), "{printed}");

    // Secrets never reach state, plan or outputs in clear text.
    let token = redis_token(&c, &out["redis_secret_arn"]).await;
    let state_text = std::fs::read_to_string(w.path(".fastcart/fastcart-e2e/state.json")).unwrap();
    let journal =
        std::fs::read_to_string(w.path(".fastcart/fastcart-e2e/journal.jsonl")).unwrap_or_default();
    for (what, text) in [
        ("state", &state_text),
        ("journal", &journal),
        ("apply output", &applied),
    ] {
        assert!(
            !text.contains(&token),
            "the Redis auth token is in the {what}"
        );
    }

    // Plan again: nothing to do.
    w.expect(0, &["plan", "--detailed-exitcode"]);
    w.expect(0, &["drift-check"]);

    // The zones the stack was applied in are kept with it: a plan uses them
    // and does not look them up again.
    let zones: Value = serde_json::from_str::<Value>(&state_text).unwrap()["zones"].clone();
    assert_eq!(zones["region"], REGION, "{zones}");
    assert_eq!(zones["names"].as_array().map(Vec::len), Some(3), "{zones}");
    let verbose = w.expect(0, &["plan", "-v"]);
    assert!(verbose.contains("aws requests:"), "{verbose}");
    assert!(!verbose.contains("DescribeAvailabilityZones"), "{verbose}");

    // Changes behind fastcart's back: drift-check exits 2 and names them.
    let stream = &out["kinesis_stream_name"];
    c.kinesis
        .increase_stream_retention_period()
        .stream_name(stream)
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    open_ssh(&c, &out["ecs_security_group_id"], "10.0.0.0/16").await;
    c.cloudwatch
        .delete_alarms()
        .alarm_names(&out["rds_cpu_alarm_name"])
        .send()
        .await
        .unwrap();
    let drift = w.expect(2, &["drift-check", "--report", "drift.md"]);
    for needle in [
        "OrdersStream",
        "RetentionPeriodHours",
        "48",
        "EcsSecurityGroup",
        "SecurityGroupIngress",
        "DatabaseCpuAlarm",
    ] {
        assert!(
            drift.contains(needle),
            "drift-check does not name {needle}:\n{drift}"
        );
    }
    let report = std::fs::read_to_string(w.path("drift.md")).unwrap();
    assert!(report.contains("OrdersStream"), "{report}");
    let json: Value = serde_json::from_str(&w.expect(2, &["drift-check", "--json"])).unwrap();
    assert!(json.to_string().contains("DatabaseCpuAlarm"), "{json}");

    // Apply repairs it.
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["drift-check"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);

    // SSH opened to the world: a security finding, exit 3; apply closes it.
    open_ssh(&c, &out["ecs_security_group_id"], "0.0.0.0/0").await;
    let finding = w.expect(3, &["drift-check"]);
    assert!(
        finding.contains("SECURITY: SecurityGroupIngress: ingress opened to 0.0.0.0/0"),
        "{finding}"
    );
    // The one added rule, not the whole list.
    assert!(
        finding.contains("SecurityGroupIngress: 1 added, 0 removed, 0 changed"),
        "{finding}"
    );
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["drift-check"]);
    let s = c
        .kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stream_description_summary()
            .unwrap()
            .retention_period_hours(),
        24
    );

    // A stack edit that forces a replacement: a new alarm name.
    let edited = Edited::new(c.clone());
    let plan = edited.plan_text(&w).await;
    assert!(
        plan.contains("-/+") && plan.contains("IteratorAgeAlarm"),
        "{plan}"
    );
    assert!(plan.contains("forces replacement"), "{plan}");
    assert_eq!(edited.run(&w, &["apply", "--auto-approve"]).await, 0);
    assert_eq!(edited.run(&w, &["plan", "--detailed-exitcode"]).await, 0);
    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_names("fastcart-orders-iterator-age-v2-e2e")
        .alarm_names(&out["kinesis_iterator_age_alarm_name"])
        .send()
        .await
        .unwrap();
    let names: Vec<_> = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    assert_eq!(names, vec!["fastcart-orders-iterator-age-v2-e2e"]);

    // Destroy: nothing carries the stack's tags, and the state is empty.
    let refused = w.expect(1, &["destroy"]);
    assert!(refused.contains("--auto-approve"), "{refused}");
    w.expect(0, &["destroy", "--auto-approve"]);
    let left = w.owned(&c).await;
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(w.state()["resources"], serde_json::json!({}));
}

/// The stack with one edit, applied through the CLI's own code path.
struct Edited {
    aws: Aws,
}

impl Edited {
    fn new(clients: Arc<Clients>) -> Edited {
        Edited {
            aws: Aws::with_clients(clients),
        }
    }

    fn edit(mut s: StackSpec) -> StackSpec {
        for r in &mut s.resources {
            if r.logical_id == "IteratorAgeAlarm" {
                let env = s.env.clone();
                r.properties.insert(
                    "AlarmName".into(),
                    format!("fastcart-orders-iterator-age-v2-{env}").into(),
                );
            }
        }
        s
    }

    async fn plan_text(&self, w: &World) -> String {
        let stack = Self::edit(w.stack());
        let ctx: CloudContext = self.aws.context(REGION, None).await.unwrap();
        let mut session =
            fastcart_engine::Session::open(w.path(".fastcart"), "fastcart", &w.env, "test")
                .unwrap();
        let plan = session
            .plan(&stack, self.aws.registry(), &ctx)
            .await
            .unwrap();
        fastcart_engine::render_plan(&plan)
    }

    async fn run(&self, w: &World, args: &[&str]) -> u8 {
        let mut argv = vec!["fastcart".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let dir = w.dir.path().display().to_string();
        argv.extend([
            "--env".into(),
            w.env.clone(),
            "--state-dir".into(),
            format!("{dir}/.fastcart"),
            "--outputs-dir".into(),
            format!("{dir}/cfn-outputs"),
        ]);
        let cli = <Cli as clap::Parser>::try_parse_from(&argv).unwrap();
        run(cli, self, false)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
    }
}

#[async_trait::async_trait]
impl Provider for Edited {
    fn registry(&self) -> &Registry {
        self.aws.registry()
    }
    fn service_limits(&self) -> BTreeMap<String, usize> {
        self.aws.service_limits()
    }
    async fn context(
        &self,
        region: &str,
        zones: Option<&[String]>,
    ) -> miette::Result<CloudContext> {
        self.aws.context(region, zones).await
    }
    fn stack(&self, name: &str, options: &StackOptions) -> Option<StackSpec> {
        self.aws.stack(name, options).map(Self::edit)
    }
    fn stack_names(&self) -> Vec<String> {
        self.aws.stack_names()
    }
}

async fn redis_token(c: &Clients, arn: &str) -> String {
    let v = c
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    let token = doc["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32);
    token
}

/// The resources exist with the stack's properties, read through the SDK.
async fn verify_in_aws(c: &Clients, out: &BTreeMap<String, String>, env: &str) {
    use aws_sdk_ec2::types::Filter;
    let vpc_filter = || {
        Filter::builder()
            .name("vpc-id")
            .values(&out["vpc_id"])
            .build()
    };

    // KMS: rotation on, alias to the key.
    let key = &out["kms_key_id"];
    let rot = c
        .kms
        .get_key_rotation_status()
        .key_id(key)
        .send()
        .await
        .unwrap();
    assert!(rot.key_rotation_enabled());
    let aliases = c.kms.list_aliases().key_id(key).send().await.unwrap();
    assert!(aliases
        .aliases()
        .iter()
        .any(|a| a.alias_name() == Some(&format!("alias/fastcart-{env}"))));

    // Network.
    let vpcs = c
        .ec2
        .describe_vpcs()
        .vpc_ids(&out["vpc_id"])
        .send()
        .await
        .unwrap();
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert!(vpc
        .tags()
        .iter()
        .any(|t| t.key() == Some("Application") && t.value() == Some("FastCartOrderProcessing")));
    assert!(vpc
        .tags()
        .iter()
        .any(|t| t.key() == Some("Region") && t.value() == Some(REGION)));
    let subnets = c
        .ec2
        .describe_subnets()
        .filters(vpc_filter())
        .send()
        .await
        .unwrap();
    let mut cidrs: Vec<_> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.cidr_block())
        .collect();
    cidrs.sort();
    assert_eq!(
        cidrs,
        vec!["10.0.1.0/24", "10.0.11.0/24", "10.0.12.0/24", "10.0.2.0/24"]
    );
    let azs: std::collections::BTreeSet<_> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    assert_eq!(azs.len(), 2, "two availability zones");
    let nat = c
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&out["nat_gateway_id"])
        .send()
        .await
        .unwrap();
    assert_eq!(
        nat.nat_gateways()[0].state().map(|s| s.as_str()),
        Some("available")
    );
    let tables = c
        .ec2
        .describe_route_tables()
        .filters(vpc_filter())
        .send()
        .await
        .unwrap();
    let routes: Vec<String> = tables
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| {
            r.gateway_id()
                .or(r.nat_gateway_id())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        routes.contains(&out["internet_gateway_id"]) && routes.contains(&out["nat_gateway_id"]),
        "{routes:?}"
    );

    // Security groups: named by AWS, known by their Name tags (as the Pulumi
    // program's); nothing open to the world inbound; RDS and Redis from ECS
    // only.
    let groups = c
        .ec2
        .describe_security_groups()
        .filters(vpc_filter())
        .send()
        .await
        .unwrap();
    for g in groups.security_groups() {
        for p in g.ip_permissions() {
            assert!(
                p.ip_ranges()
                    .iter()
                    .all(|r| r.cidr_ip() != Some("0.0.0.0/0")),
                "{g:?}"
            );
        }
    }
    for (key, tag) in [
        ("ecs_security_group_id", "ecs-sg"),
        ("rds_security_group_id", "rds-sg"),
        ("redis_security_group_id", "redis-sg"),
    ] {
        let g = groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(&out[key]))
            .unwrap();
        let name_tag = g.tags().iter().find(|t| t.key() == Some("Name"));
        let want = format!("fastcart-{tag}-{env}");
        assert_eq!(name_tag.and_then(|t| t.value()), Some(want.as_str()));
        assert_ne!(
            g.group_name(),
            Some(want.as_str()),
            "the name is AWS's pick"
        );
    }
    for (key, port) in [
        ("rds_security_group_id", 5432),
        ("redis_security_group_id", 6379),
    ] {
        let g = groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(&out[key]))
            .unwrap();
        let p = &g.ip_permissions()[0];
        assert_eq!(p.from_port(), Some(port));
        assert_eq!(
            p.user_id_group_pairs()[0].group_id(),
            Some(out["ecs_security_group_id"].as_str())
        );
    }

    // Database.
    let dbs = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(&out["rds_instance_id"])
        .send()
        .await
        .unwrap();
    let db = &dbs.db_instances()[0];
    assert_eq!(
        db.db_instance_identifier(),
        Some(format!("fastcart-rds-{env}").as_str())
    );
    assert_eq!(db.engine(), Some("postgres"));
    assert_eq!(db.engine_version(), Some("16.9"));
    assert_eq!(db.db_name(), Some("ordersdb"));
    assert_eq!(db.master_username(), Some("fastcart_admin"));
    assert_eq!(
        (db.allocated_storage(), db.storage_type()),
        (Some(20), Some("gp2"))
    );
    assert_eq!(db.preferred_backup_window(), Some("03:00-04:00"));
    assert_eq!(
        db.preferred_maintenance_window(),
        Some("mon:04:00-mon:05:00")
    );
    assert_eq!(
        (db.multi_az(), db.deletion_protection()),
        (Some(false), Some(false))
    );
    // The subnet group's name is left to AWS; its Name tag says which it is.
    let subnet_group = db.db_subnet_group().and_then(|g| g.db_subnet_group_name());
    assert_eq!(subnet_group, Some(out["db_subnet_group_name"].as_str()));
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.backup_retention_period(), Some(7));
    assert_eq!(db.publicly_accessible(), Some(false));
    let mut exports = db.enabled_cloudwatch_logs_exports().to_vec();
    exports.sort();
    assert_eq!(exports, vec!["postgresql", "upgrade"]);
    assert_eq!(
        db.master_user_secret().and_then(|s| s.secret_arn()),
        Some(out["db_secret_arn"].as_str())
    );
    let secret = c
        .secrets
        .describe_secret()
        .secret_id(&out["db_secret_arn"])
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret
            .rotation_rules()
            .and_then(|r| r.automatically_after_days()),
        Some(30)
    );

    // Cache.
    let rgs = c
        .elasticache
        .describe_replication_groups()
        .replication_group_id(&out["redis_replication_group_id"])
        .send()
        .await
        .unwrap();
    let rg = &rgs.replication_groups()[0];
    assert_eq!(
        rg.replication_group_id(),
        Some(format!("fastcart-redis-{env}").as_str())
    );
    assert_eq!(rg.snapshot_retention_limit(), Some(5));
    assert_eq!(rg.snapshot_window(), Some("02:00-03:00"));
    assert_eq!(rg.cache_node_type(), Some("cache.t3.micro"));
    assert_eq!(
        out["redis_subnet_group_name"],
        format!("fastcart-redis-subnet-{env}")
    );
    assert_eq!(rg.at_rest_encryption_enabled(), Some(true));
    assert_eq!(rg.transit_encryption_enabled(), Some(true));
    assert_eq!(rg.auth_token_enabled(), Some(true));
    assert_eq!(rg.member_clusters().len(), 2);

    // Stream and logs.
    let s = c
        .kinesis
        .describe_stream_summary()
        .stream_name(&out["kinesis_stream_name"])
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(s.stream_name(), format!("fastcart-orders-stream-{env}"));
    assert_eq!(s.retention_period_hours(), 24);
    assert_eq!(s.open_shard_count(), 2);
    assert_eq!(s.encryption_type().map(|e| e.as_str()), Some("KMS"));
    assert_eq!(
        s.stream_mode_details().map(|m| m.stream_mode().as_str()),
        Some("PROVISIONED")
    );
    let mut metrics: Vec<&str> = s
        .enhanced_monitoring()
        .iter()
        .flat_map(|e| e.shard_level_metrics())
        .map(|m| m.as_str())
        .collect();
    metrics.sort();
    assert_eq!(
        metrics,
        [
            "IncomingBytes",
            "IncomingRecords",
            "OutgoingBytes",
            "OutgoingRecords",
            "ReadProvisionedThroughputExceeded",
            "WriteProvisionedThroughputExceeded"
        ]
    );
    let groups = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&out["log_group_name"])
        .send()
        .await
        .unwrap();
    let g = &groups.log_groups()[0];
    assert_eq!(g.retention_in_days(), Some(7));
    assert_eq!(g.kms_key_id(), Some(out["kms_key_arn"].as_str()));

    // IAM, ECR, ECS, alarms.
    let role = out["ecs_task_role_arn"]
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let inline = c
        .iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert!(!inline.policy_names().is_empty());
    assert_eq!(role, format!("fastcart-ecs-task-role-{env}"));
    assert_eq!(
        out["ecs_execution_role_name"],
        format!("fastcart-ecs-exec-role-{env}")
    );
    let repos = c
        .ecr
        .describe_repositories()
        .repository_names(format!("fastcart-order-processor-{env}"))
        .send()
        .await
        .unwrap();
    let repo = &repos.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability().map(|m| m.as_str()),
        Some("MUTABLE")
    );
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|s| s.scan_on_push()),
        Some(true)
    );
    assert_eq!(
        repo.encryption_configuration()
            .map(|e| e.encryption_type().as_str()),
        Some("KMS")
    );
    let clusters = c
        .ecs
        .describe_clusters()
        .clusters(&out["ecs_cluster_name"])
        .include(aws_sdk_ecs::types::ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert_eq!(out["ecs_cluster_name"], format!("fastcart-cluster-{env}"));
    let settings = clusters.clusters()[0].settings();
    assert!(
        settings.iter().any(|s| s.value() == Some("enabled")),
        "{settings:?}"
    );
    let td = c
        .ecs
        .describe_task_definition()
        .task_definition(&out["task_definition_arn"])
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!((td.cpu(), td.memory()), (Some("512"), Some("1024")));
    let container = &td.container_definitions()[0];
    assert_eq!(container.name(), Some("order-processor"));
    let db_name = container
        .environment()
        .iter()
        .find(|e| e.name() == Some("DB_NAME"))
        .and_then(|e| e.value());
    assert_eq!(db_name, Some("ordersdb"));
    let prefix = container
        .log_configuration()
        .and_then(|l| l.options())
        .and_then(|o| o.get("awslogs-stream-prefix"));
    assert_eq!(prefix.map(String::as_str), Some("ecs"));
    let names: Vec<_> = container
        .environment()
        .iter()
        .filter_map(|e| e.name())
        .collect();
    for n in [
        "DB_HOST",
        "DB_NAME",
        "DB_PORT",
        "REDIS_HOST",
        "REDIS_PORT",
        "KINESIS_STREAM",
        "AWS_REGION",
    ] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    assert_eq!(
        container.secrets()[0].value_from(),
        out["db_secret_arn"].as_str()
    );
    let svc = c
        .ecs
        .describe_services()
        .cluster(&out["ecs_cluster_name"])
        .services(&out["ecs_service_name"])
        .send()
        .await
        .unwrap();
    let svc = &svc.services()[0];
    assert_eq!(svc.desired_count(), 2);
    let net = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .unwrap();
    assert_eq!(net.assign_public_ip().map(|a| a.as_str()), Some("DISABLED"));
    assert_eq!(
        (
            out["kinesis_iterator_age_alarm_name"].as_str(),
            out["rds_cpu_alarm_name"].as_str()
        ),
        (
            format!("fastcart-kinesis-iterator-age-{env}").as_str(),
            format!("fastcart-rds-cpu-{env}").as_str()
        )
    );
    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_names(&out["kinesis_iterator_age_alarm_name"])
        .alarm_names(&out["rds_cpu_alarm_name"])
        .send()
        .await
        .unwrap();
    let mut seen: Vec<_> = alarms
        .metric_alarms()
        .iter()
        .map(|a| {
            (
                a.metric_name().unwrap_or_default(),
                a.threshold(),
                a.evaluation_periods(),
                a.period(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        seen,
        vec![
            ("CPUUtilization", Some(80.0), Some(2), Some(300)),
            (
                "GetRecords.IteratorAgeMilliseconds",
                Some(60000.0),
                Some(2),
                Some(300)
            )
        ]
    );
}

/// An apply killed halfway (the process, not the emulator), then run again,
/// finishes with exactly one AWS resource per logical id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_halfway_finishes_without_duplicates() {
    let w = World::new("e2ekill");
    // Where to kill it: after this many resources were created. It varies
    // from run to run (FASTCART_KILL_AFTER pins it, to reproduce a failure).
    let kill_after: usize = std::env::var("FASTCART_KILL_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as usize;
            3 + nanos % 28
        });
    eprintln!("killing the apply after {kill_after} resources were created (FASTCART_KILL_AFTER={kill_after} repeats this)");
    let c = w.clients().await;
    let mut created = 0;
    let (mut child, _rest, seen) = w.spawn_until(&["apply", "--auto-approve"], |line| {
        created += usize::from(line.contains(": created"));
        created >= kill_after
    });
    assert!(seen, "the apply ended after {created} creates");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        created >= kill_after,
        "the apply printed too little: {created} created"
    );
    assert_eq!(
        status.code(),
        None,
        "the apply finished before it could be killed"
    );
    let total = w.stack().resources.len();
    let halfway = w.owned(&c).await.len();
    assert!(
        halfway < total,
        "the kill came too late: {halfway} of {total} resources exist"
    );

    // The lock the dead process left names it; --force-unlock takes it over.
    let (code, text) = w.fastcart(&["apply", "--auto-approve"]);
    if code != 0 {
        assert!(text.contains("lock"), "{text}");
        w.expect(0, &["apply", "--auto-approve", "--force-unlock"]);
    }
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let twins = w.twins(&c).await;
    assert!(twins.is_empty(), "duplicates: {twins:#?}");
    w.expect(0, &["destroy", "--auto-approve"]);
    assert!(w.owned(&c).await.is_empty());
}

/// `--db-secret-arn`: the database takes its master password from an
/// existing secret, read at apply time; the password never reaches state,
/// journal, plan or outputs, and the tasks get that secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_database_secret_is_used_and_never_stored() {
    let w = World::new("e2esecret");
    let c = w.clients().await;
    let password = "Extern4l-Db-Passw0rd-never-stored";
    let secret = c
        .secrets
        .create_secret()
        .name("external-db-e2esecret")
        .secret_string(format!(
            r#"{{"username": "fastcart_admin", "password": "{password}"}}"#
        ))
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_string();
    let args = |cmd: &[&str]| {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend(["--db-secret-arn".to_string(), arn.clone()]);
        v
    };
    let run = |cmd: &[&str], code: i32| {
        let a = args(cmd);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        w.expect(code, &refs)
    };
    let plan = run(&["plan"], 0);
    let applied = run(&["apply", "--auto-approve"], 0);
    run(&["plan", "--detailed-exitcode"], 0);

    let out = outputs(&w);
    assert_eq!(out["db_secret_arn"], arn);
    let dbs = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(&out["rds_instance_id"])
        .send()
        .await
        .unwrap();
    assert!(
        dbs.db_instances()[0].master_user_secret().is_none(),
        "RDS must not manage the password when a secret is given"
    );
    let td = c
        .ecs
        .describe_task_definition()
        .task_definition(&out["task_definition_arn"])
        .send()
        .await
        .unwrap();
    let container = &td.task_definition().unwrap().container_definitions()[0];
    assert_eq!(container.secrets()[0].value_from(), arn.as_str());

    let dir = w.path(".fastcart/fastcart-e2esecret");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(password),
            "the password is in {}",
            path.display()
        );
    }
    let flat = std::fs::read_to_string(w.path("cfn-outputs/flat-outputs.json")).unwrap();
    for (what, text) in [("plan", &plan), ("apply", &applied), ("outputs", &flat)] {
        assert!(!text.contains(password), "the password is in the {what}");
    }
    run(&["destroy", "--auto-approve"], 0);
    assert!(w.owned(&c).await.is_empty());
}

/// Ctrl-C during an apply: the calls in flight finish, the state is saved,
/// the message says how to continue, and the next apply finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_calls_in_flight_saves_state_and_says_how_to_continue() {
    let w = World::new("e2eint");
    let c = w.clients().await;
    let mut child = w
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains(": creating...");
        seen.push(line);
        if started && seen.iter().filter(|l| l.contains(": creating...")).count() >= 6 {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map_while(Result::ok));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let exit = child.wait().unwrap();
    let out = seen.join("\n");
    if exit.code() == Some(0) {
        panic!("the apply finished before Ctrl-C reached it:\n{out}");
    }
    assert_eq!(exit.code(), Some(1), "{out}\n{stderr}");
    assert!(stderr.contains("Interrupted"), "{stderr}");
    assert!(out.contains("run `fastcart apply` again"), "{out}");
    // Every call that started also finished: no "creating..." without its end.
    for line in seen
        .iter()
        .filter(|l| l.ends_with(")") && l.contains(": creating..."))
    {
        let id = line.split(':').next().unwrap();
        assert!(
            seen.iter().any(|l| l.starts_with(&format!("{id}: created"))
                || l.starts_with(&format!("{id}: FAILED"))),
            "{id} started but never finished:\n{out}"
        );
    }
    // The state holds what was made; the next apply finishes without twins.
    let held = w.state()["resources"].as_object().unwrap().len();
    assert!(held > 0, "nothing was saved");
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let twins = w.twins(&c).await;
    assert!(twins.is_empty(), "duplicates: {twins:#?}");
    w.expect(0, &["destroy", "--auto-approve"]);
}

/// What one run under lost answers did, for BENCHMARKS.md.
#[derive(Debug)]
struct LossyRun {
    seed: u64,
    loss: f64,
    /// Applies until one exited 0 (at most three).
    applies: usize,
    converged: bool,
    /// Resources of one logical id found more than once, through the SDK.
    twins: usize,
    /// Answers the proxy lost, before and after the request took effect.
    lost: (u64, u64),
    requests: u64,
}

/// The whole order stack through a proxy that loses `loss` of the answers:
/// apply as a user would (again after a failure, at most three times), then
/// count what exists straight from the emulator. Returns the figures; the
/// caller decides what must hold. With `bucket`, the state, journal and
/// lock are in S3 there, through the same proxy.
async fn lossy_run(
    seed: u64,
    loss: f64,
    bucket: Option<&str>,
) -> (World, fault_proxy::FaultProxy, LossyRun) {
    let m = moto::moto();
    let proxy = fault_proxy::FaultProxy::start(&m.venv, &m.endpoint, loss, seed);
    let mut w = World::behind(&format!("lost{seed}"), &proxy.endpoint);
    if let Some(bucket) = bucket {
        m.bucket(bucket).await;
        w.backend = Some(format!("s3://{bucket}/states"));
    }
    let c = w.clients().await;
    let mut applies = 0;
    let mut converged = false;
    while applies < 3 && !converged {
        applies += 1;
        let (code, text) = w.fastcart(&["apply", "--auto-approve"]);
        converged = code == 0;
        if !converged {
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!(
                "seed {seed}: apply {applies} exited {code}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    let twins = w.twins(&c).await;
    if !twins.is_empty() {
        eprintln!("seed {seed}: twins {twins:#?}");
    }
    let stats = proxy.stats();
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    let run = LossyRun {
        seed,
        loss,
        applies,
        converged,
        twins: twins.len(),
        lost: (n("lost_before"), n("lost_after")),
        requests: n("requests"),
    };
    eprintln!(
        "{} (lost answers logged in {})",
        run.line(),
        proxy.log.display()
    );
    (w, proxy, run)
}

/// Opens SSH on a security group to `cidr`, behind fastcart's back.
async fn open_ssh(c: &Arc<Clients>, group: &str, cidr: &str) {
    c.ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip(cidr).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

impl LossyRun {
    /// One line for BENCHMARKS.md.
    fn line(&self) -> String {
        format!(
            "seed {} at {:.0}% lost: {} of {} answers lost ({} before, {} after the call took effect); \
             {} after {} apply(s); {} twin(s)",
            self.seed,
            self.loss * 100.0,
            self.lost.0 + self.lost.1,
            self.requests,
            self.lost.0,
            self.lost.1,
            if self.converged { "converged" } else { "not converged" },
            self.applies,
            self.twins
        )
    }
}

/// Exactly once under lost answers: at 20% of AWS's answers lost (half
/// before the request reached AWS, half after it took effect) the order
/// stack converges within three applies with no twin, a clean plan, nothing
/// unmanaged, and a destroy that leaves nothing. Seeds from
/// FASTCART_LOSS_SEEDS (comma-separated) reproduce a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_at_20_percent_converge_without_twins() {
    let seeds: Vec<u64> = std::env::var("FASTCART_LOSS_SEEDS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![11, 12, 13]);
    for seed in seeds {
        let (w, _proxy, run) = lossy_run(seed, 0.2, None).await;
        assert!(run.converged, "did not converge in 3 applies: {run:?}");
        assert_eq!(run.twins, 0, "{run:?}");
        assert!(
            run.lost.0 > 0 && run.lost.1 > 0,
            "the proxy lost nothing: {run:?}"
        );
        w.expect(0, &["plan", "--detailed-exitcode"]);
        w.expect(0, &["drift-check"]);
        destroy_leaves_nothing(&w).await;
    }
}

/// At 30% lost answers an apply may need more tries, but it never leaves a
/// twin behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_at_30_percent_leave_no_twin() {
    let (w, proxy, run) = lossy_run(31, 0.3, None).await;
    assert_eq!(run.twins, 0, "{run:?}");
    proxy.set_loss(0.0);
    destroy_leaves_nothing(&w).await;
}

/// The same with the state in S3 through the same flaky network: the lock,
/// lease renewals, state saves and journal entries whose answers are lost
/// are resent by the SDK and recognised as this run's own, so the stack
/// converges with no twin and nothing is written under `.fastcart`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_with_the_state_in_s3_converge_without_twins() {
    let (w, proxy, run) = lossy_run(21, 0.2, Some("fastcart-team-state-lossy")).await;
    assert!(run.converged, "did not converge in 3 applies: {run:?}");
    assert_eq!(run.twins, 0, "{run:?}");
    assert!(!w.path(".fastcart").exists(), "no state on local disk");
    w.expect(0, &["plan", "--detailed-exitcode"]);
    proxy.set_loss(0.0);
    destroy_leaves_nothing(&w).await;
}

/// A suffix AWS would refuse in the names and tags built from it is refused
/// before any AWS call (there is no AWS to call here), every such value at
/// once, each with the rule from AWS's own schema that it breaks: seven
/// names, and the tags of the types whose tag values AWS holds to a pattern
/// (IAM, ECS, ELBv2), in the stack's own Name tags and in the tags every
/// resource is created with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suffix_aws_would_refuse_is_refused_before_any_aws_call() {
    let mut w = World::new("bad env!");
    w.endpoint = "http://127.0.0.1:1".into();
    let printed = w.expect(1, &["plan"]);
    let text = world::flat(&printed);
    assert!(text.contains("is not valid: 22 problems"), "{printed}");
    for needle in [
        "Database (AWS::RDS::DBInstance): DBInstanceIdentifier must match",
        "ExecutionRole (AWS::IAM::Role): Tags[0].Value must match",
        "ExecutionRole (AWS::IAM::Role): tag Environment must match",
        "Cluster (AWS::ECS::Cluster): tag fastcart:env must match",
        "OrdersStream (AWS::Kinesis::Stream): Name must match",
        "ExecutionRole (AWS::IAM::Role): RoleName must match",
        "Repository (AWS::ECR::Repository): RepositoryName must match",
        "nothing was read from or sent to the cloud",
    ] {
        assert!(text.contains(needle), "{needle}:\n{printed}");
    }
    assert!(!w.path(".fastcart").exists(), "no state was opened");
}

/// `FASTCART_LOG=trace` logs fastcart's AWS calls and the SDK's own request
/// logs for a whole apply and destroy, and no secret: not the Redis auth
/// token the driver hands to ElastiCache, not the database's managed
/// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_trace_name_the_aws_calls_and_never_a_secret() {
    let w = World::new("e2elog");
    let c = w.clients().await;
    let run = |args: &[&str]| {
        let out = w
            .command(args)
            .env("FASTCART_LOG", "trace")
            .output()
            .expect("run fastcart");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let applied = run(&["apply", "--auto-approve"]);
    let out = outputs(&w);
    let token = redis_token(&c, &out["redis_secret_arn"]).await;
    let db = c
        .secrets
        .get_secret_value()
        .secret_id(&out["db_secret_arn"])
        .send()
        .await
        .unwrap();
    let db: Value = serde_json::from_str(db.secret_string().unwrap()).unwrap();
    let password = db["password"].as_str().unwrap().to_string();
    for needle in [
        "aws call operation=elasticache:CreateReplicationGroup",
        "aws call done operation=ec2:CreateVpc",
        "aws_smithy_runtime",
    ] {
        assert!(applied.contains(needle), "the log lacks {needle}");
    }
    let destroyed = run(&["destroy", "--auto-approve"]);
    for (what, log) in [("apply", &applied), ("destroy", &destroyed)] {
        assert!(
            !log.contains(&token),
            "the Redis auth token is in the {what} log"
        );
        assert!(
            !log.contains(&password),
            "the database password is in the {what} log"
        );
    }
    assert!(w.owned(&c).await.is_empty());
}

/// The order stack with its state, journal and lock in S3 (`--backend`
/// through `FASTCART_BACKEND`): planned, applied, checked and destroyed
/// with nothing under the working directory's `.fastcart`; a second run
/// started while an apply holds the lock refused at once, naming it; and a
/// plan stopped with Ctrl-C or SIGTERM gives the lock back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_stack_runs_with_its_state_in_s3_and_none_on_local_disk() {
    let bucket = "fastcart-team-state";
    let (w, s3) = World::in_s3("e2es3", bucket).await;

    w.expect(2, &["plan", "--detailed-exitcode"]);
    let (mut apply, lines, seen) = w.spawn_until(&["apply", "--auto-approve"], |l| {
        l.contains(": creating...")
    });
    assert!(seen, "the apply created nothing");
    let (code, text) = w.fastcart(&["plan"]);
    assert_eq!(code, 1, "{text}");
    let said = world::flat(&text);
    assert!(
        said.contains("is locked by") && said.contains("`apply`"),
        "{text}"
    );
    assert!(
        said.contains(&format!("s3://{bucket}/states/fastcart-e2es3")),
        "{text}"
    );
    lines.for_each(drop);
    assert!(apply.wait().unwrap().success());

    w.expect(0, &["plan", "--detailed-exitcode"]);

    // Ctrl-C, or SIGTERM as a CI runner cancelling a job sends, while a
    // plan holds the lock (it has begun reading AWS): the lock is given
    // back at once, so the next run is not refused.
    for signal in ["-INT", "-TERM"] {
        let mut plan = w
            .command(&["plan", "--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut logged = BufReader::new(plan.stderr.take().unwrap()).lines();
        assert!(
            logged
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("GetCallerIdentity")),
            "the plan never reached AWS"
        );
        let sent = Command::new("kill")
            .args([signal, &plan.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let rest: Vec<String> = logged.map_while(Result::ok).collect();
        let exit = plan.wait().unwrap();
        assert_eq!(exit.code(), Some(130), "{signal}: {}", rest.join("\n"));
        assert!(
            rest.iter().any(
                |l| l.contains("Interrupted: exiting now, the lock on s3://")
                    && l.contains("is given back")
            ),
            "{signal}: {}",
            rest.join("\n")
        );
    }
    w.expect(0, &["drift-check"]);
    let printed = w.expect(0, &["outputs", "--json"]);
    assert!(printed.contains("vpc-"), "{printed}");
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("states/fastcart-e2es3/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    assert!(keys.iter().any(|k| k.ends_with("/state.json")), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.ends_with("/lock.json")),
        "released: {keys:?}"
    );
    assert!(!w.path(".fastcart").exists(), "no state on local disk");
    destroy_leaves_nothing(&w).await;
    assert!(!w.path(".fastcart").exists(), "no state on local disk");
}

/// An apply holding the S3 lock killed with -9: a run started at once is
/// refused, saying when the dead run's lease runs out; one told to wait
/// (`--lock-timeout`) waits the lease out, takes the lock over, says whose
/// it was, folds in the journal the dead run left in S3, and converges
/// with no twins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_holding_the_s3_lock_is_taken_over_after_its_lease() {
    let bucket = "fastcart-team-state-kill";
    let (w, s3) = World::in_s3("e2es3kill", bucket).await;
    let c = w.clients().await;
    // Long enough that the refusal and the first ask of the waiting run
    // both come while the dead run's lease is live (at least two thirds of
    // it is left when it dies), short enough to wait out.
    let lease = ["--lock-lease", "8"];
    let mut created = 0;
    let (mut child, _rest, seen) =
        w.spawn_until(&["apply", "--auto-approve", lease[0], lease[1]], |l| {
            created += usize::from(l.contains(": created"));
            created >= 8
        });
    assert!(seen, "the apply ended after {created} creates");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "killed, not finished");
    let journal = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("states/fastcart-e2es3kill/journal/")
        .send()
        .await
        .unwrap();
    assert!(
        journal.key_count().unwrap_or(0) > 0,
        "the dead run's journal is in S3"
    );

    // At once, the lock is still the dead run's: refused, with when its
    // lease runs out. Told to wait, the next run waits that out and takes
    // the lock over.
    let (code, text) = w.fastcart(&["plan"]);
    assert_eq!(code, 1, "{text}");
    let said = world::flat(&text);
    assert!(
        said.contains("is locked by") && said.contains("its lease runs out at"),
        "{text}"
    );
    let text = w.expect(
        0,
        &[
            "apply",
            "--auto-approve",
            "--lock-timeout",
            "30",
            lease[0],
            lease[1],
        ],
    );
    let said = world::flat(&text);
    assert!(
        said.contains("Waiting up to 30 s (--lock-timeout) for the lock")
            && said.contains("Took over the lock of"),
        "{text}"
    );
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let twins = w.twins(&c).await;
    assert!(twins.is_empty(), "duplicates: {twins:#?}");
    assert!(!w.path(".fastcart").exists(), "no state on local disk");
    destroy_leaves_nothing(&w).await;
}

/// Two `fastcart apply` processes of the same stack started together, ten
/// rounds, each with a drift to repair (the log group's retention changed
/// behind fastcart's back): in every round exactly one runs and repairs
/// it; the other exits 1 before the first is done, naming it (its pid and
/// command). The state in S3 keeps its lineage and its serial grows every
/// round; the stack ends converged, with no twins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_started_together_one_runs_and_the_other_is_refused_naming_it() {
    let bucket = "fastcart-team-state-race";
    let (w, s3) = World::in_s3("e2es3race", bucket).await;
    let c = w.clients().await;
    w.expect(0, &["apply", "--auto-approve"]);
    let group = outputs(&w)["log_group_name"].clone();
    let saved = || async {
        let got = s3
            .get_object()
            .bucket(bucket)
            .key("states/fastcart-e2es3race/state.json")
            .send()
            .await
            .unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let first = saved().await;
    let mut serial = first["serial"].as_u64().unwrap();
    for round in 1..=10 {
        c.logs
            .put_retention_policy()
            .log_group_name(&group)
            .retention_in_days(14)
            .send()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let runs: Vec<_> = (0..2)
            .map(|_| {
                w.command(&["apply", "--auto-approve"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let ends: Vec<_> = runs
            .into_iter()
            .map(|child| {
                std::thread::spawn(move || {
                    let pid = child.id();
                    let out = child.wait_with_output().unwrap();
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    (pid, out.status.code(), started.elapsed(), text)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let ran: Vec<_> = ends.iter().filter(|e| e.1 == Some(0)).collect();
        let refused: Vec<_> = ends.iter().filter(|e| e.1 == Some(1)).collect();
        assert!(
            ran.len() == 1 && refused.len() == 1,
            "round {round}: one must run and one be refused: {ends:#?}"
        );
        let (winner, loser) = (ran[0], refused[0]);
        eprintln!(
            "round {round}: refused after {:?}, the other ran for {:?}",
            loser.2, winner.2
        );
        let said = world::flat(&loser.3);
        assert!(
            said.contains("is locked by") && said.contains(&format!("(pid {}, `apply`", winner.0)),
            "round {round}: the refusal names the run holding the lock (pid {}): {}",
            winner.0,
            loser.3
        );
        assert!(
            loser.2 < winner.2,
            "round {round}: refused at once, not after the other run ({:?} vs {:?})",
            loser.2,
            winner.2
        );
        assert!(
            winner.3.contains("LogGroup: updated"),
            "round {round}: {}",
            winner.3
        );
        let now = saved().await;
        assert_eq!(now["lineage"], first["lineage"], "round {round}");
        let next = now["serial"].as_u64().unwrap();
        assert!(next > serial, "round {round}: serial {next} after {serial}");
        serial = next;
    }
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let twins = w.twins(&c).await;
    assert!(twins.is_empty(), "duplicates: {twins:#?}");
    destroy_leaves_nothing(&w).await;
}

/// Ctrl-C during an apply on the S3 backend: the calls in flight finish,
/// the state is saved in S3 and the lock is given back, so the next run
/// starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_gives_the_s3_lock_back() {
    let bucket = "fastcart-team-state-int";
    let (w, s3) = World::in_s3("e2es3int", bucket).await;
    let (mut child, lines, seen) = w.spawn_until(&["apply", "--auto-approve"], |l| {
        l.contains(": creating...")
    });
    assert!(seen, "the apply created nothing");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    lines.for_each(drop);
    let exit = child.wait().unwrap();
    assert!(matches!(exit.code(), Some(0 | 1)), "{exit:?}");
    let lock = s3
        .head_object()
        .bucket(bucket)
        .key("states/fastcart-e2es3int/lock.json")
        .send()
        .await;
    assert!(lock.is_err(), "the lock is still there after Ctrl-C");
    w.expect(0, &["plan"]);
    destroy_leaves_nothing(&w).await;
}

/// `state push`, `state migrate --to s3://…` and back, and `state pull`:
/// a state moves between the local directory and S3 with what its journal
/// holds (a pending create included), and an older serial is not pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_moves_to_s3_and_back_with_its_journal() {
    use fastcart_engine::journal::{Entry, Op, Phase};
    let mut w = World::new("e2emig");
    let bucket = "fastcart-team-state-mig";
    let (_, _s3) = moto::moto().bucket(bucket).await;
    let mut state = fastcart_engine::State::new("fastcart", "e2emig");
    state.serial = 5;
    let mut intent = Entry::new(Op::Create, Phase::Intent, "Vpc", "AWS::EC2::VPC");
    intent.seq = 1;
    intent.lineage = state.lineage.clone();
    state.record(&intent);
    let file = w.path("state-backup.json");
    std::fs::write(&file, serde_json::to_vec(&state).unwrap()).unwrap();
    w.expect(0, &["state", "push", "state-backup.json"]);

    let url = format!("s3://{bucket}/states");
    let said = w.expect(0, &["state", "migrate", "--to", &url]);
    assert!(said.contains(&format!("--backend {url}")), "{said}");
    w.backend = Some(url);
    let pulled: Value = serde_json::from_str(&w.expect(0, &["state", "pull"])).unwrap();
    assert_eq!(pulled["lineage"], state.lineage.as_str());
    assert!(pulled["pending"]["Vpc"].is_object(), "{pulled:#}");
    assert_eq!(pulled["serial"], 7);

    // The old backup is behind now: refused.
    let (code, text) = w.fastcart(&["state", "push", "state-backup.json"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        world::flat(&text).contains("lower than the backend's 7"),
        "{text}"
    );

    // And back to a directory of its own.
    w.expect(0, &["state", "migrate", "--to", "back"]);
    let back: Value = serde_json::from_str(
        &std::fs::read_to_string(w.path("back/fastcart-e2emig/state.json")).unwrap(),
    )
    .unwrap();
    assert!(back["pending"]["Vpc"].is_object(), "{back:#}");
}
