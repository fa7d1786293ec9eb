//! The engine's promises, over random DAGs and random desired and observed
//! states (proptest), against the fake cloud on tokio's paused clock.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{fast_retries, Harness};
use fastcart_engine::fake::{FakeOp, Phase};
use fastcart_engine::{
    get_att, sub, ApplyOptions, ResourceSpec, Session, StackSpec, Status, TypeSchema,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// Three services with the same shape and different speeds.
const TYPES: [(&str, u64); 3] = [
    ("Fake::Fast::Thing", 5),
    ("Fake::Mid::Thing", 40),
    ("Fake::Slow::Thing", 150),
];

fn schemas() -> Vec<TypeSchema> {
    TYPES
        .iter()
        .map(|(t, _)| {
            TypeSchema::new(*t)
                .prop("Name")
                .create_only("Name")
                .prop("Size")
                .prop("Inputs")
                .prop("Secret")
                .write_only("Secret")
                .attribute("Arn")
        })
        .collect()
}

fn harness() -> Harness {
    let h = Harness::with_schemas(schemas());
    for (t, ms) in TYPES {
        h.cloud.set_latency(t, Duration::from_millis(ms));
    }
    h
}

#[derive(Debug, Clone)]
struct Node {
    ty: usize,
    deps: Vec<usize>,
    /// A dependency whose physical id is part of the create-only Name.
    keyed: Option<usize>,
    generation: u8,
    size: u8,
    secret: u8,
}

/// A random DAG: node `i` depends only on nodes before it.
fn arb_nodes(max: usize) -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        (
            0..TYPES.len(),
            prop::collection::vec(any::<Index>(), 0..4),
            prop::option::weighted(0.3, any::<Index>()),
            0u8..2,
            0u8..3,
            0u8..2,
        ),
        1..max,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (ty, deps, keyed, generation, size, secret))| {
                let mut deps: Vec<usize> = if i == 0 {
                    Vec::new()
                } else {
                    deps.iter().map(|d| d.index(i)).collect()
                };
                deps.sort_unstable();
                deps.dedup();
                Node {
                    ty,
                    deps,
                    keyed: keyed.filter(|_| i > 0).map(|k| k.index(i)),
                    generation,
                    size,
                    secret,
                }
            })
            .collect()
    })
}

/// An edit of a node: new values, or gone from the stack.
#[derive(Debug, Clone)]
struct Edit {
    present: bool,
    generation: u8,
    size: u8,
    secret: u8,
}

fn arb_edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        (prop::bool::weighted(0.85), 0u8..2, 0u8..3, 0u8..2).prop_map(
            |(present, generation, size, secret)| Edit {
                present,
                generation,
                size,
                secret,
            },
        ),
        40,
    )
}

/// Drift made behind the engine's back.
#[derive(Debug, Clone, Copy)]
enum Drift {
    None,
    ChangeSize,
    Delete,
}

fn arb_drift() -> impl Strategy<Value = Vec<Drift>> {
    prop::collection::vec(
        prop_oneof![
            6 => Just(Drift::None),
            1 => Just(Drift::ChangeSize),
            1 => Just(Drift::Delete),
        ],
        40,
    )
}

fn id(i: usize) -> String {
    format!("R{i}")
}

fn build(nodes: &[Node], present: &[bool]) -> StackSpec {
    let mut s = StackSpec::new("prop", "test");
    for (i, n) in nodes.iter().enumerate() {
        if !present[i] {
            continue;
        }
        let inputs: Vec<Value> = n
            .deps
            .iter()
            .filter(|&&d| present[d])
            .map(|&d| get_att(&id(d), "Arn"))
            .collect();
        let name = match n.keyed.filter(|&k| present[k]) {
            Some(k) => sub(&format!("n{i}-{}-${{R{k}}}", n.generation)),
            None => json!(format!("n{i}-{}", n.generation)),
        };
        s.add(
            ResourceSpec::new(id(i), TYPES[n.ty].0)
                .prop("Name", name)
                .prop("Size", n.size)
                .prop("Inputs", inputs)
                .prop("Secret", format!("secret-{}", n.secret)),
        );
    }
    s
}

fn edited(nodes: &[Node], edits: &[Edit]) -> (Vec<Node>, Vec<bool>) {
    let nodes = nodes
        .iter()
        .zip(edits)
        .map(|(n, e)| Node {
            generation: e.generation,
            size: e.size,
            secret: e.secret,
            ..n.clone()
        })
        .collect();
    (nodes, edits.iter().map(|e| e.present).collect())
}

/// Every node's dependencies (in `stack`) finished their mutations before the
/// node's own first mutation started, by the fake cloud's event log.
fn assert_dependency_order(h: &Harness, stack: &StackSpec) {
    let events = h.cloud.events();
    let forward =
        |e: &&fastcart_engine::fake::Event| matches!(e.op, FakeOp::Create | FakeOp::Update);
    let mut last_end: BTreeMap<&str, usize> = BTreeMap::new();
    let mut first_start: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in events.iter().enumerate().filter(|(_, e)| forward(e)) {
        match e.phase {
            Phase::Start => {
                first_start.entry(&e.logical_id).or_insert(i);
            }
            Phase::End => {
                last_end.insert(&e.logical_id, i);
            }
        }
    }
    let graph = fastcart_engine::validate(stack, &h.registry).expect("valid");
    for r in &stack.resources {
        let Some(&start) = first_start.get(r.logical_id.as_str()) else {
            continue;
        };
        for dep in graph.dependencies(&r.logical_id) {
            if let Some(&end) = last_end.get(dep) {
                assert!(
                    end < start,
                    "{} started (event {start}) before its dependency {dep} finished (event {end})",
                    r.logical_id
                );
            }
            let unfinished = events
                .iter()
                .enumerate()
                .filter(|(_, e)| forward(e) && e.logical_id == dep && e.phase == Phase::Start)
                .any(|(i, _)| i > start);
            assert!(
                !unfinished,
                "{dep} started after its dependent {}",
                r.logical_id
            );
        }
    }
}

