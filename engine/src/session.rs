//! A session: the state of one stack, locked, with the operations a command
//! runs on it (plan, apply a plan, destroy).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::{run_plan, ApplyOptions, ApplyReport};
use crate::backend::{Lock, StateBackend};
use crate::drift::{self, DriftReport};
use crate::driver::Ownership;
use crate::driver::{Registry, ResourceHandle};
use crate::error::{Error, Result};
use crate::import::{self, ImportReport};
use crate::journal::{Entry, Op, Phase};
use crate::model::{CloudContext, StackSpec};
use crate::plan::{diff, summarize, Plan, PLAN_FORMAT};
use crate::refresh::{
    declared_dependencies, find_owned, may_repair, read_all, recover, still_there,
};
use crate::state::{protect_secrets, State, Zones};
use crate::store::{now_ms, StateStore};
use crate::validate::validate;

pub struct Session {
    store: Arc<dyn StateBackend>,
    lock: Lock,
    state: State,
    /// Whether `state` exists on disk (else it is a new, unsaved state).
    on_disk: bool,
}

impl Session {
    /// Locks the state of `<stack>-<env>` under `root` and loads it, with the
    /// journal folded in.
    pub fn open(root: impl AsRef<Path>, stack: &str, env: &str, command: &str) -> Result<Self> {
        Self::open_in(Arc::new(StateStore::new(root, stack, env)), command)
    }

    /// Locks the state `backend` holds and loads it, with the journal
    /// folded in.
    pub fn open_in(backend: Arc<dyn StateBackend>, command: &str) -> Result<Self> {
        Self::open_within(backend, command, Duration::ZERO, &mut |_| {})
    }

