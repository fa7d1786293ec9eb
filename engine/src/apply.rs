//! Carrying out a plan: turns its steps into a DAG of cloud calls, walks it,
//! and journals every mutation.
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

use crate::cancel;
use crate::driver::{
    CreateRequest, Created, Driver, DriverError, ErrorKind, Observed, Ownership, Registry,
    ResourceHandle, UpdateRequest,
};
use crate::error::Result;
use crate::graph::StackGraph;
use crate::journal::{Entry, Op, Phase};
use crate::model::{hex, service_of, CloudContext, StackSpec};
use crate::plan::{Action, Plan, ReplaceOrder, Step};
use crate::resolve::{resolve, resolve_map, Lookup, Unresolved};
use crate::state::{protect_secrets, State};
use crate::store::{now_ms, JournalWriter, StateStore};
use crate::walker::{walk, Dag, Limits, Outcome};

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            limits: Limits::default(),
            cancel: CancellationToken::new(),
            on_event: None,
            max_attempts: 6,
            retry_base: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Task {
    step: usize,
    op: Operation,
}

/// The DAG of cloud operations for a plan.
///
/// Hard edges: forward operations (create, update, create-replacement)
/// follow the stack's dependencies; deletes of old objects follow the *old*
/// dependencies (from state) in reverse; a delete-before-create replacement's
/// create waits for its delete; a create-before-destroy replacement's delete
/// waits for its create. Soft edges: the delete of an old object also waits
/// for the resources that used it to move off it (their forward operations).
/// Soft edges avoid dependency violations; where they close a cycle (a
/// delete-before-create upstream of a resource that moves), they are dropped.
fn build_tasks(plan: &Plan, graph: &StackGraph, state: &State) -> Result<(Vec<Task>, Dag)> {
    let mut tasks = Vec::new();
    let mut forward: BTreeMap<&str, usize> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut delete_first: BTreeMap<usize, bool> = BTreeMap::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let id = s.logical_id.as_str();
        let mut push = |op: Operation| {
            tasks.push(Task { step: i, op });
            tasks.len() - 1
        };
        match s.action {
            Action::Create => {
                forward.insert(id, push(Operation::Create));
            }
            Action::Update => {
                forward.insert(id, push(Operation::Update));
            }
            Action::Replace => {
                forward.insert(id, push(Operation::CreateReplacement));
                let d = push(Operation::DeleteReplaced);
                deletes.entry(id).or_default().push(d);
                delete_first.insert(d, s.replace_order == Some(ReplaceOrder::DeleteBeforeCreate));
            }
            Action::Delete => {
                let d = push(Operation::Delete);
                deletes.entry(id).or_default().push(d);
            }
        }
    }
    let n = tasks.len();
    let mut hard: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut soft: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (&id, &t) in &forward {
        for dep in graph.dependencies(id) {
            if let Some(&f) = forward.get(dep) {
                hard[t].push(f);
            }
        }
    }
    // Who used each old object: the dependencies recorded in state.
    let mut old_dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, r) in &state.resources {
        for d in &r.dependencies {
            old_dependents
                .entry(d.as_str())
                .or_default()
                .push(id.as_str());
        }
    }
    for (&id, dels) in &deletes {
        for &del in dels {
            let first = delete_first.get(&del).copied().unwrap_or(false);
            let deposed = plan.steps[tasks[del].step].deposed;
            match forward.get(id) {
                Some(&f) if first => hard[f].push(del),
                Some(&f) if deposed => soft[del].push(f),
                Some(&f) => hard[del].push(f),
                None => {}
            }
            for y in old_dependents.get(id).into_iter().flatten() {
                if *y == id {
                    continue;
                }
                for &yd in deletes.get(y).into_iter().flatten() {
                    hard[del].push(yd);
                }
                if let Some(&yf) = forward.get(y) {
                    soft[del].push(yf);
                }
            }
        }
    }
    let deps = break_soft_cycles(&tasks, plan, hard, soft)?;
    let services = tasks
        .iter()
        .map(|t| service_of(&plan.steps[t.step].type_name).to_string())
        .collect();
    Ok((tasks, Dag { deps, services }))
}