fn assert_one_object_per_resource(h: &Harness, stack: &StackSpec) {
    let per_id = h.objects_per_logical_id();
    let expected: BTreeSet<String> = stack
        .resources
        .iter()
        .map(|r| r.logical_id.clone())
        .collect();
    assert_eq!(
        per_id.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "cloud holds exactly the stack's resources"
    );
    assert!(per_id.values().all(|&n| n == 1), "duplicates: {per_id:?}");
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(48),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Apply, edit, drift, apply again: the next plan has no changes, every
    /// step waited for its dependencies, and the cloud holds exactly one
    /// object per resource.
    #[test]
    fn applying_a_plan_then_planning_again_gives_no_changes(
        nodes in arb_nodes(25),
        edits in arb_edits(),
        drift in arb_drift(),
    ) {
        run(async {
            let h = harness();
            let all = vec![true; nodes.len()];
            let first = build(&nodes, &all);
            h.apply(&first).await;
            assert_dependency_order(&h, &first);
            let again = h.plan(&first).await;
            assert!(!again.has_changes(), "{}", fastcart_engine::render_plan(&again));

            let state = h.session(&first).state().clone();
            for (i, d) in drift.iter().take(nodes.len()).enumerate() {
                let pid = &state.resources[&id(i)].physical_id;
                match d {
                    Drift::None => {}
                    Drift::ChangeSize => h.cloud.set_property(pid, "Size", json!(99)),
                    Drift::Delete => h.cloud.remove(pid),
                }
            }

            let (nodes2, present) = edited(&nodes, &edits);
            let second = build(&nodes2, &present);
            h.cloud.clear_events();
            h.apply(&second).await;
            assert_dependency_order(&h, &second);
            let last = h.plan(&second).await;
            assert!(!last.has_changes(), "{}", fastcart_engine::render_plan(&last));
            assert_one_object_per_resource(&h, &second);
        });
    }

    /// A failure at one resource skips exactly its dependents; everything
    /// else is applied.
    #[test]
    fn a_failure_only_touches_its_dependents(
        nodes in arb_nodes(25),
        pick in any::<Index>(),
    ) {
        run(async {
            let h = harness();
            let stack = build(&nodes, &vec![true; nodes.len()]);
            let failing = id(pick.index(nodes.len()));
            h.cloud.fail(&failing, FakeOp::Create, "injected");
            let (_, report) = h.apply_with(&stack, fast_retries()).await;

            let graph = fastcart_engine::validate(&stack, &h.registry).unwrap();
            let mut below = BTreeSet::new();
            let mut todo = vec![failing.clone()];
            while let Some(n) = todo.pop() {
                for d in graph.dependents(&n) {
                    if below.insert(d.to_string()) {
                        todo.push(d.to_string());
                    }
                }
            }
            let created: BTreeSet<String> = h.objects_per_logical_id().into_keys().collect();
            for r in &report.results {
                let id = &r.logical_id;
                if *id == failing {
                    assert!(matches!(r.status, Status::Failed { .. }), "{r:?}");
                    assert!(!created.contains(id));
                } else if below.contains(id) {
                    assert!(matches!(r.status, Status::Skipped { .. }), "{r:?}");
                    assert!(!created.contains(id), "{id} is below the failure but exists");
                } else {
                    assert!(matches!(r.status, Status::Done { .. }), "{r:?}");
                    assert!(created.contains(id), "{id} is independent but missing");
                }
            }
            assert_eq!(report.results.len(), nodes.len());
        });
    }

    /// An apply stopped at a random moment, by Ctrl-C or by the process
    /// dying, then planned and applied again, converges with no twins.
    #[test]
    fn an_interrupted_apply_converges_without_duplicates(
        nodes in arb_nodes(25),
        edits in arb_edits(),
        stop_after_ms in 0u64..600,
        hard_kill in any::<bool>(),
        start_from_first in any::<bool>(),
    ) {
        run(async {
            let h = harness();
            let all = vec![true; nodes.len()];
            let first = build(&nodes, &all);
            if start_from_first {
                h.apply(&first).await;
            }
            let (nodes2, present) = edited(&nodes, &edits);
            let target = build(&nodes2, &present);

            let opts = ApplyOptions { retry_base: Duration::from_millis(1), ..ApplyOptions::default() };
            let cancel = opts.cancel.clone();
            let (registry, ctx, dir, t) = (h.registry.clone(), h.ctx.clone(), h.dir.path().to_path_buf(), target.clone());
            let task = tokio::spawn(async move {
                let mut s = Session::open(&dir, "prop", "test", "apply").unwrap();
                let plan = s.plan(&t, &registry, &ctx).await.unwrap();
                s.apply(&t, &registry, &ctx, &plan, opts).await.unwrap()
            });
            tokio::time::sleep(Duration::from_millis(stop_after_ms)).await;
            if hard_kill {
                task.abort();
                let _ = task.await;
                // A killed process leaves its lock behind.
                h.session(&target).backend().force_unlock().unwrap();
            } else {
                cancel.cancel();
                let report = task.await.unwrap();
                assert!(report.results.iter().all(|r| !matches!(r.status, Status::Failed { .. })));
            }

            h.apply(&target).await;
            let last = h.plan(&target).await;
            assert!(!last.has_changes(), "{}", fastcart_engine::render_plan(&last));
            assert_one_object_per_resource(&h, &target);
        });
    }
}
