//! End-to-end behaviour of the engine against the fake cloud: what a plan
//! shows, what an apply does, and how state survives interruptions.

mod common;

use std::time::Duration;

use common::{fast_retries, Harness};
use fastcart_engine::fake::{FakeOp, Phase};
use fastcart_engine::{
    get_att, get_azs, lookup, r#ref, render_plan, select, sub, tag_list, Action, ApplyOptions,
    Error, Plan, ReplaceOrder, ResourceSpec, Session, StackSpec, StateBackend, Status,
};
use serde_json::json;

const PASSWORD: &str = "s3cret-Pa55word";

/// A small stack shaped like the real one; `edited` changes it in every way
/// a plan can show.
fn stack(edited: bool) -> StackSpec {
    let mut s = StackSpec::new("shop", "dev");
    s.tag("Application", "Shop");
    s.add(
        ResourceSpec::new("Network", "Fake::Net::Network")
            .prop("CidrBlock", "10.0.0.0/16")
            .prop("Tags", tag_list([("Name", "shop-dev")])),
    );
    s.add(
        ResourceSpec::new("SubnetA", "Fake::Net::Subnet")
            .prop("NetworkId", r#ref("Network"))
            .prop(
                "CidrBlock",
                if edited { "10.0.3.0/24" } else { "10.0.1.0/24" },
            )
            .prop("Zone", select(0, get_azs())),
    );
    s.add(
        ResourceSpec::new("Stream", "Fake::Queue::Stream")
            .prop("StreamName", sub("orders-${AWS::Region}"))
            .prop("RetentionHours", if edited { 48 } else { 24 })
            .prop("Shards", 2),
    );
    s.add(
        ResourceSpec::new("Db", "Fake::Db::Instance")
            .prop(
                "Identifier",
                if edited { "orders-db-v2" } else { "orders-db" },
            )
            .prop("Engine", "postgres")
            .prop("SubnetIds", json!([r#ref("SubnetA")]))
            .prop("Size", "small")
            .prop(
                "MasterPassword",
                if edited {
                    format!("{PASSWORD}-rotated")
                } else {
                    PASSWORD.to_string()
                },
            ),
    );
    let mut actions = vec!["kinesis:GetRecords", "kinesis:DescribeStream"];
    if edited {
        actions.push("kinesis:GetShardIterator");
    }
    s.add(ResourceSpec::new("Role", "Fake::Iam::Role").prop(
        "PolicyDocument",
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": actions,
                "Resource": get_att("Stream", "Arn"),
            }]
        }),
    ));
    if !edited {
        s.add(
            ResourceSpec::new("Worker", "Fake::Generic::Thing")
                .prop("Inputs", json!([get_att("Db", "Endpoint.Address")]))
                .depends_on("Role"),
        );
    }
    s.output("network_id", r#ref("Network"));
    s.output("db_endpoint", get_att("Db", "Endpoint.Address"));
    s
}

#[tokio::test]
async fn plan_of_a_new_stack_creates_everything() {
    let h = Harness::new();
    let plan = h.plan(&stack(false)).await;
    assert_eq!(plan.summary.create, 6);
    assert!(plan.steps.iter().all(|s| s.action == Action::Create));
    insta::assert_snapshot!("create", render_plan(&plan));
}

#[tokio::test]
async fn edits_show_update_replace_delete_secrets_and_document_diffs() {
    let h = Harness::new();
    h.apply(&stack(false)).await;
    let plan = h.plan(&stack(true)).await;
    insta::assert_snapshot!("edit", render_plan(&plan));

    let step = |id: &str| plan.step(id).unwrap_or_else(|| panic!("no step for {id}"));
    assert_eq!(step("Stream").action, Action::Update);
    assert_eq!(step("SubnetA").action, Action::Replace);
    assert_eq!(
        step("SubnetA").replace_order,
        Some(ReplaceOrder::CreateBeforeDestroy)
    );
    // Identifier fixes the database's name: delete before create.
    assert_eq!(step("Db").action, Action::Replace);
    assert_eq!(
        step("Db").replace_order,
        Some(ReplaceOrder::DeleteBeforeCreate)
    );
    assert_eq!(step("Role").action, Action::Update);
    assert_eq!(step("Worker").action, Action::Delete);

    // Applying the edit converges, and the old subnet and database are gone.
    h.apply(&stack(true)).await;
    let again = h.plan(&stack(true)).await;
    assert!(!again.has_changes(), "{}", render_plan(&again));
    assert!(render_plan(&again).contains("No changes"));
    assert!(h.objects_per_logical_id().values().all(|&n| n == 1));
    assert_eq!(h.cloud.len(), 5);
}

#[tokio::test]
async fn a_replaced_source_replaces_the_create_only_properties_it_feeds() {
    let h = Harness::new();
    h.apply(&stack(false)).await;
    let mut edited = stack(false);
    // Replacing the network feeds SubnetA's create-only NetworkId.
    edited.resources[0]
        .properties
        .insert("CidrBlock".into(), json!("10.1.0.0/16"));
    let plan = h.plan(&edited).await;
    let subnet = plan.step("SubnetA").unwrap();
    assert_eq!(subnet.action, Action::Replace);
    let change = subnet
        .changes
        .iter()
        .find(|c| c.path == "NetworkId")
        .unwrap();
    assert!(change.forces_replacement);
    assert_eq!(change.after, fastcart_engine::After::KnownAfterApply);
    h.apply(&edited).await;
    assert!(!h.plan(&edited).await.has_changes());
}

#[tokio::test]
async fn secrets_never_reach_plan_json_state_or_journal() {
    let h = Harness::new();
    let (plan, _) = h.apply(&stack(false)).await;
    let edit = h.plan(&stack(true)).await;
    for text in [
        render_plan(&plan),
        render_plan(&edit),
        serde_json::to_string(&plan).unwrap(),
        serde_json::to_string(&edit).unwrap(),
    ] {
        assert!(!text.contains(PASSWORD), "secret leaked: {text}");
        assert!(text.contains("(sensitive)") || text.contains("sensitive"));
    }
    let store = h.session(&stack(false)).local().unwrap().clone();
    for path in [store.state_path(), store.journal_path()] {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(PASSWORD), "secret in {}", path.display());
        assert!(
            text.contains("fastcart-sha256:"),
            "no hash in {}",
            path.display()
        );
    }
    // The cloud did get the real password.
    let db = h
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.logical_id() == Some("Db"))
        .unwrap();
    assert_eq!(db.properties["MasterPassword"], PASSWORD);
}

