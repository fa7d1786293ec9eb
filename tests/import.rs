//! `fastcart import` end to end against the emulator: the order platform as
//! another tool left it (the Pulumi program's names and settings, its
//! `ManagedBy=Pulumi` tag, no fastcart tags, the names Pulumi picks for the
//! security groups and the DB subnet group) is taken over by the binary
//! without creating, replacing or deleting anything, and every object
//! fastcart then manages is the very one the test made.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;

use fastcart_drivers::Clients;
use fastcart_engine::resolve::{resolve_map, Known, Published};
use fastcart_engine::{CreateRequest, StackGraph, StackSpec};
use serde_json::Value;

use world::{flat, World};

/// The tags the Pulumi program puts on everything: the stack's, but
/// `ManagedBy=Pulumi`, and no fastcart ownership tags.
fn pulumi_tags(stack: &StackSpec) -> BTreeMap<String, String> {
    let mut tags = stack.tags.clone();
    tags.insert("ManagedBy".into(), "Pulumi".into());
    tags
}

/// Pulumi's auto-name: the resource's name, a dash and 7 characters.
fn auto_name(name: &str, seed: usize) -> String {
    format!("{name}-{:07x}", 0x1a2b3c4 + seed * 0x111)
}

/// Makes the order platform the way the Pulumi program does: every resource
/// of the stack with its settings, in dependency order, created through the
/// SDK (by the drivers' create calls, so the settings are exactly the
/// stack's), tagged as Pulumi tags, with Pulumi's picked names where the
/// program lets Pulumi pick. Returns the physical ids by logical id.
async fn make_as_pulumi(w: &World, c: &Arc<Clients>) -> BTreeMap<String, String> {
    let stack = w.stack();
    let registry = fastcart_drivers::registry(c);
    let graph = fastcart_engine::validate(&stack, &registry).expect("a valid stack");
    let ctx = c.context(None).await.expect("the emulator's context");
    let tags = pulumi_tags(&stack);
    let mut known = Known::new();
    let mut made = BTreeMap::new();
    for (n, id) in topological(&graph).into_iter().enumerate() {
        let spec = stack.resource(&id).unwrap();
        let mut props =
            resolve_map(&spec.properties, &ctx, &known).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let name_tag = props
            .get("Tags")
            .and_then(Value::as_array)
            .and_then(|t| t.iter().find(|t| t["Key"] == "Name"))
            .and_then(|t| t["Value"].as_str())
            .map(String::from);
        // Where the program names nothing, Pulumi picks the name.
        let picked = match spec.type_name.as_str() {
            "AWS::EC2::SecurityGroup" => Some("GroupName"),
            "AWS::RDS::DBSubnetGroup" => Some("DBSubnetGroupName"),
            _ => None,
        };
        if let Some(prop) = picked.filter(|p| !props.contains_key(*p)) {
            props.insert(prop.into(), auto_name(&name_tag.unwrap(), n).into());
        }
        // Two settings that drifted from the program while Pulumi ran it:
        // the plan after the import shows them as in-place updates.
        match id.as_str() {
            "LogGroup" => {
                props.insert("RetentionInDays".into(), 14.into());
            }
            "DatabaseCpuAlarm" => {
                props.insert("Threshold".into(), 90.into());
            }
            _ => {}
        }
        let created = registry
            .get(&spec.type_name)
            .unwrap()
            .create(CreateRequest {
                logical_id: &id,
                properties: &props,
                tags: &tags,
                idempotency_token: &format!("pulumi-made-{id:0>40}"),
                context: &ctx,
            })
            .await
            .unwrap_or_else(|e| panic!("making {id} as Pulumi would: {e}"));
        made.insert(id.clone(), created.physical_id.clone());
        known.insert(
            id,
            Published {
                physical_id: created.physical_id,
                attributes: created.attributes,
            },
        );
    }
    made
}

fn topological(graph: &StackGraph) -> Vec<String> {
    graph.topological().map(String::from).collect()
}

/// Asserts that a plan (as `plan --json` prints it) only updates or keeps.
fn creates_replaces_and_deletes_nothing(plan: &Value) {
    for step in plan["steps"].as_array().unwrap() {
        let action = step["action"].as_str().unwrap();
        assert!(
            !matches!(action, "create" | "replace" | "delete"),
            "{} would be {action}: {step:#}",
            step["logical_id"]
        );
    }
}

