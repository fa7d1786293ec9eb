//! The Flask API stack end to end against the local AWS emulator (moto
//! server, installed and started by the test itself), in its home region:
//! the `fastcart` binary plans, applies, checks drift, repairs and destroys
//! it; what exists is checked through the AWS SDK the way the current
//! program's integration tests check it, not through fastcart's state.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/world.rs"]
mod world;

use std::collections::BTreeMap;

use fastcart_drivers::Clients;
use serde_json::Value;

use world::{destroy_leaves_nothing, World};

/// Every key the stack writes, and whether its value is a list.
const OUTPUT_KEYS: &[(&str, bool)] = &[
    ("environment_suffix", false),
    ("region", false),
    ("vpc_id", false),
    ("vpc_cidr", false),
    ("public_subnet_ids", true),
    ("private_subnet_ids", true),
    ("nat_gateway_ids", true),
    ("alb_arn", false),
    ("alb_dns_name", false),
    ("target_group_arn", false),
    ("listener_arn", false),
    ("ecr_repository_url", false),
    ("rds_cluster_id", false),
    ("rds_cluster_endpoint", false),
    ("rds_cluster_reader_endpoint", false),
    ("db_secret_arn", false),
    ("ecs_cluster_name", false),
    ("ecs_service_name", false),
    ("task_definition_arn", false),
    ("ecs_log_group_name", false),
    ("alb_log_group_name", false),
];

