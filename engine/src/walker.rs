//! The walker: runs the nodes of a DAG on tokio, each as soon as its own
//! dependencies are done. No levels, no barriers.
//!
//! Design:
//! - A node becomes ready when its last dependency finishes; it is spawned at
//!   once and then waits for a permit of the global cap and of its service's
//!   cap, in that order.
//! - A node that fails marks every node below it skipped, naming the failure;
//!   independent branches go on.
//! - Cancellation stops new starts: a node that gets its permits after the
//!   token fired does not run. Nodes already running are never dropped; the
//!   walker waits for them before it returns.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The graph to walk: node `i` waits for every node in `deps[i]`.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    pub deps: Vec<Vec<usize>>,
    /// The service of each node, for the per-service caps.
    pub services: Vec<String>,
}

/// Concurrency caps. `None` means unbounded.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub global: Option<usize>,
    pub per_service: BTreeMap<String, usize>,
    pub default_per_service: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<E> {
    Done {
        elapsed: Duration,
    },
    Failed {
        error: E,
        elapsed: Duration,
    },
    /// Not run because node `because` failed upstream.
    Skipped {
        because: usize,
    },
    /// Not run because the walk was cancelled first.
    NotStarted,
}

impl<E> Outcome<E> {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done { .. })
    }
}

enum Ran<E> {
    Ran(Result<(), E>, Duration),
    Cancelled,
}

/// Walks `dag`, calling `run(i)` for each node, and returns every node's outcome.
pub async fn walk<E, F, Fut>(
    dag: &Dag,
    limits: &Limits,
    cancel: &CancellationToken,
    run: F,
) -> Vec<Outcome<E>>
where
    E: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let n = dag.deps.len();
    let mut dependents = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, deps) in dag.deps.iter().enumerate() {
        waiting[i] = deps.len();
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let global = Arc::new(Semaphore::new(
        limits.global.unwrap_or(Semaphore::MAX_PERMITS).max(1),
    ));
    let mut services: BTreeMap<&str, Arc<Semaphore>> = BTreeMap::new();
    let mut outcomes: Vec<Option<Outcome<E>>> = (0..n).map(|_| None).collect();
    let mut set: JoinSet<(usize, Ran<E>)> = JoinSet::new();

    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    loop {
        if !cancel.is_cancelled() {
            for i in ready.drain(..) {
                let service = dag.services.get(i).map_or("", String::as_str);
                let svc = services
                    .entry(service)
                    .or_insert_with(|| {
                        let cap = limits
                            .per_service
                            .get(service)
                            .copied()
                            .or(limits.default_per_service)
                            .unwrap_or(Semaphore::MAX_PERMITS)
                            .max(1);
                        Arc::new(Semaphore::new(cap))
                    })
                    .clone();
                let global = global.clone();
                let cancel = cancel.clone();
                let fut = run(i);
                set.spawn(async move {
                    // The service's permit first: a node queued behind its
                    // own service's cap holds no global slot.
                    let _s = svc.acquire_owned().await.expect("never closed");
                    let _g = global.acquire_owned().await.expect("never closed");
                    if cancel.is_cancelled() {
                        return (i, Ran::Cancelled);
                    }
                    let start = Instant::now();
                    let result = fut.await;
                    (i, Ran::Ran(result, start.elapsed()))
                });
            }
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (i, ran) = match joined {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match ran {
            Ran::Cancelled => outcomes[i] = Some(Outcome::NotStarted),
            Ran::Ran(Ok(()), elapsed) => {
                outcomes[i] = Some(Outcome::Done { elapsed });
                for &d in &dependents[i] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 && outcomes[d].is_none() {
                        ready.push(d);
                    }
                }
            }
            Ran::Ran(Err(error), elapsed) => {
                outcomes[i] = Some(Outcome::Failed { error, elapsed });
                let mut stack = dependents[i].clone();
                while let Some(d) = stack.pop() {
                    if outcomes[d].is_none() {
                        outcomes[d] = Some(Outcome::Skipped { because: i });
                        stack.extend(dependents[d].iter().copied());
                    }
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::NotStarted))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn dag(deps: Vec<Vec<usize>>) -> Dag {
        let services = vec!["S".to_string(); deps.len()];
        Dag { deps, services }
    }

    #[tokio::test(start_paused = true)]
    async fn failure_skips_dependents_and_spares_the_rest() {
        // 0 -> 1 -> 2, 3 independent
        let d = dag(vec![vec![], vec![0], vec![1], vec![]]);
        let out = walk(
            &d,
            &Limits::default(),
            &CancellationToken::new(),
            |i| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if i == 1 {
                    Err("boom")
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert!(out[0].is_done());
        assert!(matches!(out[1], Outcome::Failed { error: "boom", .. }));
        assert_eq!(out[2], Outcome::Skipped { because: 1 });
        assert!(out[3].is_done());
    }

    #[tokio::test(start_paused = true)]
    async fn caps_bound_concurrency() {
        let d = dag(vec![vec![]; 20]);
        let live = Arc::new(Mutex::new((0usize, 0usize)));
        let limits = Limits {
            global: Some(3),
            ..Limits::default()
        };
        let start = tokio::time::Instant::now();
        let l = live.clone();
        walk(&d, &limits, &CancellationToken::new(), move |_| {
            let l = l.clone();
            async move {
                {
                    let mut g = l.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.lock().unwrap().0 -= 1;
                Ok::<_, ()>(())
            }
        })
        .await;
        assert_eq!(live.lock().unwrap().1, 3);
        assert_eq!(start.elapsed().as_secs(), 7); // ceil(20 / 3)
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_new_starts_and_waits_for_running_ones() {
        let d = dag(vec![vec![], vec![0], vec![]]);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let out = walk(&d, &Limits::default(), &cancel, move |i| {
            let c = c.clone();
            async move {
                if i == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    c.cancel();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
        assert!(out[0].is_done(), "in flight when cancelled: finished");
        assert!(out[2].is_done(), "in flight when cancelled: finished");
        assert_eq!(out[1], Outcome::NotStarted);
    }
}