/// The physical id the state holds for each logical id.
fn state_ids(w: &World) -> BTreeMap<String, String> {
    w.state()["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["physical_id"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_pulumi_stack_is_taken_over_without_recreating_anything() {
    let w = World::new("imp");
    let c = w.clients().await;
    let made = make_as_pulumi(&w, &c).await;
    assert_eq!(made.len(), w.stack().resources.len());
    assert!(
        w.owned(&c).await.is_empty(),
        "nothing carries fastcart's tags"
    );

    // Without --apply: every resource would be adopted; nothing is written.
    let shown = w.expect(0, &["import", "-v"]);
    let said = flat(&shown);
    let requests: u64 = shown
        .lines()
        .filter_map(|l| l.strip_prefix("aws requests: "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "`fastcart import` of the {} resources sent {requests} AWS requests",
        made.len()
    );
    for (id, pid) in &made {
        assert!(
            said.contains(&format!("would adopt {id} (")) && said.contains(pid.as_str()),
            "{id} ({pid}) not shown as adopted:\n{shown}"
        );
    }
    assert!(shown.contains("0 without a match"), "{shown}");
    assert!(!w.path(".fastcart/fastcart-imp/state.json").exists());
    assert!(w.owned(&c).await.is_empty());

    // With --apply: the state holds exactly what was made, and each object
    // now carries the ownership tags.
    w.expect(0, &["import", "--apply"]);
    assert_eq!(state_ids(&w), made);
    let owned = w.owned(&c).await;
    let stack = w.stack();
    let registry = fastcart_drivers::registry(&c);
    for (id, pid) in &made {
        let ty = &stack.resource(id).unwrap().type_name;
        let untaggable = registry.schema(ty).is_some_and(|s| !s.taggable);
        if untaggable {
            continue;
        }
        assert_eq!(
            owned.get(&(ty.clone(), id.clone())),
            Some(&vec![pid.clone()]),
            "{id}"
        );
    }

    // The plan creates, replaces and deletes nothing.
    let plan: Value = serde_json::from_str(&w.expect(0, &["plan", "--json"])).unwrap();
    creates_replaces_and_deletes_nothing(&plan);
    let mut updated: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "update")
        .map(|s| s["logical_id"].as_str().unwrap())
        .collect();
    updated.sort_unstable();
    assert_eq!(updated, ["DatabaseCpuAlarm", "LogGroup"], "{plan:#}");
    let sum = &plan["summary"];
    assert_eq!(sum["unchanged"], made.len() - 2, "{sum}");
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);
    let group = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&made["LogGroup"])
        .send()
        .await
        .unwrap();
    assert_eq!(group.log_groups()[0].retention_in_days(), Some(7));
    assert_eq!(state_ids(&w), made, "the very objects the test made");

    // A second import changes nothing.
    let serial = w.state()["serial"].clone();
    let journal =
        std::fs::read_to_string(w.path(".fastcart/fastcart-imp/journal.jsonl")).unwrap_or_default();
    let again = w.expect(0, &["import", "--apply"]);
    assert!(again.contains("Nothing to import"), "{again}");
    assert_eq!(w.state()["serial"], serial);
    assert_eq!(
        std::fs::read_to_string(w.path(".fastcart/fastcart-imp/journal.jsonl")).unwrap_or_default(),
        journal
    );
    world::destroy_leaves_nothing(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_objects_that_match_one_resource_are_refused_until_one_is_named() {
    let w = World::new("impamb");
    let c = w.clients().await;
    let tags = pulumi_tags(&w.stack());
    // A VPC of the stack's and two security groups that both carry the
    // Redis group's Name tag, made straight through EC2.
    let vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let name_tag = |name: &str| {
        let mut all = tags.clone();
        all.insert("Name".into(), name.into());
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
            .set_tags(Some(
                all.iter()
                    .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    };
    c.ec2
        .create_tags()
        .resources(&vpc)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value("fastcart-vpc-impamb")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut groups = Vec::new();
    for n in 0..2 {
        let g = c
            .ec2
            .create_security_group()
            .group_name(auto_name("fastcart-redis-sg-impamb", n))
            .description("fastcart Redis, reachable from the order processor only")
            .vpc_id(&vpc)
            .tag_specifications(name_tag("fastcart-redis-sg-impamb"))
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap();
        groups.push(g);
    }

    let (code, text) = w.fastcart(&["import", "--apply"]);
    assert_eq!(code, 1, "{text}");
    let said = flat(&text);
    for g in &groups {
        assert!(said.contains(g.as_str()), "{g} not named:\n{text}");
    }
    assert!(said.contains("--id RedisSecurityGroup="), "{text}");
    let ids = state_ids(&w);
    assert_eq!(ids.get("Vpc"), Some(&vpc), "the rest is still taken over");
    assert!(!ids.contains_key("RedisSecurityGroup"));

    let chosen = format!("RedisSecurityGroup={}", groups[1]);
    w.expect(0, &["import", "--apply", "--id", &chosen]);
    assert_eq!(state_ids(&w).get("RedisSecurityGroup"), Some(&groups[1]));
}

/// The Flask API platform, made as its Pulumi program would, is taken over
/// the same way: every resource adopted as the very object made (the
/// scaling target and policy included), and the next plan creates,
/// replaces and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_flask_api_stack_is_taken_over_without_recreating_anything() {
    let w = World::of("flask-api", "impflask");
    let c = w.clients().await;
    let made = make_as_pulumi(&w, &c).await;
    assert_eq!(made.len(), w.stack().resources.len());
    let shown = w.expect(0, &["import", "--apply"]);
    assert!(shown.contains("0 without a match"), "{shown}");
    assert_eq!(state_ids(&w), made);
    let plan: Value = serde_json::from_str(&w.expect(0, &["plan", "--json"])).unwrap();
    creates_replaces_and_deletes_nothing(&plan);
    w.expect(0, &["apply", "--auto-approve"]);
    w.expect(0, &["plan", "--detailed-exitcode"]);
    assert_eq!(state_ids(&w), made, "the very objects the test made");
    world::destroy_leaves_nothing(&w).await;
}
