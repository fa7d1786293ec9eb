//! Carrying out a plan: turns its steps into a DAG of cloud calls
//! (`tasks.rs`), walks it, runs each step with one retry loop and journals
//! every mutation (`steps.rs`), sends creates exactly once (`exactly_once.rs`)
//! and saves the state from a background thread (`persist.rs`). This file
//! holds the public types and `run_plan`, which puts them together.
//!
//! **Invariant:** a mutation's `intent` is in the journal before its request
//! is sent, and its `done` or `failed` right after the answer. The state is
//! the fold of the journal, saved (atomically, coalesced) by a background
//! thread after every finished step and once more at the end.
//!
//! Guarantees: an apply cut off at any `.await` (Ctrl-C, kill -9) leaves a
//! journal from which the next run knows every request that might have
//! created something; it then finds those resources by ownership tags (see
//! `refresh::recover`). Caveat: a journal line is written but not fsynced, so
//! it survives the process dying, not the machine losing power.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::backend::{Fence, JournalSink, StateBackend};
use crate::cancel;
use crate::driver::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, KeyQuery, Observed,
    Ownership, Registry, ResourceHandle, UpdateRequest,
};
use crate::error::Result;
use crate::graph::StackGraph;
use crate::journal::{Entry, Op, Phase};
use crate::lookup::look_up;
use crate::model::{hex, service_of, CloudContext, StackSpec};
use crate::plan::{Action, Plan, ReplaceOrder, Step};
use crate::resolve::{resolve, resolve_map, Lookup, Unresolved};
use crate::state::{protect_secrets, State};
use crate::store::now_ms;
use crate::walker::{walk, Dag, Limits, Outcome};

mod exactly_once;
mod persist;
mod steps;
mod tasks;

use tasks::build_tasks;

impl Lookup for State {
    fn physical_id(&self, id: &str) -> Option<&str> {
        self.resources.get(id).map(|r| r.physical_id.as_str())
    }
    fn attributes(&self, id: &str) -> Option<&Map<String, Value>> {
        self.resources.get(id).map(|r| &r.attributes)
    }
}

/// One cloud operation of the apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    /// The new half of a replacement.
    CreateReplacement,
    /// The old half of a replacement.
    DeleteReplaced,
    Delete,
}

impl Operation {
    /// "creating", "updating", ... for progress lines.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Create | Operation::CreateReplacement => "creating",
            Operation::Update => "updating",
            Operation::DeleteReplaced | Operation::Delete => "deleting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Done { elapsed_ms: u64 },
    Failed { error: String },
    Skipped { because: String },
    NotStarted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(flatten)]
    pub status: Status,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub results: Vec<TaskResult>,
    pub cancelled: bool,
    /// Outputs that could not be resolved from what exists after the apply,
    /// each with why (nothing is left out of the outputs without a word).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unresolved_outputs: BTreeMap<String, String>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        !self.cancelled
            && self
                .results
                .iter()
                .all(|r| matches!(r.status, Status::Done { .. }))
    }

    pub fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.status)).count()
    }
}

/// Progress of an apply, for people watching it.
#[derive(Debug, Clone)]
pub enum ApplyEvent {
    Started {
        logical_id: String,
        type_name: String,
        operation: Operation,
    },
    Finished {
        logical_id: String,
        type_name: String,
        operation: Operation,
        physical_id: Option<String>,
        result: std::result::Result<(), String>,
        elapsed: Duration,
    },
}

pub type EventSink = Arc<dyn Fn(&ApplyEvent) + Send + Sync>;