/// Joins hard and soft edges, dropping the soft edges that lie on a cycle.
/// A cycle of hard edges alone is a bug, reported without running anything.
fn break_soft_cycles(
    tasks: &[Task],
    plan: &Plan,
    hard: Vec<Vec<usize>>,
    soft: Vec<Vec<usize>>,
) -> Result<Vec<Vec<usize>>> {
    use petgraph::graph::{DiGraph, NodeIndex};
    let sccs = |edges: &[Vec<usize>]| {
        let mut g = DiGraph::<(), ()>::with_capacity(edges.len(), 0);
        let nodes: Vec<NodeIndex> = (0..edges.len()).map(|_| g.add_node(())).collect();
        for (t, ds) in edges.iter().enumerate() {
            for &d in ds {
                g.add_edge(nodes[d], nodes[t], ());
            }
        }
        let mut component = vec![usize::MAX; edges.len()];
        for (c, scc) in petgraph::algo::tarjan_scc(&g).into_iter().enumerate() {
            if scc.len() > 1 {
                for node in scc {
                    component[node.index()] = c;
                }
            }
        }
        component
    };
    let mut all: Vec<Vec<usize>> = hard
        .iter()
        .zip(&soft)
        .map(|(h, s)| h.iter().chain(s).copied().collect())
        .collect();
    let component = sccs(&all);
    if component.iter().any(|&c| c != usize::MAX) {
        all = hard
            .iter()
            .zip(&soft)
            .enumerate()
            .map(|(t, (h, s))| {
                let kept = s
                    .iter()
                    .filter(|&&d| component[d] == usize::MAX || component[d] != component[t]);
                h.iter().chain(kept).copied().collect()
            })
            .collect();
        let left = sccs(&all);
        if let Some(t) = left.iter().position(|&c| c != usize::MAX) {
            let members: Vec<String> = (0..tasks.len())
                .filter(|&u| left[u] == left[t])
                .map(|u| {
                    let step = &plan.steps[tasks[u].step];
                    format!("{} {:?}", step.logical_id, tasks[u].op)
                })
                .collect();
            return Err(crate::Error::Internal {
                message: format!(
                    "the plan's operations wait on each other in a cycle: {}",
                    members.join(", ")
                ),
            });
        }
    }
    for d in &mut all {
        d.sort_unstable();
        d.dedup();
    }
    Ok(all)
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
    journal: JournalWriter,
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

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the channel without `Finish` abandons unsaved changes.
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Persister {
    fn start(store: StateStore, mut state: State) -> Self {
        let (tx, rx) = mpsc::channel::<Persist>();
        let thread = std::thread::spawn(move || -> Result<State> {
            let mut dirty = false;
            loop {
                // Wait for one message, then take all that are queued.
                let Ok(first) = rx.recv() else {
                    return Ok(state);
                };
                let mut finish = false;
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    match msg {
                        Persist::Entry(e) => state.record(&e),
                        Persist::Outputs(o) => state.outputs = o,
                        Persist::Finish => finish = true,
                    }
                    dirty = true;
                }
                if dirty {
                    state.serial += 1;
                    store.save_unchecked(&state)?;
                    dirty = false;
                }
                if finish {
                    return Ok(state);
                }
            }
        });
        Persister {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, msg: Persist) {
        if let Some(tx) = &self.tx {
            // A closed channel means the thread stopped on an error, which
            // `finish` reports.
            let _ = tx.send(msg);
        }
    }

    /// Saves what is pending and returns the state as saved.
    fn finish(mut self) -> Result<State> {
        self.send(Persist::Finish);
        self.tx.take();
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("persister does not panic")
    }
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

impl Shared {
    fn journal(&self, mut e: Entry) -> std::result::Result<(), String> {
        {
            let mut b = self.book.lock().expect("book lock");
            if self.journal_failed.load(Ordering::SeqCst) {
                return Err(
                    "the journal could not be written, so the request was not sent: \
                            free disk space or fix permissions in the state directory, then run \
                            `fastcart apply` again"
                        .into(),
                );
            }
            e.seq = b.state.journal_seq + 1;
            e.at_ms = now_ms();
            e.lineage = b.state.lineage.clone();
            if let Err(err) = b.journal.append(&e) {
                self.journal_failed.store(true, Ordering::SeqCst);
                return Err(format!("{err}; the request was not sent"));
            }
            b.state.record(&e);
            // Under the same lock, so the persister sees the journal's order.
            self.persister.send(Persist::Entry(Box::new(e)));
        }
        Ok(())
    }

    fn emit(&self, e: ApplyEvent) {
        if let Some(f) = &self.opts.on_event {
            f(&e);
        }
    }

    /// The engine's one retry loop for a step's call. It retries what
    /// [`DriverError::is_retryable`] allows (calls the SDK did not already
    /// retry), with backoff, until the attempts run out or the user cancels;
    /// every call runs in the apply's cancellation scope, so a driver's waits
    /// stop at Ctrl-C too.
    async fn retrying<T, F, Fut>(&self, call: F) -> std::result::Result<T, DriverError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, DriverError>>,
    {
        let mut backoff = self.backoff();
        loop {
            match cancel::scope(self.opts.cancel.clone(), call()).await {
                Err(e) if e.is_retryable() && backoff.pause().await => {}
                other => return other,
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            delay: self.opts.retry_base,
            attempt: 1,
            max_attempts: self.opts.max_attempts,
            cancel: self.opts.cancel.clone(),
        }
    }

    async fn run(self: Arc<Self>, t: usize) -> std::result::Result<(), String> {
        let task = self.tasks[t];
        let step = &self.plan.steps[task.step];
        if self.journal_failed.load(Ordering::SeqCst) {
            // Nothing may be sent that the journal cannot record.
            return Err("not started: the journal could not be written".into());
        }
        self.emit(ApplyEvent::Started {
            logical_id: step.logical_id.clone(),
            type_name: step.type_name.clone(),
            operation: task.op,
        });
        let start = tokio::time::Instant::now();
        let result = match task.op {
            Operation::Create | Operation::CreateReplacement => self.create(step).await,
            Operation::Update => self.update(step).await,
            Operation::Delete | Operation::DeleteReplaced => self.delete(step).await,
        };
        let physical_id = match (&result, task.op) {
            (Ok(pid), _) => pid.clone(),
            _ => step.physical_id.clone(),
        };
        self.emit(ApplyEvent::Finished {
            logical_id: step.logical_id.clone(),
            type_name: step.type_name.clone(),
            operation: task.op,
            physical_id,
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
            elapsed: start.elapsed(),
        });
        result.map(|_| ())
    }

    fn resolved(
        &self,
        step: &Step,
    ) -> std::result::Result<(Map<String, Value>, Vec<String>), String> {
        let spec = self
            .specs
            .get(&step.logical_id)
            .map(|&i| &self.stack.resources[i])
            .ok_or_else(|| format!("{} is not in the stack", step.logical_id))?;
        let b = self.book.lock().expect("book lock");
        let props = resolve_map(&spec.properties, &self.ctx, &b.state).map_err(|e| match e {
            Unresolved::KnownAfterApply(ids) => format!(
                "needs {} which did not get created",
                ids.into_iter().collect::<Vec<_>>().join(", ")
            ),
            Unresolved::Invalid(m) => m,
        })?;
        let deps = self
            .deps_of
            .get(&step.logical_id)
            .cloned()
            .unwrap_or_default();
        Ok((props, deps))
    }

    async fn create(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let driver = self.registry.get(&step.type_name).expect("validated");
        let schema = driver.schema();
        let (props, deps) = self.resolved(step)?;
        if step.action == Action::Create {
            if let Some(gone) = &step.physical_id {
                // The old object vanished outside fastcart: drop it from state.
                let mut e = Entry::new(Op::Delete, Phase::Done, &step.logical_id, &step.type_name);
                e.physical_id = Some(gone.clone());
                e.error = Some("deleted outside fastcart".into());
                self.journal(e)?;
            }
        }
        let protected = protect_secrets(&props, schema);
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let token = {
            let b = self.book.lock().expect("book lock");
            let mut h = Sha256::new();
            h.update(b.state.lineage.as_bytes());
            h.update(step.logical_id.as_bytes());
            h.update(b.state.journal_seq.to_le_bytes());
            hex(&h.finalize())[..32].to_string()
        };
        let mut intent = Entry::new(Op::Create, Phase::Intent, &step.logical_id, &step.type_name);
        intent.properties = Some(protected.clone());
        intent.dependencies = deps.clone();
        self.journal(intent)?;
        let result = self
            .create_exactly_once(driver.as_ref(), step, &props, &tags, &token)
            .await;
        let (created, adopted) = match result {
            Ok(done) => done,
            // It may have made something that was not found yet (no answer
            // at the end of the attempts, Ctrl-C, a wait that gave up): the
            // intent stays pending, so the next run's `recover` looks for it
            // by its tags and adopts it, in a replacement too.
            Err(e)
                if e.may_have_created()
                    || e.kind == ErrorKind::Cancelled
                    || e.kind == ErrorKind::DeadlineExceeded =>
            {
                return Err(e.to_string())
            }
            Err(e) => return self.failed(Op::Create, step, None, e),
        };
        // An adopted object may lack what the rest of its create would
        // have set: finish it. It is recorded either way, so it is tracked.
        let (created, unfinished) = match &adopted {
            Some((_, seen)) => {
                match self
                    .converge(driver.as_ref(), step, &props, &created, seen)
                    .await
                {
                    Ok(done) => (done, None),
                    Err(e) => (created, Some(e)),
                }
            }
            None => (created, None),
        };
        let mut done = Entry::new(Op::Create, Phase::Done, &step.logical_id, &step.type_name);
        done.physical_id = Some(created.physical_id.clone());
        done.properties = Some(protected);
        done.attributes = Some(created.attributes);
        done.dependencies = deps;
        done.error = adopted.map(|(note, _)| note);
        self.journal(done)?;
        match unfinished {
            None => Ok(Some(created.physical_id)),
            Some(e) => self.failed(Op::Create, step, Some(created.physical_id), e),
        }
    }

    /// Sends a create so that it takes effect at most once. A create that
    /// failed in a way that may have made something (no answer, a 5xx or a
    /// throttle, or a name already taken) is never sent again blindly: first
    /// [`Shared::made_by_us`] looks for what it made, and that is adopted.
    /// Only when nothing was made is the create sent again. Returns the
    /// created object and, when it was adopted, a note and what AWS reports.
    async fn create_exactly_once(
        &self,
        driver: &dyn Driver,
        step: &Step,
        props: &Map<String, Value>,
        tags: &BTreeMap<String, String>,
        token: &str,
    ) -> std::result::Result<(Created, Option<(String, Observed)>), DriverError> {
        let mut backoff = self.backoff();
        loop {
            let request = CreateRequest {
                logical_id: &step.logical_id,
                properties: props,
                tags,
                idempotency_token: token,
                context: &self.ctx,
            };
            let e = match cancel::scope(self.opts.cancel.clone(), driver.create(request)).await {
                Ok(created) => return Ok((created, None)),
                Err(e) => e,
            };
            if e.may_have_created() {
                match self.made_by_us(driver, step).await {
                    Ok(Some((created, seen))) => {
                        let note = format!("adopted what an earlier attempt made ({e})");
                        return Ok((created, Some((note, seen))));
                    }
                    Ok(None) if e.kind == ErrorKind::AlreadyExists => {
                        let why = if driver.schema().taggable {
                            "what holds the name does not carry this resource's fastcart \
                             ownership tags"
                        } else {
                            "what is there is not what this resource asks for"
                        };
                        return Err(DriverError {
                            message: format!(
                                "{}; {why}: delete or rename it, or deploy under another --env",
                                e.message
                            ),
                            kind: ErrorKind::InvalidRequest,
                            ..e
                        });
                    }
                    // Nothing was made: sending it again is safe.
                    Ok(None) => {}
                    Err(check) => {
                        return Err(DriverError {
                            message: format!(
                                "{}; could not check whether it made something ({check}), so it \
                                 was not sent again: run `fastcart apply` again, which finds what \
                                 it made by its ownership tags",
                                e.message
                            ),
                            ..e
                        })
                    }
                }
            }
            if !(e.is_retryable() && backoff.pause().await) {
                return Err(e);
            }
        }
    }

    /// What an earlier attempt of this create made: the object carrying
    /// this resource's ownership tags that the state does not already hold,
    /// read back through the driver. Types without tags answer `None`: their
    /// drivers look for an identical object before they create, so sending
    /// the create again is itself the lookup.
    async fn made_by_us(
        &self,
        driver: &dyn Driver,
        step: &Step,
    ) -> std::result::Result<Option<(Created, Observed)>, DriverError> {
        if !driver.schema().taggable {
            return Ok(None);
        }
        let known: Vec<String> = {
            let b = self.book.lock().expect("book lock");
            b.state
                .resources
                .get(&step.logical_id)
                .map(|r| r.physical_ids().map(String::from).collect())
                .unwrap_or_default()
        };
        let found =
            cancel::scope(self.opts.cancel.clone(), driver.find_by_tags(&self.owner)).await?;
        // Every candidate, read at once: a tag search can still list objects
        // being deleted. The first live one (by id, as `recover` picks) is
        // adopted; any other live one is a twin the next plan deletes.
        let mut handles: Vec<ResourceHandle> = found
            .into_iter()
            .filter(|f| f.logical_id == step.logical_id && !known.contains(&f.physical_id))
            .map(|f| ResourceHandle {
                logical_id: step.logical_id.clone(),
                physical_id: f.physical_id,
                properties: Map::new(),
                attributes: Default::default(),
            })
            .collect();
        if handles.is_empty() {
            return Ok(None);
        }
        handles.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        let seen = driver.read(&handles).await?;
        Ok(handles.into_iter().zip(seen).find_map(|(h, o)| {
            let o = o?;
            Some((
                Created {
                    physical_id: h.physical_id,
                    attributes: o.attributes.clone(),
                },
                o,
            ))
        }))
    }

    /// Brings an adopted object to what the stack asks: a create cut short
    /// after its first call (the object exists, a later call of the same
    /// create got no answer) is finished by an update of the properties
    /// that differ. Create-only properties are what the first call sent, so
    /// they are not compared.
    async fn converge(
        &self,
        driver: &dyn Driver,
        step: &Step,
        props: &Map<String, Value>,
        created: &Created,
        seen: &Observed,
    ) -> std::result::Result<Created, DriverError> {
        let schema = driver.schema();
        let changed: Vec<String> = props
            .iter()
            .filter(|(name, desired)| {
                let p = schema.property(name).cloned().unwrap_or_default();
                !p.write_only
                    && !p.create_only
                    && !crate::compare::satisfies(desired, seen.properties.get(*name), p.kind)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if changed.is_empty() {
            return Ok(created.clone());
        }
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let attributes = self
            .retrying(|| {
                driver.update(UpdateRequest {
                    logical_id: &step.logical_id,
                    physical_id: &created.physical_id,
                    properties: props,
                    previous: &seen.properties,
                    changed: &changed,
                    tags: &tags,
                    context: &self.ctx,
                })
            })
            .await?;
        let mut all = created.attributes.clone();
        all.extend(attributes);
        Ok(Created {
            physical_id: created.physical_id.clone(),
            attributes: all,
        })
    }

    fn failed<T>(
        &self,
        op: Op,
        step: &Step,
        physical_id: Option<String>,
        e: DriverError,
    ) -> std::result::Result<T, String> {
        let mut f = Entry::new(op, Phase::Failed, &step.logical_id, &step.type_name);
        f.physical_id = physical_id;
        f.error = Some(e.to_string());
        let _ = self.journal(f);
        Err(e.to_string())
    }

    async fn update(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let driver = self.registry.get(&step.type_name).expect("validated");
        let (props, deps) = self.resolved(step)?;
        let (physical_id, previous) = {
            let b = self.book.lock().expect("book lock");
            let r = b
                .state
                .resources
                .get(&step.logical_id)
                .ok_or_else(|| format!("{} is not in state", step.logical_id))?;
            (r.physical_id.clone(), r.properties.clone())
        };
        let protected = protect_secrets(&props, driver.schema());
        let changed: Vec<String> = step.changes.iter().map(|c| c.path.clone()).collect();
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let mut intent = Entry::new(Op::Update, Phase::Intent, &step.logical_id, &step.type_name);
        intent.physical_id = Some(physical_id.clone());
        intent.properties = Some(protected.clone());
        self.journal(intent)?;
        let result = self
            .retrying(|| {
                driver.update(UpdateRequest {
                    logical_id: &step.logical_id,
                    physical_id: &physical_id,
                    properties: &props,
                    previous: &previous,
                    changed: &changed,
                    tags: &tags,
                    context: &self.ctx,
                })
            })
            .await;
        match result {
            Ok(attributes) => {
                let mut done =
                    Entry::new(Op::Update, Phase::Done, &step.logical_id, &step.type_name);
                done.physical_id = Some(physical_id.clone());
                done.properties = Some(protected);
                done.attributes = Some(attributes);
                done.dependencies = deps;
                self.journal(done)?;
                Ok(Some(physical_id))
            }
            Err(e) => self.failed(Op::Update, step, Some(physical_id), e),
        }
    }

    async fn delete(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let type_name = step.old_type.as_deref().unwrap_or(&step.type_name);
        let driver = self
            .registry
            .get(type_name)
            .ok_or_else(|| format!("no driver for {type_name}"))?;
        let physical_id = step
            .physical_id
            .clone()
            .ok_or_else(|| format!("{} has no physical id to delete", step.logical_id))?;
        let properties = {
            let b = self.book.lock().expect("book lock");
            b.state
                .resources
                .get(&step.logical_id)
                .and_then(|r| {
                    if r.physical_id == physical_id {
                        Some(r.properties.clone())
                    } else {
                        r.deposed
                            .iter()
                            .find(|d| d.physical_id == physical_id)
                            .map(|d| d.properties.clone())
                    }
                })
                .unwrap_or_default()
        };
        let handle = ResourceHandle {
            logical_id: step.logical_id.clone(),
            physical_id: physical_id.clone(),
            properties,
            attributes: Default::default(),
        };
        let mut intent = Entry::new(Op::Delete, Phase::Intent, &step.logical_id, &step.type_name);
        intent.physical_id = Some(physical_id.clone());
        self.journal(intent)?;
        match self.retrying(|| driver.delete(&handle)).await {
            Ok(()) => {
                let mut done =
                    Entry::new(Op::Delete, Phase::Done, &step.logical_id, &step.type_name);
                done.physical_id = Some(physical_id.clone());
                self.journal(done)?;
                Ok(Some(physical_id))
            }
            Err(e) => self.failed(Op::Delete, step, Some(physical_id), e),
        }
    }
}

/// Runs the plan. The caller holds the lock and has checked the plan is
/// current; `state` is the state the plan was made against.
#[expect(clippy::too_many_arguments)]
pub(crate) async fn run_plan(
    store: &StateStore,
    journal: JournalWriter,
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
    let persister = Persister::start(store.clone(), state.clone());
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
        owner: Ownership {
            stack: stack.name.clone(),
            env: stack.env.clone(),
        },
        book: book.clone(),
        persister,
        opts: opts.clone(),
        journal_failed: AtomicBool::new(false),
    });
    let s = shared.clone();
    let outcomes = walk(&dag, &opts.limits, &opts.cancel, move |t| s.clone().run(t)).await;

    // Outputs, from whatever now exists.
    let outputs = {
        let b = book.lock().expect("book lock");
        stack
            .outputs
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), resolve(value, ctx, &b.state).ok()?)))
            .collect()
    };
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