#[tokio::test]
async fn validation_reports_every_problem_at_once() {
    let h = Harness::new();
    let mut s = StackSpec::new("shop", "dev");
    // A tag value AWS would refuse, set on the subnet and among the
    // stack's tags every resource is created with.
    s.tags.insert("Team".into(), "orders & more".into());
    s.add(ResourceSpec::new("Net", "Fake::Net::Netwrok").prop("CidrBlock", "10.0.0.0/16"));
    s.add(
        ResourceSpec::new("Subnet", "Fake::Net::Subnet")
            .prop("NetworkID", r#ref("Net"))
            .prop("CidrBlock", "10.0.1.0/24")
            .prop(
                "Tags",
                tag_list([("Name", "subnet one"), ("Tier", "private")]),
            ),
    );
    s.add(
        ResourceSpec::new("Stream", "Fake::Queue::Stream")
            .prop("StreamName", "orders-of-the-shop-in-the-dev-environment")
            .prop("KeyId", get_att("Subnet", "Arn"))
            .prop("Shards", r#ref("Nowhere"))
            // A lookup belongs in outputs only.
            .prop(
                "RetentionHours",
                lookup("Fake::Queue::Stream", json!("x"), "Shards"),
            ),
    );
    s.output(
        "shards",
        lookup("Fake::Queue::Stream", r#ref("Stream"), "Shard"),
    );
    s.output(
        "other",
        lookup("Fake::Queue::Steam", r#ref("Stream"), "Shards"),
    );
    s.add(ResourceSpec::new("A", "Fake::Generic::Thing").prop("Inputs", json!([r#ref("B")])));
    s.add(ResourceSpec::new("B", "Fake::Generic::Thing").prop("Inputs", json!([r#ref("A")])));
    let mut c = ResourceSpec::new("C", "Fake::Generic::Thing").prop("Size", json!({"Fn::Join": 3}));
    c.initial_only.push("Inputs".into());
    s.add(c);
    let err = fastcart_engine::validate(&s, &h.registry).unwrap_err();
    assert_eq!(err.problems.len(), 14, "{err:#?}");
    let mut text = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut text, &err)
        .unwrap();
    insta::assert_snapshot!("validation", text);
}

#[tokio::test]
async fn saved_plans_apply_exactly_or_not_at_all() {
    let h = Harness::new();
    let s = stack(false);
    let path = h.dir.path().join("saved.plan");
    h.plan(&s).await.save(&path).unwrap();
    let saved = Plan::load(&path).unwrap();

    // A state written since the plan was made: refused.
    h.apply(&s).await;
    let mut session = h.session(&s);
    let err = session
        .apply(&s, &h.registry, &h.ctx, &saved, ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StalePlan { .. }));
    assert!(err.to_string().contains("no state existed"), "{err}");
    drop(session);

    // A serial that moved: refused, naming both serials.
    let edited = stack(true);
    let plan = h.plan(&edited).await;
    h.cloud.clear_events();
    h.apply(&edited).await;
    let err = h
        .session(&edited)
        .apply(&edited, &h.registry, &h.ctx, &plan, ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("serial"), "{err}");

    // A stack that changed: refused.
    let plan = h.plan(&edited).await;
    let err = h
        .session(&stack(false))
        .apply(
            &stack(false),
            &h.registry,
            &h.ctx,
            &plan,
            ApplyOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stack definition changed"), "{err}");

    // A current plan applies.
    let mut session = h.session(&edited);
    let plan = session.plan(&edited, &h.registry, &h.ctx).await.unwrap();
    let report = session
        .apply(&edited, &h.registry, &h.ctx, &plan, ApplyOptions::default())
        .await
        .unwrap();
    assert!(report.succeeded());

    assert!(matches!(
        Plan::load(&h.dir.path().join("missing.plan")),
        Err(Error::Io { .. })
    ));
    std::fs::write(&path, "{ not a plan").unwrap();
    assert!(matches!(Plan::load(&path), Err(Error::BadPlan { .. })));
}

fn event_index(h: &Harness, op: FakeOp, phase: Phase, logical_id: &str) -> usize {
    h.cloud
        .events()
        .iter()
        .position(|e| e.op == op && e.phase == phase && e.logical_id == logical_id)
        .unwrap_or_else(|| panic!("no {op:?} {phase:?} of {logical_id}"))
}

#[tokio::test(start_paused = true)]
async fn replacement_order_follows_the_fixed_name() {
    let h = Harness::new();
    h.cloud.set_default_latency(Duration::from_millis(50));
    h.apply(&stack(false)).await;
    h.cloud.clear_events();
    h.apply(&stack(true)).await;
    // SubnetA: create before destroy.
    assert!(
        event_index(&h, FakeOp::Create, Phase::End, "SubnetA")
            < event_index(&h, FakeOp::Delete, Phase::Start, "SubnetA")
    );
    // Db (fixed name): delete before create.
    assert!(
        event_index(&h, FakeOp::Delete, Phase::End, "Db")
            < event_index(&h, FakeOp::Create, Phase::Start, "Db")
    );
    // Worker leaves the stack; it used Db, so it goes before the old Db.
    assert!(
        event_index(&h, FakeOp::Delete, Phase::End, "Worker")
            < event_index(&h, FakeOp::Delete, Phase::Start, "Db")
    );
}

#[tokio::test(start_paused = true)]
async fn destroy_deletes_dependents_first() {
    let h = Harness::new();
    h.cloud.set_default_latency(Duration::from_millis(10));
    h.apply(&stack(false)).await;
    h.cloud.clear_events();
    let empty = StackSpec::new("shop", "dev");
    let (plan, _) = h.apply(&empty).await;
    assert_eq!(plan.summary.delete, 6);
    assert!(h.cloud.is_empty());
    for (first, then) in [("SubnetA", "Network"), ("Db", "SubnetA"), ("Worker", "Db")] {
        assert!(
            event_index(&h, FakeOp::Delete, Phase::End, first)
                < event_index(&h, FakeOp::Delete, Phase::Start, then),
            "{first} must be deleted before {then}"
        );
    }
    let state = h.session(&empty).state().clone();
    assert!(state.resources.is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_and_failures_name_the_operation() {
    let h = Harness::new();
    h.cloud.throttle("Fake::Net::Network", 3);
    h.apply(&stack(false)).await;
    assert_eq!(h.cloud.calls("Fake::Net::Network", FakeOp::Create), 4);

    let h = Harness::new();
    h.cloud
        .fail("Db", FakeOp::Create, "DBInstanceQuotaExceeded");
    let (_, report) = h.apply_with(&stack(false), fast_retries()).await;
    let db = report
        .results
        .iter()
        .find(|r| r.logical_id == "Db")
        .unwrap();
    assert_eq!(
        db.status,
        Status::Failed {
            error: "fake:CreateInstance: DBInstanceQuotaExceeded".into()
        }
    );
    let worker = report
        .results
        .iter()
        .find(|r| r.logical_id == "Worker")
        .unwrap();
    assert_eq!(
        worker.status,
        Status::Skipped {
            because: "Db failed".into()
        }
    );
    assert!(!report.succeeded());
    // Fixed, the next apply finishes the job.
    h.cloud.clear_failures();
    h.apply(&stack(false)).await;
    assert!(!h.plan(&stack(false)).await.has_changes());
}

#[tokio::test(start_paused = true)]
async fn an_apply_killed_mid_create_is_adopted_not_duplicated() {
    let h = Harness::new();
    h.cloud.set_default_latency(Duration::from_millis(100));
    h.cloud
        .set_latency("Fake::Db::Instance", Duration::from_secs(600));
    let s = stack(false);
    let (registry, ctx, dir, s2) = (
        h.registry.clone(),
        h.ctx.clone(),
        h.dir.path().to_path_buf(),
        s.clone(),
    );
    let task = tokio::spawn(async move {
        let mut session = Session::open(&dir, "shop", "dev", "apply").unwrap();
        let plan = session.plan(&s2, &registry, &ctx).await.unwrap();
        session
            .apply(&s2, &registry, &ctx, &plan, ApplyOptions::default())
            .await
    });
    // The database create has been sent but has not answered.
    tokio::time::sleep(Duration::from_secs(60)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(h
        .cloud
        .resources()
        .iter()
        .any(|r| r.logical_id() == Some("Db")));

    let plan = h.plan(&s).await;
    assert!(
        plan.notes.iter().any(|n| n.starts_with("adopted Db")),
        "{:?}",
        plan.notes
    );
    assert!(plan.step("Db").is_none(), "{}", render_plan(&plan));
    h.cloud.set_latency("Fake::Db::Instance", Duration::ZERO);
    h.apply(&s).await;
    assert!(!h.plan(&s).await.has_changes());
    assert!(h.objects_per_logical_id().values().all(|&n| n == 1));
}

#[tokio::test]
async fn twins_from_retried_creates_are_deleted() {
    let h = Harness::new();
    let s = stack(false);
    h.apply(&s).await;
    // Lose the state of the network, as if its create's answer never came,
    // and leave a twin behind, as a retried create without a token would.
    let store = h.session(&s).local().unwrap().clone();
    let state = h.session(&s).state().clone();
    let network = state.resources["Network"].physical_id.clone();
    let mut lost = state.clone();
    lost.resources.remove("Network");
    lost.serial += 1;
    lost.journal_seq += 1_000; // past every journal entry
    {
        let lock = store.lock("test").unwrap();
        store.save(lock.fence, &lost).unwrap();
    }
    h.twin_of(&network).await;
    assert_eq!(h.objects_per_logical_id()["Network"], 2);

    let plan = h.plan(&s).await;
    assert!(
        plan.notes.iter().any(|n| n.contains("twin")),
        "{:?}",
        plan.notes
    );
    let deposed: Vec<_> = plan.steps.iter().filter(|s| s.deposed).collect();
    assert_eq!(deposed.len(), 1);
    h.apply(&s).await;
    assert_eq!(h.objects_per_logical_id()["Network"], 1);
    assert!(!h.plan(&s).await.has_changes());
}

#[tokio::test]
async fn drift_is_planned_back() {
    let h = Harness::new();
    let s = stack(false);
    h.apply(&s).await;
    let state = h.session(&s).state().clone();
    h.cloud.set_property(
        &state.resources["Stream"].physical_id,
        "RetentionHours",
        json!(168),
    );
    h.cloud.remove(&state.resources["Worker"].physical_id);
    // A property the stack does not set is AWS's business, not drift.
    h.cloud
        .set_property(&state.resources["Network"].physical_id, "Extra", json!(1));
    let plan = h.plan(&s).await;
    assert_eq!(plan.summary.update, 1);
    assert_eq!(plan.summary.create, 1);
    let worker = plan.step("Worker").unwrap();
    assert_eq!(worker.reason, "deleted outside fastcart");
    let stream = plan.step("Stream").unwrap();
    assert_eq!(stream.changes[0].before, Some(json!(168)));
    h.apply(&s).await;
    assert!(!h.plan(&s).await.has_changes());
}

#[tokio::test]
async fn a_second_session_on_the_same_state_is_refused() {
    let h = Harness::new();
    let s = stack(false);
    let _first = h.session(&s);
    let err = match Session::open(h.dir.path(), "shop", "dev", "apply") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("second session opened"),
    };
    assert!(err.contains("locked by"), "{err}");
}

#[tokio::test]
async fn outputs_are_resolved_after_apply() {
    let h = Harness::new();
    // An output that cannot be resolved is reported, never dropped without
    // a word; the others are written.
    let mut s = stack(false);
    s.output("fourth_zone", select(3, get_azs()));
    // A value no attribute publishes is looked up after the apply, by the
    // id the stack resolves; one of an object that is not there is reported.
    s.output(
        "stream_shards",
        lookup("Fake::Queue::Stream", r#ref("Stream"), "Shards"),
    );
    s.output(
        "gone_shards",
        lookup("Fake::Queue::Stream", json!("no-such-stream"), "Shards"),
    );
    let (_, report) = h.apply(&s).await;
    assert_eq!(
        report.unresolved_outputs.keys().collect::<Vec<_>>(),
        ["fourth_zone", "gone_shards"]
    );
    assert!(
        report.unresolved_outputs["gone_shards"].contains("no-such-stream has no Shards"),
        "{report:?}"
    );
    assert!(
        report.unresolved_outputs["fourth_zone"].contains("out of range"),
        "{report:?}"
    );
    let state = h.session(&stack(false)).state().clone();
    assert!(!state.outputs.contains_key("fourth_zone"));
    assert_eq!(
        state.outputs["network_id"],
        json!(state.resources["Network"].physical_id)
    );
    assert!(state.outputs["db_endpoint"]
        .as_str()
        .unwrap()
        .ends_with(".Endpoint.Address"));
    assert_eq!(state.outputs["stream_shards"], json!(2));
}

#[test]
fn engine_has_no_aws_sdk_in_its_dependency_tree() {
    // Walk Cargo.lock from fastcart-engine over every kind of dependency.
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock at the workspace root");
    let mut deps: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for block in lock.split("[[package]]").skip(1) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let list = block
            .split("dependencies = [")
            .nth(1)
            .map(|d| d.split(']').next().unwrap())
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').strip_prefix('"'))
            .map(|l| l.split([' ', '"']).next().unwrap().to_string())
            .collect();
        deps.entry(name).or_default().extend::<Vec<String>>(list);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec!["fastcart-engine".to_string()];
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(deps.get(&p).cloned().unwrap_or_default());
        }
    }
    assert!(
        seen.contains("petgraph") && seen.contains("tokio"),
        "walk works"
    );
    let aws: Vec<_> = seen
        .iter()
        .filter(|p| {
            p.starts_with("aws-sdk") || p.starts_with("aws-config") || p.starts_with("aws-smithy")
        })
        .collect();
    assert!(aws.is_empty(), "fastcart-engine depends on {aws:?}");
}

#[tokio::test]
async fn drift_names_changed_deleted_and_unmanaged_resources() {
    let h = Harness::new();
    let s = stack(false);
    h.apply(&s).await;
    let session = h.session(&s);
    let clean = session.drift(&h.registry).await.unwrap();
    assert!(!clean.has_drift(), "{}", clean.render());
    assert_eq!(clean.checked, 6);

    let state = session.state().clone();
    h.cloud.set_property(
        &state.resources["Stream"].physical_id,
        "RetentionHours",
        json!(168),
    );
    h.cloud.remove(&state.resources["Worker"].physical_id);
    // Someone created a resource with this stack's tags by hand.
    let owner = fastcart_engine::Ownership {
        stack: "shop".into(),
        env: "dev".into(),
    };
    h.registry
        .get("Fake::Generic::Thing")
        .unwrap()
        .create(fastcart_engine::CreateRequest {
            logical_id: "HandMade",
            properties: &serde_json::Map::new(),
            tags: &owner.tags_for("HandMade", &Default::default()),
            idempotency_token: "x",
            context: &h.ctx,
        })
        .await
        .unwrap();
    // Secrets and unset properties are not drift.
    h.cloud.set_property(
        &state.resources["Db"].physical_id,
        "MasterPassword",
        json!("changed"),
    );
    let report = session.drift(&h.registry).await.unwrap();
    assert!(report.has_drift());
    assert_eq!(report.drifted.len(), 1, "{}", report.render());
    assert_eq!(report.drifted[0].properties[0].expected, json!(24));
    assert_eq!(report.drifted[0].properties[0].actual, json!(168));
    assert_eq!(report.deleted[0].logical_id, "Worker");
    assert_eq!(report.unmanaged[0].logical_id, "HandMade");
    insta::assert_snapshot!("drift_text", report.render());
    insta::assert_snapshot!("drift_markdown", report.to_markdown());
    // Drift detection changed nothing.
    drop(session);
    assert_eq!(h.session(&s).state(), &state);
}

#[tokio::test]
async fn a_type_change_deletes_the_old_object_with_its_own_driver() {
    let h = Harness::new();
    let mut s = StackSpec::new("shop", "dev");
    s.add(ResourceSpec::new("Box", "Fake::Generic::Thing").prop("Size", 1));
    h.apply(&s).await;
    let mut t = StackSpec::new("shop", "dev");
    t.add(ResourceSpec::new("Box", "Fake::Iam::Role").prop(
        "PolicyDocument",
        json!({"Version": "2012-10-17", "Statement": []}),
    ));
    let plan = h.plan(&t).await;
    let step = plan.step("Box").unwrap();
    assert_eq!(step.action, Action::Replace);
    assert_eq!(step.old_type.as_deref(), Some("Fake::Generic::Thing"));
    h.apply(&t).await;
    let left: Vec<_> = h
        .cloud
        .resources()
        .into_iter()
        .map(|r| r.type_name)
        .collect();
    assert_eq!(left, vec!["Fake::Iam::Role".to_string()]);
    assert!(!h.plan(&t).await.has_changes());
}

#[tokio::test]
async fn a_tag_removed_from_the_stack_is_removed_from_the_cloud() {
    let h = Harness::new();
    let mut s = stack(false);
    h.apply(&s).await;
    s.resources[0]
        .properties
        .insert("Tags".into(), tag_list([("Owner", "shop")]));
    h.apply(&s).await;
    s.resources[0].properties.insert("Tags".into(), json!([]));
    let plan = h.plan(&s).await;
    assert_eq!(plan.step("Network").unwrap().action, Action::Update);
    h.apply(&s).await;
    assert!(!h.plan(&s).await.has_changes());
}

#[tokio::test(start_paused = true)]
async fn a_saved_plan_is_stale_after_an_apply_was_cut_off() {
    let h = Harness::new();
    h.cloud.set_default_latency(Duration::from_millis(100));
    let s = stack(false);
    h.apply(&s).await;
    let edited = stack(true);
    let saved = h.plan(&edited).await;
    // Another apply starts and dies before its state is saved (killed
    // before the first save, or every save failed): put the old file back.
    let state_path = h.session(&s).local().unwrap().state_path();
    let before = std::fs::read(&state_path).unwrap();
    let (registry, ctx, dir, e) = (
        h.registry.clone(),
        h.ctx.clone(),
        h.dir.path().to_path_buf(),
        edited.clone(),
    );
    let task = tokio::spawn(async move {
        let mut session = Session::open(&dir, "shop", "dev", "apply").unwrap();
        let plan = session.plan(&e, &registry, &ctx).await.unwrap();
        session
            .apply(&e, &registry, &ctx, &plan, ApplyOptions::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.abort();
    let _ = task.await;
    std::fs::write(&state_path, before).unwrap();
    let err = h
        .session(&edited)
        .apply(
            &edited,
            &h.registry,
            &h.ctx,
            &saved,
            ApplyOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("may have been cut off"), "{err}");
    // A plan for another account is refused too.
    let mut other = h.ctx.clone();
    other.account_id = "999999999999".into();
    let fresh = h.plan(&edited).await;
    let err = h
        .session(&edited)
        .apply(
            &edited,
            &h.registry,
            &other,
            &fresh,
            ApplyOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("account 999999999999"), "{err}");
}

#[tokio::test]
async fn a_delete_first_replacement_upstream_of_a_deposed_object_does_not_deadlock() {
    let h = Harness::new();
    let mut s = StackSpec::new("shop", "dev");
    s.add(ResourceSpec::new("Stream", "Fake::Queue::Stream").prop("StreamName", "orders"));
    s.add(
        ResourceSpec::new("Reader", "Fake::Generic::Thing")
            .prop("Inputs", json!([get_att("Stream", "Arn")]))
            .prop("Size", 1),
    );
    h.apply(&s).await;
    // Reader has a deposed twin left from an earlier run.
    let store = h.session(&s).local().unwrap().clone();
    let mut state = h.session(&s).state().clone();
    let twin = h.twin_of(&state.resources["Reader"].physical_id).await;
    let r = state.resources.get_mut("Reader").unwrap();
    r.deposed.push(fastcart_engine::state::Deposed {
        physical_id: twin.physical_id,
        properties: r.properties.clone(),
        reason: None,
    });
    state.serial += 1;
    store
        .save(store.lock("test").unwrap().fence, &state)
        .unwrap();

    // The stream's fixed name changes (delete before create); Reader updates.
    s.resources[0]
        .properties
        .insert("StreamName".into(), json!("orders-v2"));
    let plan = h.plan(&s).await;
    assert_eq!(
        plan.step("Stream").unwrap().replace_order,
        Some(ReplaceOrder::DeleteBeforeCreate)
    );
    let (_, report) = h.apply(&s).await;
    assert!(report.succeeded());
    assert!(!h.plan(&s).await.has_changes());
    assert_eq!(h.cloud.len(), 2);
}

#[tokio::test]
async fn a_taken_name_carrying_our_tags_is_adopted_and_anything_else_is_an_error() {
    let h = Harness::new();
    let mut s = StackSpec::new("shop", "dev");
    s.add(ResourceSpec::new("Stream", "Fake::Queue::Stream").prop("StreamName", "orders"));
    let create = |name: &str, logical_id: &str, stack: &str| {
        let driver = h.registry.get("Fake::Queue::Stream").unwrap().clone();
        let props: fastcart_engine::Properties =
            serde_json::from_value(json!({"StreamName": name})).unwrap();
        let owner = fastcart_engine::Ownership {
            stack: stack.into(),
            env: "dev".into(),
        };
        let tags = owner.tags_for(logical_id, &Default::default());
        let ctx = h.ctx.clone();
        let logical_id = logical_id.to_string();
        async move {
            driver
                .create(fastcart_engine::CreateRequest {
                    logical_id: &logical_id,
                    properties: &props,
                    tags: &tags,
                    idempotency_token: "earlier",
                    context: &ctx,
                })
                .await
                .unwrap()
        }
    };
    // The plan sees nothing; then an earlier, cut-off create of ours lands.
    let mut session = h.session(&s);
    let plan = session.plan(&s, &h.registry, &h.ctx).await.unwrap();
    assert_eq!(plan.step("Stream").unwrap().action, Action::Create);
    let earlier = create("orders", "Stream", "shop").await;
    let report = session
        .apply(&s, &h.registry, &h.ctx, &plan, common::fast_retries())
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(
        session.state().resources["Stream"].physical_id,
        earlier.physical_id
    );
    assert_eq!(h.cloud.len(), 1);
    drop(session);
    assert!(!h.plan(&s).await.has_changes());

    // A name taken by something that is not ours is an error, not adopted.
    let mut t = StackSpec::new("shop", "dev");
    t.add(ResourceSpec::new("Other", "Fake::Queue::Stream").prop("StreamName", "billing"));
    let mut session = h.session(&t);
    let plan = session.plan(&t, &h.registry, &h.ctx).await.unwrap();
    create("billing", "Billing", "someone-else").await;
    let report = session
        .apply(&t, &h.registry, &h.ctx, &plan, common::fast_retries())
        .await
        .unwrap();
    assert!(!report.succeeded());
    assert!(!session.state().resources.contains_key("Other"));
}

/// A create whose answer was lost is never sent again blindly: lost after it
/// took effect, the engine finds what it made (by ownership tags for an
/// unnamed type, by its name for a named one) and adopts it; lost before, it
/// sends it again. Either way exactly one object per resource, and the next
/// plan is clean.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_not_sent_again() {
    for after in [true, false] {
        let h = Harness::new();
        let s = stack(false);
        // Network is unnamed (found by tags), Stream is named (its name is
        // taken on a resend, and the taken one carries our tags).
        for id in ["Network", "SubnetA", "Stream"] {
            h.cloud.lose_answers(id, FakeOp::Create, 1, after);
        }
        let (_, report) = h.apply(&s).await;
        let per_id = h.objects_per_logical_id();
        for id in ["Network", "SubnetA", "Stream"] {
            assert_eq!(
                per_id[id],
                1,
                "lost {}: {per_id:?}",
                if after { "after" } else { "before" }
            );
        }
        let creates = h.cloud.calls("Fake::Net::Network", FakeOp::Create);
        let waits = h.cloud.calls("Fake::Net::Network", FakeOp::Ready);
        // It is looked for by its key (as import looks), and no tag search
        // is needed when that finds what it made (the one tag search is the
        // plan's, before the apply).
        let by_key = h.cloud.calls("Fake::Net::Network", FakeOp::FindByKey);
        let by_tags = h.cloud.calls("Fake::Net::Network", FakeOp::Find);
        assert_eq!((by_key, by_tags), if after { (1, 1) } else { (1, 2) });
        if after {
            assert_eq!(
                creates, 1,
                "what the first attempt made was adopted, not made again"
            );
            assert_eq!(waits, 1, "the adopted object was waited for");
        } else {
            assert_eq!(creates, 2, "nothing was made, so it was sent again");
            assert_eq!(waits, 0, "a create that answered needs no extra wait");
        }
        assert!(report.succeeded());
        assert!(!h.plan(&s).await.has_changes());
    }
}

/// A twin of a resource the state holds (a create that was sent twice, the
/// state recording one of the two) is planned as a delete with its reason,
/// deleted by apply, and nothing carrying the stack's tags survives destroy.
#[tokio::test]
async fn a_twin_of_a_resource_in_state_is_planned_deleted_with_its_reason() {
    let h = Harness::new();
    let s = stack(false);
    h.apply(&s).await;
    let state = h.session(&s).state().clone();
    let kept = state.resources["Network"].physical_id.clone();
    h.twin_of(&kept).await;
    assert_eq!(h.objects_per_logical_id()["Network"], 2);

    let plan = h.plan(&s).await;
    let twin = plan
        .steps
        .iter()
        .find(|s| s.deposed)
        .expect("the twin is planned");
    assert_eq!(twin.action, Action::Delete);
    assert_eq!(twin.reason, "twin of Network left by an interrupted call");
    assert!(
        render_plan(&plan).contains("twin of Network"),
        "{}",
        render_plan(&plan)
    );
    h.apply(&s).await;
    assert_eq!(h.objects_per_logical_id()["Network"], 1);
    assert!(h.cloud.get(&kept).is_some(), "the tracked one stays");
    assert!(!h.plan(&s).await.has_changes());
}

/// A tag list edited: the plan names the tags to add, change and remove
/// (tags match by key), not the whole list twice.
#[tokio::test]
async fn a_list_change_is_planned_by_element() {
    let h = Harness::new();
    let network = |tags: serde_json::Value| {
        let mut s = StackSpec::new("shop", "t1");
        s.add(
            ResourceSpec::new("Network", "Fake::Net::Network")
                .prop("CidrBlock", "10.0.0.0/16")
                .prop("Tags", tags),
        );
        s
    };
    h.apply(&network(json!([
        {"Key": "Team", "Value": "orders"},
        {"Key": "Owner", "Value": "ops"}
    ])))
    .await;
    let plan = h
        .plan(&network(json!([
            {"Key": "Team", "Value": "payments"},
            {"Key": "Cost", "Value": "cc-42"}
        ])))
        .await;
    let change = &plan.step("Network").unwrap().changes[0];
    let d = change.elements.as_ref().expect("an element diff");
    // Owner, which the stack set and no longer does, is removed; tags only
    // the cloud has are left alone (and not listed).
    assert_eq!((d.removed.len(), d.added.len(), d.changed.len()), (1, 1, 1));
    insta::assert_snapshot!("list_by_element", render_plan(&plan));
}

/// A property set for creation only (an ECS service's desired count, which
/// a scaler moves) is sent by the create and then left alone: what the
/// cloud makes of it is neither a change to plan nor drift, an update of
/// the resource does not send it back, and the properties around it are
/// still compared.
#[tokio::test]
async fn an_initial_only_property_is_created_and_then_left_to_the_cloud() {
    let h = Harness::new();
    let stream = |shards: i64, hours: i64| {
        let mut s = StackSpec::new("shop", "dev");
        s.add(
            ResourceSpec::new("Stream", "Fake::Queue::Stream")
                .prop("StreamName", "orders")
                .prop("RetentionHours", hours)
                .initial("Shards", shards),
        );
        s
    };
    let s = stream(2, 24);
    h.apply(&s).await;
    let id = h.session(&s).state().resources["Stream"]
        .physical_id
        .clone();
    assert_eq!(h.cloud.property(&id, "Shards"), Some(json!(2)));

    // The scaler moves it.
    h.cloud.set_property(&id, "Shards", json!(5));
    assert!(!h.plan(&s).await.has_changes());
    let session = h.session(&s);
    let report = session.drift(&h.registry).await.unwrap();
    assert!(!report.has_drift(), "{}", report.render());
    drop(session);

    // A change beside it is drift, planned back without touching it.
    h.cloud.set_property(&id, "RetentionHours", json!(168));
    let session = h.session(&s);
    let report = session.drift(&h.registry).await.unwrap();
    assert_eq!(report.drifted.len(), 1, "{}", report.render());
    let paths: Vec<_> = report.drifted[0]
        .properties
        .iter()
        .map(|p| &p.path)
        .collect();
    assert_eq!(paths, ["RetentionHours"]);
    drop(session);
    let plan = h.plan(&s).await;
    let changes: Vec<_> = plan
        .step("Stream")
        .unwrap()
        .changes
        .iter()
        .map(|c| &c.path)
        .collect();
    assert_eq!(changes, ["RetentionHours"]);
    h.apply(&s).await;
    assert_eq!(h.cloud.property(&id, "RetentionHours"), Some(json!(24)));
    assert_eq!(h.cloud.property(&id, "Shards"), Some(json!(5)));

    // A new initial value in the stack changes nothing that exists...
    assert!(!h.plan(&stream(3, 24)).await.has_changes());
    // ...and is what a new object starts with.
    h.cloud.remove(&id);
    h.apply(&stream(3, 24)).await;
    let id = h.session(&s).state().resources["Stream"]
        .physical_id
        .clone();
    assert_eq!(h.cloud.property(&id, "Shards"), Some(json!(3)));
}

/// A replacement of a resource that holds data (its type's schema says so)
/// is refused before anything is journaled or sent, naming it, unless the
/// operator names it too; the plan says so beforehand.
#[tokio::test]
async fn a_replacement_that_loses_data_is_refused_unless_named() {
    let h = Harness::with_data_stores();
    let db = |engine: &str| {
        let mut s = StackSpec::new("shop", "dev");
        s.add(
            ResourceSpec::new("Db", "Fake::Db::Instance")
                .prop("Identifier", "orders")
                .prop("Engine", engine),
        );
        s
    };
    h.apply(&db("postgres")).await;
    let edited = db("mysql");
    let plan = h.plan(&edited).await;
    let text = render_plan(&plan);
    assert!(text.contains("Engine forces replacement"), "{text}");
    assert!(text.contains("unless --allow-replace Db"), "{text}");

    h.cloud.clear_events();
    let err = h
        .session(&edited)
        .apply(&edited, &h.registry, &h.ctx, &plan, fast_retries())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReplacesData { ids } if ids == &["Db"]),
        "{err}"
    );
    assert!(h.cloud.events().is_empty(), "{:?}", h.cloud.events());
    assert_eq!(h.cloud.resources()[0].properties["Engine"], "postgres");

    let allowed = ApplyOptions {
        allow_replace: vec!["Db".into()],
        ..fast_retries()
    };
    let (_, report) = h.apply_with(&edited, allowed).await;
    assert!(report.succeeded(), "{report:#?}");
    let engines: Vec<_> = h
        .cloud
        .resources()
        .iter()
        .map(|r| r.properties["Engine"].clone())
        .collect();
    assert_eq!(engines, ["mysql"]);
}