#[derive(Clone)]
pub struct ApplyOptions {
    pub limits: Limits,
    pub cancel: CancellationToken,
    pub on_event: Option<EventSink>,
    /// Attempts per call for throttling and dependency violations.
    pub max_attempts: u32,
    /// First pause between attempts; doubles up to ten seconds.
    pub retry_base: Duration,
    /// Logical ids of resources holding data that the operator allows to be
    /// replaced (`--allow-replace`); any other such replacement is refused
    /// before anything is sent.
    pub allow_replace: Vec<String>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            limits: Limits::default(),
            cancel: CancellationToken::new(),
            on_event: None,
            max_attempts: 6,
            retry_base: Duration::from_millis(200),
            allow_replace: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Task {
    step: usize,
    op: Operation,
}

/// Pauses between attempts of one step: doubling from `retry_base` up to
/// ten seconds, for at most `max_attempts` attempts, cut short by Ctrl-C.
struct Backoff {
    delay: Duration,
    attempt: u32,
    max_attempts: u32,
    cancel: CancellationToken,
}

impl Backoff {
    /// Waits before the next attempt; `false` when there is none (the
    /// attempts ran out or the user cancelled).
    async fn pause(&mut self) -> bool {
        if self.attempt >= self.max_attempts || self.cancel.is_cancelled() {
            return false;
        }
        if !cancel::sleep_unless(&self.cancel, self.delay).await {
            return false;
        }
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        self.attempt += 1;
        true
    }
}

struct Book {
    state: State,
    journal: Box<dyn JournalSink>,
}

/// Saves the state on a background thread, coalescing bursts of changes.
///
/// The thread keeps its own copy of the state and folds the same journal
/// entries into it, in the same order, so saving never holds up the steps.
/// Dropped without [`Persister::finish`] (the apply's future was dropped, as
/// when the process dies), it stops without writing again, like a killed
/// process would: the journal already holds everything since the last save.
struct Persister {
    tx: Option<mpsc::Sender<Persist>>,
    thread: Option<std::thread::JoinHandle<Result<State>>>,
}

enum Persist {
    Entry(Box<Entry>),
    Outputs(Map<String, Value>),
    /// Save what is pending and stop.
    Finish,
}

struct Shared {
    plan: Plan,
    tasks: Vec<Task>,
    stack: StackSpec,
    /// Logical id to index in `stack.resources`.
    specs: HashMap<String, usize>,
    deps_of: BTreeMap<String, Vec<String>>,
    registry: Registry,
    ctx: CloudContext,
    owner: Ownership,
    book: Arc<Mutex<Book>>,
    persister: Persister,
    opts: ApplyOptions,
    journal_failed: AtomicBool,
}

/// Runs the plan. The caller holds the lock and has checked the plan is
/// current; `state` is the state the plan was made against.
#[expect(clippy::too_many_arguments)]
pub(crate) async fn run_plan(
    store: &Arc<dyn StateBackend>,
    fence: Fence,
    journal: Box<dyn JournalSink>,
    state: State,
    stack: &StackSpec,
    graph: &StackGraph,
    registry: &Registry,
    ctx: &CloudContext,
    plan: &Plan,
    opts: ApplyOptions,
) -> Result<(State, ApplyReport)> {
    let (tasks, dag) = build_tasks(plan, graph, &state)?;
    let deps_of = graph
        .topological()
        .map(|id| {
            (
                id.to_string(),
                graph
                    .dependencies(id)
                    .into_iter()
                    .map(String::from)
                    .collect(),
            )
        })
        .collect();
    let persister = Persister::start(store.clone(), fence, state.clone());
    let book = Arc::new(Mutex::new(Book { state, journal }));
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        tasks: tasks.clone(),
        stack: stack.clone(),
        specs: stack
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.logical_id.clone(), i))
            .collect(),
        deps_of,
        registry: registry.clone(),
        ctx: ctx.clone(),
        owner: Ownership::of(stack),
        book: book.clone(),
        persister,
        opts: opts.clone(),
        journal_failed: AtomicBool::new(false),
    });
    let s = shared.clone();
    let outcomes = walk(&dag, &opts.limits, &opts.cancel, move |t| s.clone().run(t)).await;

    // Outputs, from whatever now exists; those that cannot be resolved are
    // reported.
    let mut outputs = Map::new();
    let mut unresolved_outputs = BTreeMap::new();
    {
        let now = book.lock().expect("book lock").state.clone();
        for (name, value) in &stack.outputs {
            let value = look_up(value, ctx, &now, registry).await;
            match value.and_then(|v| resolve(&v, ctx, &now)) {
                Ok(v) => {
                    outputs.insert(name.clone(), v);
                }
                Err(Unresolved::KnownAfterApply(missing)) => {
                    let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
                    let why = format!("it needs {}, which do not exist", missing.join(", "));
                    unresolved_outputs.insert(name.clone(), why);
                }
                Err(Unresolved::Invalid(why)) => {
                    unresolved_outputs.insert(name.clone(), why);
                }
            }
        }
    }
    shared.persister.send(Persist::Outputs(outputs));
    let Shared { persister, .. } = Arc::into_inner(shared).expect("all tasks finished");
    let state = persister.finish()?;

    let results = tasks
        .iter()
        .zip(outcomes)
        .map(|(t, o)| {
            let step = &plan.steps[t.step];
            let status = match o {
                Outcome::Done { elapsed } => Status::Done {
                    elapsed_ms: elapsed.as_millis() as u64,
                },
                Outcome::Failed { error, .. } => Status::Failed { error },
                Outcome::Skipped { because } => {
                    let cause = &plan.steps[tasks[because].step];
                    Status::Skipped {
                        because: format!("{} failed", cause.logical_id),
                    }
                }
                Outcome::NotStarted => Status::NotStarted,
            };
            let physical_id = match t.op {
                Operation::Create | Operation::CreateReplacement => state
                    .resources
                    .get(&step.logical_id)
                    .filter(|_| matches!(status, Status::Done { .. }))
                    .map(|r| r.physical_id.clone()),
                _ => step.physical_id.clone(),
            };
            TaskResult {
                logical_id: step.logical_id.clone(),
                type_name: step.type_name.clone(),
                operation: t.op,
                physical_id,
                status,
            }
        })
        .collect();
    Ok((
        state,
        ApplyReport {
            results,
            cancelled: opts.cancel.is_cancelled(),
            unresolved_outputs,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_verbs() {
        assert_eq!(Operation::CreateReplacement.verb(), "creating");
        assert_eq!(Operation::DeleteReplaced.verb(), "deleting");
    }

    #[test]
    fn error_type_is_sendable() {
        fn assert_send<T: Send + Sync>() {}
        assert_send::<crate::Error>();
    }
}