fn outputs(w: &World) -> BTreeMap<String, Value> {
    let path = w.path("cfn-outputs/flask-api-flat-outputs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn text<'a>(out: &'a BTreeMap<String, Value>, key: &str) -> &'a str {
    out[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn ids(out: &BTreeMap<String, Value>, key: &str) -> Vec<String> {
    out[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_api_plan_apply_drift_repair_and_destroy() {
    let w = World::of("flask-api", "flask1");
    assert_eq!(w.region(), "eu-south-1");
    let c = w.clients().await;
    let total = w.stack().resources.len();

    let plan = w.expect(2, &["plan", "--detailed-exitcode"]);
    assert!(plan.contains(&format!("{total} to create")), "{plan}");
    // The slowest chain, as the README shows it.
    assert!(
        plan.contains("Critical path: Vpc -> AlbSecurityGroup -> TaskSecurityGroup -> DbSecurityGroup -> AuroraCluster -> AuroraInstance0 -> AuroraInstance1"),
        "{plan}"
    );
    w.expect(0, &["apply", "--auto-approve"]);

    // Its own outputs file, in JSON types; the order stack's is untouched.
    let out = outputs(&w);
    for (k, list) in OUTPUT_KEYS {
        let v = out
            .get(*k)
            .unwrap_or_else(|| panic!("output {k} missing: {out:?}"));
        assert_eq!(v.is_array(), *list, "{k} = {v}");
        assert!(v.as_str().is_none_or(|s| !s.is_empty()), "{k} is empty");
    }
    assert_eq!(out.len(), OUTPUT_KEYS.len(), "{out:?}");
    assert!(!w.path("cfn-outputs/flat-outputs.json").exists());
    assert_eq!(text(&out, "region"), "eu-south-1");
    let printed = w.expect(0, &["outputs", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&printed).unwrap(),
        serde_json::json!(out)
    );

    verify_in_aws(&c, &out).await;
    w.expect(0, &["plan", "--detailed-exitcode"]);
    w.expect(0, &["drift-check"]);

    // The scaler moves the task count: not drift, nothing to plan.
    let cluster = text(&out, "ecs_cluster_name");
    let service = text(&out, "ecs_service_name");
    c.ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(4)
        .send()
        .await
        .unwrap();
    w.expect(0, &["drift-check"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);

    // Changes behind fastcart's back: the scaler's floor, a health check
    // interval, the listener deleted.
    let resource = format!("service/{cluster}/{service}");
    c.autoscaling
        .register_scalable_target()
        .service_namespace("ecs".into())
        .resource_id(&resource)
        .scalable_dimension("ecs:service:DesiredCount".into())
        .min_capacity(3)
        .send()
        .await
        .unwrap();
    let tg = text(&out, "target_group_arn");
    c.elbv2
        .modify_target_group()
        .target_group_arn(tg)
        .health_check_interval_seconds(20)
        .send()
        .await
        .unwrap();
    c.elbv2
        .delete_listener()
        .listener_arn(text(&out, "listener_arn"))
        .send()
        .await
        .unwrap();
    let drift = w.expect(2, &["drift-check"]);
    for needle in [
        "ScalableTarget",
        "MinCapacity",
        "TargetGroup",
        "HealthCheckIntervalSeconds",
        "HttpListener",
    ] {
        assert!(
            drift.contains(needle),
            "drift-check does not name {needle}:\n{drift}"
        );
    }
    // The scaler's task count is not among them.
    let json: Value = serde_json::from_str(&w.expect(2, &["drift-check", "--json"])).unwrap();
    let drifted: Vec<&str> = json["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["logical_id"].as_str())
        .collect();
    assert_eq!(drifted, ["ScalableTarget", "TargetGroup"], "{json}");

    // Apply repairs all three, and leaves the task count to the scaler.
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["drift-check"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let target = scalable_target(&c, &resource).await;
    assert_eq!(target.min_capacity(), 2);
    let group = &c
        .elbv2
        .describe_target_groups()
        .target_group_arns(tg)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .clone();
    assert_eq!(group.health_check_interval_seconds(), Some(30));
    let listeners = c
        .elbv2
        .describe_listeners()
        .load_balancer_arn(text(&out, "alb_arn"))
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners().len(), 1, "{listeners:?}");
    assert_eq!(listeners.listeners()[0].port(), Some(80));
    let svc = ecs_service(&c, cluster, service).await;
    assert_eq!(svc.desired_count(), 4, "the scaler's count stays");

    // Destroy leaves nothing tagged with the suffix, and no untaggable
    // scalable target behind.
    destroy_leaves_nothing(&w).await;
    let left = c
        .autoscaling
        .describe_scalable_targets()
        .service_namespace("ecs".into())
        .resource_ids(&resource)
        .send()
        .await
        .unwrap();
    assert!(left.scalable_targets().is_empty(), "{left:?}");
}

/// A suffix that makes a load balancer or target group name longer than AWS
/// allows is refused before any AWS call: here there is no AWS to call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suffix_too_long_for_the_load_balancer_is_refused_before_any_aws_call() {
    let mut w = World::of("flask-api", "a-very-long-suffix-x");
    w.endpoint = "http://127.0.0.1:1".into();
    let printed = w.expect(1, &["plan"]);
    let text = world::flat(&printed);
    for needle in [
        "LoadBalancer (AWS::ElasticLoadBalancingV2::LoadBalancer): Name must be at most 32 characters, not 34: flask-api-alb-a-very-long-",
        "TargetGroup (AWS::ElasticLoadBalancingV2::TargetGroup): Name must be at most 32 characters, not 33",
        "nothing was read from or sent to the cloud",
    ] {
        assert!(text.contains(needle), "{needle}:\n{printed}");
    }
}

async fn scalable_target(
    c: &Clients,
    resource: &str,
) -> aws_sdk_applicationautoscaling::types::ScalableTarget {
    let out = c
        .autoscaling
        .describe_scalable_targets()
        .service_namespace("ecs".into())
        .resource_ids(resource)
        .send()
        .await
        .unwrap();
    out.scalable_targets()
        .first()
        .unwrap_or_else(|| panic!("no scalable target on {resource}"))
        .clone()
}

async fn ecs_service(c: &Clients, cluster: &str, service: &str) -> aws_sdk_ecs::types::Service {
    c.ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

/// What the current program's integration tests check, through the SDK.
async fn verify_in_aws(c: &Clients, out: &BTreeMap<String, Value>) {
    // Network: the VPC with both DNS attributes, 2 + 2 subnets over 2 zones,
    // 2 NAT gateways available.
    let vpc = text(out, "vpc_id");
    let v = c.ec2.describe_vpcs().vpc_ids(vpc).send().await.unwrap();
    assert_eq!(v.vpcs()[0].cidr_block(), Some("10.0.0.0/16"));
    for attribute in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
    ] {
        let a = c
            .ec2
            .describe_vpc_attribute()
            .vpc_id(vpc)
            .attribute(attribute.clone())
            .send()
            .await
            .unwrap();
        let on = a
            .enable_dns_support()
            .or(a.enable_dns_hostnames())
            .and_then(|b| b.value());
        assert_eq!(on, Some(true), "{attribute:?}");
    }
    for (key, tier) in [
        ("public_subnet_ids", "Public"),
        ("private_subnet_ids", "Private"),
    ] {
        let subnets = ids(out, key);
        assert_eq!(subnets.len(), 2, "{key}");
        let found = c
            .ec2
            .describe_subnets()
            .set_subnet_ids(Some(subnets))
            .send()
            .await
            .unwrap();
        let zones: std::collections::BTreeSet<_> = found
            .subnets()
            .iter()
            .filter_map(|s| s.availability_zone())
            .collect();
        assert_eq!(zones.len(), 2, "{key} in {zones:?}");
        for s in found.subnets() {
            assert!(
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some("Tier") && t.value() == Some(tier)),
                "{s:?}"
            );
        }
    }
    let nats = c
        .ec2
        .describe_nat_gateways()
        .set_nat_gateway_ids(Some(ids(out, "nat_gateway_ids")))
        .send()
        .await
        .unwrap();
    assert_eq!(nats.nat_gateways().len(), 2);
    for n in nats.nat_gateways() {
        assert_eq!(n.state().map(|s| s.as_str()), Some("available"), "{n:?}");
    }

    // Load balancer, listener and target group with its health check.
    let alb = text(out, "alb_arn");
    let lbs = c
        .elbv2
        .describe_load_balancers()
        .load_balancer_arns(alb)
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(
        lb.state().and_then(|s| s.code()).map(|c| c.as_str()),
        Some("active")
    );
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    assert_eq!(lb.dns_name(), Some(text(out, "alb_dns_name")));
    let tg = text(out, "target_group_arn");
    let listeners = c
        .elbv2
        .describe_listeners()
        .load_balancer_arn(alb)
        .send()
        .await
        .unwrap();
    let l = &listeners.listeners()[0];
    assert_eq!(l.port(), Some(80));
    assert_eq!(l.default_actions()[0].target_group_arn(), Some(tg));
    let groups = c
        .elbv2
        .describe_target_groups()
        .target_group_arns(tg)
        .send()
        .await
        .unwrap();
    let g = &groups.target_groups()[0];
    assert_eq!(g.port(), Some(5000));
    assert_eq!(g.target_type().map(|t| t.as_str()), Some("ip"));
    assert_eq!(g.health_check_path(), Some("/health"));
    assert_eq!(g.matcher().and_then(|m| m.http_code()), Some("200"));
    assert_eq!(g.health_check_interval_seconds(), Some(30));
    assert_eq!(g.health_check_timeout_seconds(), Some(5));
    assert_eq!(g.healthy_threshold_count(), Some(2));
    assert_eq!(g.unhealthy_threshold_count(), Some(2));

    // ECS: the cluster active, the service Fargate with at least 2 tasks,
    // behind the target group.
    let cluster = text(out, "ecs_cluster_name");
    let clusters = c
        .ecs
        .describe_clusters()
        .clusters(cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.clusters()[0].status(), Some("ACTIVE"));
    let svc = ecs_service(c, cluster, text(out, "ecs_service_name")).await;
    assert_eq!(svc.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert!(svc.running_count() >= 2, "{svc:?}");
    assert!(
        svc.load_balancers()
            .iter()
            .any(|b| b.target_group_arn() == Some(tg)
                && b.container_name() == Some("flask-api")
                && b.container_port() == Some(5000)),
        "{svc:?}"
    );
    let vpc_config = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .expect("awsvpc");
    assert_eq!(
        vpc_config.assign_public_ip().map(|a| a.as_str()),
        Some("DISABLED")
    );

    // Aurora: available, two instances, one writer; its secret exists.
    let db = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(text(out, "rds_cluster_id"))
        .send()
        .await
        .unwrap();
    let db = &db.db_clusters()[0];
    assert_eq!(db.status(), Some("available"));
    assert_eq!(db.engine(), Some("aurora-postgresql"));
    assert_eq!(db.database_name(), Some("flaskapi"));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.db_cluster_members().len(), 2);
    let writers = db
        .db_cluster_members()
        .iter()
        .filter(|m| m.is_cluster_writer() == Some(true))
        .count();
    assert_eq!(writers, 1);
    assert_eq!(db.endpoint(), Some(text(out, "rds_cluster_endpoint")));
    c.secrets
        .describe_secret()
        .secret_id(text(out, "db_secret_arn"))
        .send()
        .await
        .expect("the database secret exists");

    // ECR scans on push; both log groups keep 7 days.
    let repo_name = text(out, "ecr_repository_url").rsplit('/').next().unwrap();
    let repos = c
        .ecr
        .describe_repositories()
        .repository_names(repo_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        repos.repositories()[0]
            .image_scanning_configuration()
            .map(|s| s.scan_on_push()),
        Some(true)
    );
    for key in ["ecs_log_group_name", "alb_log_group_name"] {
        let name = text(out, key);
        let groups = c
            .logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .send()
            .await
            .unwrap();
        let g = groups
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name))
            .unwrap_or_else(|| panic!("no log group {name}"));
        assert_eq!(g.retention_in_days(), Some(7), "{name}");
    }

    // Security groups: the load balancer's open on 80 and 443, the tasks'
    // reachable from it on 5000 only, the database's from the tasks on 5432.
    let vpc_groups = c
        .ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let by_name = |n: &str| {
        vpc_groups
            .security_groups()
            .iter()
            .find(|g| g.group_name().is_some_and(|g| g.starts_with(n)))
            .unwrap_or_else(|| panic!("no group {n}"))
            .clone()
    };
    let alb_sg = by_name("flask-api-alb-sg-");
    let task_sg = by_name("flask-api-ecs-sg-");
    let db_sg = by_name("flask-api-db-sg-");
    let mut world_ports: Vec<i32> = alb_sg
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        })
        .filter_map(|p| p.from_port())
        .collect();
    world_ports.sort();
    assert_eq!(world_ports, [80, 443]);
    for (group, port, source) in [(&task_sg, 5000, &alb_sg), (&db_sg, 5432, &task_sg)] {
        let rules = group.ip_permissions();
        assert_eq!(rules.len(), 1, "{group:?}");
        assert_eq!(rules[0].from_port(), Some(port));
        assert!(rules[0].ip_ranges().is_empty(), "{group:?}");
        let sources: Vec<_> = rules[0]
            .user_id_group_pairs()
            .iter()
            .filter_map(|p| p.group_id())
            .collect();
        assert_eq!(sources, [source.group_id().unwrap()], "{group:?}");
    }

    // Auto scaling: 2 to 10 tasks on 70% CPU, cooldowns 300 s in, 60 s out.
    let resource = format!("service/{cluster}/{}", text(out, "ecs_service_name"));
    let target = scalable_target(c, &resource).await;
    assert_eq!(target.min_capacity(), 2);
    assert_eq!(target.max_capacity(), 10);
    let policies = c
        .autoscaling
        .describe_scaling_policies()
        .service_namespace("ecs".into())
        .resource_id(&resource)
        .send()
        .await
        .unwrap();
    assert_eq!(policies.scaling_policies().len(), 1);
    let t = policies.scaling_policies()[0]
        .target_tracking_scaling_policy_configuration()
        .expect("target tracking");
    assert_eq!(t.target_value(), 70.0);
    assert_eq!(t.scale_in_cooldown(), Some(300));
    assert_eq!(t.scale_out_cooldown(), Some(60));
    assert_eq!(
        t.predefined_metric_specification()
            .map(|m| m.predefined_metric_type().as_str()),
        Some("ECSServiceAverageCPUUtilization")
    );
}
