//! `fastcart import` against the fake cloud: objects another tool made are
//! found by their keys and through what refers to them, taken over without
//! a create, replace or delete, and a second import changes nothing.

mod common;

use std::collections::BTreeMap;

use common::Harness;
use fastcart_engine::fake::FakeOp;
use fastcart_engine::{
    get_azs, r#ref, select, tag_list, CloudContext, CreateRequest, Error, Session, StackSpec,
    TAG_LOGICAL_ID,
};
use serde_json::{json, Map, Value};

const PASSWORD: &str = "another-tools-Pa55word";

fn stack() -> StackSpec {
    stack_with(true)
}

/// The stack; without the database, nothing refers to the subnet.
fn stack_with(db: bool) -> StackSpec {
    let mut s = StackSpec::new("shop", "dev");
    s.tag("ManagedBy", "fastcart");
    s.add(
        fastcart_engine::ResourceSpec::new("Network", "Fake::Net::Network")
            .prop("CidrBlock", "10.0.0.0/16")
            .prop("Tags", tag_list([("Name", "shop-dev")])),
    );
    s.add(
        fastcart_engine::ResourceSpec::new("Subnet", "Fake::Net::Subnet")
            .prop("NetworkId", r#ref("Network"))
            .prop("CidrBlock", "10.0.1.0/24")
            .prop("Zone", select(0, get_azs())),
    );
    if db {
        s.add(
            fastcart_engine::ResourceSpec::new("Db", "Fake::Db::Instance")
                .prop("Identifier", "orders-db")
                .prop("Engine", "postgres")
                .prop("SubnetIds", json!([r#ref("Subnet")]))
                .prop("MasterPassword", PASSWORD),
        );
    }
    // A role has no key of its own: the stream that names it finds it.
    s.add(
        fastcart_engine::ResourceSpec::new("Role", "Fake::Iam::Role").prop(
            "PolicyDocument",
            json!({"Version": "2012-10-17", "Statement": []}),
        ),
    );
    s.add(
        fastcart_engine::ResourceSpec::new("Stream", "Fake::Queue::Stream")
            .prop("StreamName", "orders")
            .prop("Shards", 2)
            .prop("KeyId", r#ref("Role")),
    );
    s
}

/// Makes an object as another tool would: no fastcart tags.
async fn make(h: &Harness, type_name: &str, props: Value) -> String {
    let props: Map<String, Value> = props.as_object().unwrap().clone();
    let tags = BTreeMap::from([("ManagedBy".to_string(), "Pulumi".to_string())]);
    h.registry
        .get(type_name)
        .unwrap()
        .create(CreateRequest {
            logical_id: "",
            properties: &props,
            tags: &tags,
            idempotency_token: "other-tool",
            context: &h.ctx,
        })
        .await
        .unwrap()
        .physical_id
}

/// What the other tool made, by logical id. The subnet is in the third
/// zone, where this stack's first zone is not.
async fn other_tools_stack(h: &Harness) -> BTreeMap<&'static str, String> {
    let mut made = BTreeMap::new();
    let net = make(
        h,
        "Fake::Net::Network",
        json!({"CidrBlock": "10.0.0.0/16", "Tags": [{"Key": "Name", "Value": "shop-dev"}]}),
    )
    .await;
    let subnet = make(
        h,
        "Fake::Net::Subnet",
        json!({"NetworkId": net, "CidrBlock": "10.0.1.0/24", "Zone": "eu-central-1c"}),
    )
    .await;
    let db = make(
        h,
        "Fake::Db::Instance",
        json!({"Identifier": "orders-db", "Engine": "postgres", "SubnetIds": [subnet],
               "MasterPassword": PASSWORD}),
    )
    .await;
    let role = make(
        h,
        "Fake::Iam::Role",
        json!({"PolicyDocument": {"Version": "2012-10-17", "Statement": []}}),
    )
    .await;
    let stream = make(
        h,
        "Fake::Queue::Stream",
        json!({"StreamName": "orders", "Shards": 2, "KeyId": role}),
    )
    .await;
    made.insert("Network", net);
    made.insert("Subnet", subnet);
    made.insert("Db", db);
    made.insert("Role", role);
    made.insert("Stream", stream);
    made
}

async fn import(
    h: &Harness,
    given: &[(&str, &str)],
    apply: bool,
) -> fastcart_engine::Result<fastcart_engine::import::ImportReport> {
    import_of(h, &stack(), given, apply).await
}

async fn import_of(
    h: &Harness,
    s: &StackSpec,
    given: &[(&str, &str)],
    apply: bool,
) -> fastcart_engine::Result<fastcart_engine::import::ImportReport> {
    let given: BTreeMap<String, String> = given
        .iter()
        .map(|(l, p)| (l.to_string(), p.to_string()))
        .collect();
    h.session(s)
        .import(s, &h.registry, &h.ctx, &given, apply)
        .await
}

/// The context a later command builds: the zones the state keeps.
fn context_of(h: &Harness, session: &Session) -> CloudContext {
    let mut ctx = h.ctx.clone();
    if let Some(z) = &session.state().zones {
        ctx.availability_zones = z.names.clone();
    }
    ctx
}

#[tokio::test]
async fn what_another_tool_made_is_taken_over_as_it_is() {
    let h = Harness::new();
    let made = other_tools_stack(&h).await;

    // Without --apply: the report, and nothing written or sent.
    h.cloud.clear_events();
    let report = import(&h, &[], false).await.unwrap();
    let adopted: BTreeMap<&str, &str> = report
        .adopted
        .iter()
        .map(|a| (a.logical_id.as_str(), a.physical_id.as_str()))
        .collect();
    let expected: BTreeMap<&str, &str> = made.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(adopted, expected, "{report:#?}");
    assert!(report.unmatched.is_empty() && report.ambiguous.is_empty());
    let how: BTreeMap<&str, &str> = report
        .adopted
        .iter()
        .map(|a| (a.logical_id.as_str(), a.how.as_str()))
        .collect();
    assert_eq!(how["Network"], "by CidrBlock=\"10.0.0.0/16\"");
    assert_eq!(how["Role"], "through Stream.KeyId");
    assert_eq!(h.cloud.total_calls(FakeOp::Update), 0);
    assert!(!h.dir.path().join("shop-dev/state.json").exists());

    // With --apply: recorded, tagged as this stack's, nothing else sent.
    let report = import(&h, &[], true).await.unwrap();
    assert!(report.applied);
    for r in h.cloud.resources() {
        assert!(r.logical_id().is_some(), "{} untagged", r.physical_id);
        assert_eq!(r.tags["ManagedBy"], "fastcart");
    }
    assert_eq!(h.cloud.total_calls(FakeOp::Create), 0);
    assert_eq!(h.cloud.total_calls(FakeOp::Delete), 0);
    let mut session = h.session(&stack());
    for (id, pid) in &made {
        assert_eq!(&session.state().resources[*id].physical_id, pid);
    }
    let journal = std::fs::read_to_string(session.local().unwrap().journal_path()).unwrap();
    assert_eq!(
        journal.matches("\"op\":\"import\"").count(),
        10,
        "{journal}"
    );

    // The next plan changes nothing: the subnet's zone is where it is, and
    // the password no read can see is taken as the stack's.
    let ctx = context_of(&h, &session);
    assert_eq!(ctx.availability_zones[0], "eu-central-1c");
    let plan = session.plan(&stack(), &h.registry, &ctx).await.unwrap();
    assert!(!plan.has_changes(), "{:#?}", plan.steps);
    drop(session);

    // A second import is a no-op.
    let serial = h.session(&stack()).state().serial;
    let again = import(&h, &[], true).await.unwrap();
    assert!(again.adopted.is_empty(), "{again:#?}");
    assert_eq!(again.in_state.len(), 5);
    assert_eq!(h.session(&stack()).state().serial, serial);
}

#[tokio::test]
async fn two_candidates_are_refused_until_one_is_named() {
    let h = Harness::new();
    let made = other_tools_stack(&h).await;
    let second = make(
        &h,
        "Fake::Net::Network",
        json!({"CidrBlock": "10.0.0.0/16", "Tags": [{"Key": "Name", "Value": "shop-dev"}]}),
    )
    .await;
    // The subnet the database uses names its network: that settles it.
    let report = import(&h, &[], false).await.unwrap();
    assert!(report.ambiguous.is_empty(), "{report:#?}");
    let net = report
        .adopted
        .iter()
        .find(|a| a.logical_id == "Network")
        .unwrap();
    assert_eq!(net.physical_id, made["Network"]);
    assert_eq!(net.how, "through Subnet.NetworkId");

    // Where nothing refers to it, the choice is the operator's.
    let s = stack_with(false);
    let report = import_of(&h, &s, &[], true).await.unwrap();
    assert_eq!(report.ambiguous.len(), 1, "{report:#?}");
    let a = &report.ambiguous[0];
    assert_eq!(a.logical_id, "Network");
    let ids: Vec<&str> = a.candidates.iter().map(|(p, _)| p.as_str()).collect();
    assert!(ids.contains(&made["Network"].as_str()) && ids.contains(&second.as_str()));
    // The subnet's key needs the network: it waits.
    let subnet = report
        .unmatched
        .iter()
        .find(|n| n.logical_id == "Subnet")
        .expect("subnet unmatched");
    assert!(subnet.why.contains("Network"), "{}", subnet.why);
    let state = h.session(&s).state().clone();
    assert!(!state.resources.contains_key("Network"));
    assert!(
        state.resources.contains_key("Stream"),
        "the rest is taken over"
    );
    assert!(h.cloud.get(&second).unwrap().logical_id().is_none());

    // Named with --id, it is taken over, and what waited for it too.
    let report = import_of(&h, &s, &[("Network", &made["Network"])], true)
        .await
        .unwrap();
    assert!(report.ambiguous.is_empty(), "{report:#?}");
    let state = h.session(&s).state().clone();
    assert_eq!(state.resources["Network"].physical_id, made["Network"]);
    assert_eq!(state.resources["Subnet"].physical_id, made["Subnet"]);

    // An --id of nothing that exists is refused.
    let err = import(&h, &[("Db", "no-such-db")], false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Import { .. }), "{err}");
}

#[tokio::test]
async fn an_import_cut_off_at_a_tag_call_is_finished_by_the_next() {
    let h = Harness::new();
    let made = other_tools_stack(&h).await;
    h.cloud.fail("Db", FakeOp::Update, "tagging refused");
    let err = import(&h, &[], true).await.unwrap_err();
    assert!(err.to_string().contains("tagging refused"), "{err}");
    let state = h.session(&stack()).state().clone();
    assert!(!state.resources.contains_key("Db"));
    assert!(state.pending.is_empty());
    let db = h.cloud.get(&made["Db"]).unwrap();
    assert!(!db.tags.contains_key(TAG_LOGICAL_ID));

    h.cloud.clear_failures();
    let report = import(&h, &[], true).await.unwrap();
    assert!(
        report.adopted.iter().any(|a| a.logical_id == "Db"),
        "{report:#?}"
    );
    let state = h.session(&stack()).state().clone();
    for (id, pid) in &made {
        assert_eq!(&state.resources[*id].physical_id, pid);
    }
}

/// An imported data store whose create-only property differs from the
/// stack's is planned as a replacement, which apply refuses unless named:
/// the import itself never replaces it.
#[tokio::test]
async fn an_imported_database_that_differs_is_not_replaced_unasked() {
    let h = Harness::with_data_stores();
    let made = other_tools_stack(&h).await;
    h.cloud.set_property(&made["Db"], "Engine", json!("mysql"));
    import(&h, &[], true).await.unwrap();
    assert_eq!(h.cloud.total_calls(FakeOp::Delete), 0);

    let s = stack();
    let mut session = h.session(&s);
    let ctx = context_of(&h, &session);
    let plan = session.plan(&s, &h.registry, &ctx).await.unwrap();
    let db = plan.step("Db").expect("the database differs");
    assert_eq!(db.action, fastcart_engine::Action::Replace, "{db:#?}");
    let err = session
        .apply(&s, &h.registry, &ctx, &plan, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReplacesData { ids } if ids == &["Db"]),
        "{err}"
    );
    assert_eq!(h.cloud.get(&made["Db"]).unwrap().physical_id, made["Db"]);
}
