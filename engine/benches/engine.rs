//! Engine benchmarks against the fake cloud. Results and the commands that
//! produced them are in BENCHMARKS.md.
//!
//! - `plan/10000`: a full plan (refresh through the fake drivers, validate,
//!   graph, diff) of a 10,000-resource stack the cloud already holds.
//! - `plan_offline/10000`: validate + graph + diff alone, observations given.
//! - `apply_makespan/*`: applying a 1,000-resource random DAG whose steps
//!   take 20-110 ms each, with no global cap and with a cap of 10. Each run
//!   prints its makespan beside the critical path.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use fastcart_engine::fake::{generic_schemas, random_stack, FakeCloud};
use fastcart_engine::plan::diff;
use fastcart_engine::refresh::read_all;
use fastcart_engine::{ApplyOptions, CloudContext, Limits, Registry, Session, StackSpec};

const SERVICES: usize = 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn ctx() -> CloudContext {
    CloudContext::new("eu-central-1", "123456789012")
}

fn apply_all(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    stack: &StackSpec,
    registry: &Registry,
    opts: ApplyOptions,
) -> Duration {
    rt.block_on(async {
        let mut s = Session::open(dir, &stack.name, &stack.env, "bench").unwrap();
        let plan = s.plan(stack, registry, &ctx()).await.unwrap();
        let start = Instant::now();
        let report = s.apply(stack, registry, &ctx(), &plan, opts).await.unwrap();
        let took = start.elapsed();
        assert!(report.succeeded());
        took
    })
}

fn plan_10k(c: &mut Criterion) {
    let rt = runtime();
    let stack = random_stack(10_000, 3, SERVICES, 7);
    let cloud = FakeCloud::new();
    let registry = cloud.registry(generic_schemas(SERVICES));
    let dir = tempfile::tempdir().unwrap();
    apply_all(&rt, dir.path(), &stack, &registry, ApplyOptions::default());
    assert_eq!(cloud.len(), 10_000);

    let mut session = Session::open(dir.path(), &stack.name, &stack.env, "bench").unwrap();
    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    group.bench_function("10000", |b| {
        b.iter(|| {
            let plan = rt
                .block_on(session.plan(&stack, &registry, &ctx()))
                .unwrap();
            assert!(!plan.has_changes());
            black_box(plan)
        })
    });
    group.finish();

    let mut state = session.state().clone();
    let observed = rt.block_on(read_all(&registry, &mut state)).unwrap();
    let mut group = c.benchmark_group("plan_offline");
    group.sample_size(20);
    group.bench_function("10000", |b| {
        b.iter(|| {
            let graph = fastcart_engine::validate(&stack, &registry).unwrap();
            let steps = diff(&stack, &graph, &registry, &ctx(), &state, &observed).unwrap();
            assert!(steps.is_empty());
            black_box(steps)
        })
    });
    group.finish();
}

fn makespan(c: &mut Criterion) {
    let rt = runtime();
    let stack = random_stack(1_000, 3, SERVICES, 11);
    let latency = |i: usize| Duration::from_millis(20 + 10 * i as u64);
    let schemas = generic_schemas(SERVICES);
    let registry = FakeCloud::new().registry(schemas.clone());
    let graph = fastcart_engine::validate(&stack, &registry).unwrap();
    let specs = stack.by_id();
    let (critical, path) = graph.critical_path(|id| {
        let t = &specs[id].type_name;
        let svc: usize = t["Fake::Svc".len()..t.len() - "::Thing".len()]
            .parse()
            .unwrap();
        latency(svc)
    });
    println!(
        "apply_makespan: 1000 resources, critical path {} resources, {:?}",
        path.len(),
        critical
    );

    let mut group = c.benchmark_group("apply_makespan");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    for (name, cap) in [("uncapped", None), ("global_cap_10", Some(10))] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cloud: Arc<FakeCloud> = FakeCloud::new();
                    for i in 0..SERVICES {
                        cloud.set_latency(&format!("Fake::Svc{i}::Thing"), latency(i));
                    }
                    let registry = cloud.registry(schemas.clone());
                    let dir = tempfile::tempdir().unwrap();
                    let opts = ApplyOptions {
                        limits: Limits {
                            global: cap,
                            ..Limits::default()
                        },
                        ..ApplyOptions::default()
                    };
                    let took = apply_all(&rt, dir.path(), &stack, &registry, opts);
                    println!(
                        "  {name}: makespan {took:?} = {:.3} x critical path",
                        took.as_secs_f64() / critical.as_secs_f64()
                    );
                    total += took;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, plan_10k, makespan);
criterion_main!(benches);