    /// Like [`Session::open_in`], waiting up to `within` for a lock another
    /// run holds ([`Lock::take_within`]).
    pub fn open_within(
        backend: Arc<dyn StateBackend>,
        command: &str,
        within: Duration,
        waiting: &mut dyn FnMut(&Error),
    ) -> Result<Self> {
        let lock = Lock::take_within(backend.clone(), command, within, waiting)?;
        let loaded = backend.load()?;
        let on_disk = loaded.is_some();
        Ok(Session {
            state: loaded.unwrap_or_else(|| State::new(backend.stack(), backend.env())),
            store: backend,
            lock,
            on_disk,
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where the state lives.
    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.store
    }

    /// The local store, when the state is in a local directory.
    pub fn local(&self) -> Option<&StateStore> {
        self.store.local()
    }

    /// The lock this session holds.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Refreshes (adopting what an interrupted apply left behind) and diffs.
    /// A refresh that repaired the state saves it before the plan is made.
    pub async fn plan(
        &mut self,
        stack: &StackSpec,
        registry: &Registry,
        ctx: &CloudContext,
    ) -> Result<Plan> {
        let graph = validate(stack, registry)?;
        // Cloning the state to see whether the refresh repaired it costs
        // time on big stacks; only do it when a repair is possible.
        let before = may_repair(&self.state).then(|| self.state.clone());
        let mut notes = recover(stack, registry, &mut self.state).await?;
        let observed = read_all(registry, &mut self.state).await?;
        let repaired = !notes.is_empty() || before.is_some_and(|b| b != self.state);
        if repaired {
            self.state.serial += 1;
            self.store.save(self.lock.fence, &self.state)?;
            self.on_disk = true;
        }
        for (id, seen) in &observed.resources {
            if seen.is_none() && graph.contains(id) {
                notes.push(format!("{id} was deleted outside fastcart"));
            }
        }
        let steps = diff(stack, &graph, registry, ctx, &self.state, &observed)?;
        let (summary, critical_path) = summarize(&steps, &graph, registry, stack);
        Ok(Plan {
            format: PLAN_FORMAT,
            stack: stack.name.clone(),
            env: stack.env.clone(),
            lineage: self.on_disk.then(|| self.state.lineage.clone()),
            serial: self.state.serial,
            journal_seq: self.state.journal_seq,
            region: ctx.region.clone(),
            account_id: ctx.account_id.clone(),
            stack_hash: stack.content_hash(),
            summary,
            steps,
            critical_path,
            notes,
        })
    }

    /// Compares what was applied with what the cloud holds, and looks for
    /// resources tagged as this stack's that the state does not know.
    /// Changes nothing.
    pub async fn drift(&self, registry: &Registry) -> Result<DriftReport> {
        let mut state = self.state.clone();
        let owner = Ownership {
            stack: state.stack.clone(),
            env: state.env.clone(),
        };
        // The search first: its batch answer carries tags the reads use.
        let types = registry.type_names().map(String::from).collect::<Vec<_>>();
        let found = find_owned(registry, types, &owner, true).await?;
        let observed = read_all(registry, &mut state).await?;
        // What the state does not know is unmanaged only if it still exists.
        let known: BTreeSet<String> = state
            .resources
            .values()
            .flat_map(|r| r.physical_ids().map(String::from))
            .collect();
        let (known, unknown): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(_, f)| known.contains(&f.physical_id));
        let mut found = known;
        found.extend(still_there(registry, unknown).await?);
        Ok(drift::detect(&state, &observed, registry, &found))
    }

    /// Refuses a plan made against another stack, state, account or region.
    pub fn check_plan(&self, stack: &StackSpec, ctx: &CloudContext, plan: &Plan) -> Result<()> {
        let stale = |reason: String| Err(Error::StalePlan { reason });
        if plan.format != PLAN_FORMAT {
            return stale(format!(
                "it has format {}, this fastcart writes {PLAN_FORMAT}",
                plan.format
            ));
        }
        if plan.stack != stack.name || plan.env != stack.env {
            return stale(format!(
                "it was made for stack {}-{}, not {}",
                plan.stack,
                plan.env,
                stack.qualified_name()
            ));
        }
        if plan.region != ctx.region || plan.account_id != ctx.account_id {
            return stale(format!(
                "it was made for account {} in {}, not account {} in {}",
                plan.account_id, plan.region, ctx.account_id, ctx.region
            ));
        }
        if plan.stack_hash != stack.content_hash() {
            return stale("the stack definition changed since the plan was made".into());
        }
        match (&plan.lineage, self.on_disk) {
            (None, true) => {
                return stale(
                    "the plan was made when no state existed, and one has been written since"
                        .into(),
                )
            }
            (Some(l), _) if *l != self.state.lineage || !self.on_disk => {
                return stale(format!(
                    "it was made for state lineage {l}, but the state now has lineage {}",
                    self.state.lineage
                ))
            }
            _ => {}
        }
        if plan.serial != self.state.serial {
            return stale(format!(
                "it was made at state serial {}, but the state is now at serial {}: something was applied since",
                plan.serial, self.state.serial
            ));
        }
        if plan.journal_seq != self.state.journal_seq {
            return stale(format!(
                "an apply ran since the plan was made (journal entry {} then, {} now) and may have been cut off",
                plan.journal_seq, self.state.journal_seq
            ));
        }
        if !self.state.pending.is_empty() {
            return stale(format!(
                "an earlier apply was cut off with {} operation(s) unfinished; a new plan finds what they did",
                self.state.pending.len()
            ));
        }
        Ok(())
    }

    /// Carries out `plan`, which must be current (see [`Session::check_plan`]).
    pub async fn apply(
        &mut self,
        stack: &StackSpec,
        registry: &Registry,
        ctx: &CloudContext,
        plan: &Plan,
        opts: ApplyOptions,
    ) -> Result<ApplyReport> {
        self.check_plan(stack, ctx, plan)?;
        let graph = validate(stack, registry)?;
        plan.check_data_loss(registry, &opts.allow_replace)?;
        let journal = self.store.journal(self.lock.fence)?;
        let mut start = self.state.clone();
        start.zones = (!stack.resources.is_empty()).then(|| Zones {
            region: ctx.region.clone(),
            names: ctx.availability_zones.clone(),
        });
        let (state, report) = run_plan(
            &self.store,
            self.lock.fence,
            journal,
            start,
            stack,
            &graph,
            registry,
            ctx,
            plan,
            opts,
        )
        .await?;
        self.state = state;
        self.on_disk = true;
        Ok(report)
    }
}

impl Session {
    /// Finds what exists for the stack's resources the state lacks (see
    /// [`crate::import`]); with `apply`, takes it over: each object is
    /// journaled (`Op::Import`, intent before its tags are added, done
    /// after), tagged with the ownership and stack tags (none removed) and
    /// recorded. Nothing is created, replaced or deleted. An ambiguous
    /// resource is reported and left out; the others are still taken over.
    pub async fn import(
        &mut self,
        stack: &StackSpec,
        registry: &Registry,
        ctx: &CloudContext,
        given: &BTreeMap<String, String>,
        apply: bool,
    ) -> Result<ImportReport> {
        let graph = validate(stack, registry)?;
        // What a cut-off import (or apply) tagged is this stack's already.
        let notes = recover(stack, registry, &mut self.state).await?;
        if apply && !notes.is_empty() {
            self.state.serial += 1;
            self.store.save(self.lock.fence, &self.state)?;
            self.on_disk = true;
        }
        let mut report = import::find(stack, &graph, registry, ctx, &self.state, given).await?;
        if !apply || report.adopted.is_empty() {
            return Ok(report);
        }
        let mut journal = self.store.journal(self.lock.fence)?;
        let owner = Ownership::of(stack);
        let zones = import::zones_found(stack, &report, &ctx.availability_zones);
        let ctx = CloudContext {
            availability_zones: zones.clone(),
            ..ctx.clone()
        };
        self.state.zones = Some(Zones {
            region: ctx.region.clone(),
            names: zones,
        });
        let mut failed = None;
        for a in &report.adopted {
            let driver = registry.get(&a.type_name).ok_or_else(|| Error::NoDriver {
                logical_id: a.logical_id.clone(),
                type_name: a.type_name.clone(),
            })?;
            let schema = driver.schema();
            let spec = stack
                .resource(&a.logical_id)
                .expect("adopted ids are the stack's");
            let properties = protect_secrets(
                &import::resolvable(stack, &a.logical_id, &ctx, &self.state),
                schema,
            );
            let stamp = |mut e: Entry, state: &State| {
                e.seq = state.journal_seq + 1;
                e.at_ms = now_ms();
                e.lineage = state.lineage.clone();
                e.physical_id = Some(a.physical_id.clone());
                e.properties = Some(properties.clone());
                e.dependencies = declared_dependencies(spec);
                e
            };
            let intent = stamp(
                Entry::new(Op::Import, Phase::Intent, &a.logical_id, &a.type_name),
                &self.state,
            );
            journal.append(&intent)?;
            self.state.record(&intent);
            let handle = ResourceHandle {
                logical_id: a.logical_id.clone(),
                physical_id: a.physical_id.clone(),
                properties: properties.clone(),
                attributes: a.observed.attributes.clone(),
            };
            let tags = owner.tags_for(&a.logical_id, &stack.tags);
            let outcome = driver.tag_adopted(&handle, &tags, &ctx).await;
            let phase = if outcome.is_ok() {
                Phase::Done
            } else {
                Phase::Failed
            };
            let mut end = stamp(
                Entry::new(Op::Import, phase, &a.logical_id, &a.type_name),
                &self.state,
            );
            end.attributes = Some(a.observed.attributes.clone());
            end.initial_only = spec.initial_only.clone();
            end.error = Some(match &outcome {
                Ok(()) => format!("imported {}", a.how),
                Err(e) => e.to_string(),
            });
            journal.append(&end)?;
            self.state.record(&end);
            if let Err(e) = outcome {
                failed = Some(Error::Refresh {
                    type_name: a.type_name.clone(),
                    source: e,
                });
                break;
            }
        }
        self.state.serial += 1;
        self.store.save(self.lock.fence, &self.state)?;
        self.on_disk = true;
        if let Some(e) = failed {
            return Err(e);
        }
        report.applied = true;
        Ok(report)
    }
}

impl Plan {
    /// Refuses a plan that replaces a resource holding data (its type's
    /// schema says `holds_data`, or the old type's on a type change) unless
    /// `allowed` names it. `Session::apply` checks it before anything is
    /// journaled or sent; the CLI also before it asks for confirmation.
    pub fn check_data_loss(&self, registry: &Registry, allowed: &[String]) -> Result<()> {
        let holds = |t: &str| registry.schema(t).is_some_and(|s| s.holds_data);
        let ids: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.action == crate::Action::Replace && !s.deposed)
            .filter(|s| holds(&s.type_name) || s.old_type.as_deref().is_some_and(holds))
            .filter(|s| !allowed.contains(&s.logical_id))
            .map(|s| s.logical_id.clone())
            .collect();
        match ids.is_empty() {
            true => Ok(()),
            false => Err(Error::ReplacesData { ids }),
        }
    }

    /// Writes the plan to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("plans serialize");
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("plan"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("write plan", path, e)
        })
    }

    pub fn load(path: &Path) -> Result<Plan> {
        let text = fs::read_to_string(path).map_err(|e| Error::io("read plan", path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::BadPlan {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}
