//! Refresh: settle what an interrupted apply left behind, then read every
//! resource in state, one batched call per type.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::driver::{Driver, DriverError, Found, Observed, Ownership, Registry, ResourceHandle};
use crate::error::{Error, Result};
use crate::journal::{Entry, Op, Phase};
use crate::model::StackSpec;
use crate::plan::Observations;
use crate::state::{Deposed, ResourceState, State};

/// Runs one batched call per type concurrently and collects the answers.
async fn per_type<P, T, F, Fut>(
    registry: &Registry,
    work: impl IntoIterator<Item = (String, P)>,
    call: F,
) -> Result<BTreeMap<String, T>>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Driver>, P) -> Fut,
    Fut: Future<Output = Result<T, DriverError>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (t, payload) in work {
        let driver = registry.get(&t).cloned().ok_or_else(|| Error::NoDriver {
            logical_id: String::new(),
            type_name: t.clone(),
        })?;
        let fut = call(driver, payload);
        set.spawn(async move { (t, fut.await) });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (t, result) = joined.expect("refresh tasks do not panic");
        out.insert(
            t.clone(),
            result.map_err(|source| Error::Refresh {
                type_name: t,
                source,
            })?,
        );
    }
    Ok(out)
}

/// Everything of the given types that carries the owner's tags, as
/// `(type, found)`: one batch call for the types the registry's finder
/// covers, and one `find_by_tags` per other type, all concurrently.
///
/// `sweep` allows the batch call. It is for searches over the whole stack
/// (twins, unmanaged resources); finding what a cut-off create made asks
/// each driver, whose own Describe sees a fresh create (on AWS the tagging
/// API can lag behind by a while).
pub async fn find_owned(
    registry: &Registry,
    types: impl IntoIterator<Item = String>,
    owner: &Ownership,
    sweep: bool,
) -> Result<Vec<(String, Found)>> {
    let (batched, single): (Vec<String>, Vec<String>) = types
        .into_iter()
        .partition(|t| sweep && registry.finder().is_some_and(|f| f.covers(t)));
    let batch = async {
        match registry.finder() {
            Some(f) if !batched.is_empty() => {
                f.find(owner, &batched)
                    .await
                    .map_err(|source| Error::Refresh {
                        type_name: batched.join(", "),
                        source,
                    })
            }
            _ => Ok(Vec::new()),
        }
    };
    let each = per_type(
        registry,
        single.into_iter().map(|t| (t, ())),
        |driver, ()| {
            let owner = owner.clone();
            async move { driver.find_by_tags(&owner).await }
        },
    );
    let (batch, each) = tokio::join!(batch, each);
    let mut found = batch?;
    found.extend(
        each?
            .into_iter()
            .flat_map(|(t, list)| list.into_iter().map(move |f| (t.clone(), f))),
    );
    Ok(found)
}

/// Adopts resources that carry this stack's ownership tags but are missing
/// from the state: creates an interrupted apply sent but never saw answered,
/// and twins made by retried creates. Returns what it did, for the plan.
pub async fn recover(
    stack: &StackSpec,
    registry: &Registry,
    state: &mut State,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    // Types to search: those of stack resources missing from the state, and
    // those of creates that were pending when the last apply stopped.
    let mut missing: BTreeMap<String, String> = stack
        .resources
        .iter()
        .filter(|r| !state.resources.contains_key(&r.logical_id))
        .map(|r| (r.logical_id.clone(), r.type_name.clone()))
        .collect();
    for (id, p) in &state.pending {
        // A cut-off import tagged what it took over, or never got to.
        if matches!(p.op, Op::Create | Op::Import) {
            missing.insert(id.clone(), p.type_name.clone());
        }
    }
    // Types that can hold a twin of a resource the state already holds (a
    // create sent twice): taggable ones without a name the stack fixes, as
    // AWS refuses a second object of the same name.
    let twin_prone: BTreeMap<String, String> = stack
        .resources
        .iter()
        .filter(|r| {
            state
                .resources
                .get(&r.logical_id)
                .is_some_and(|s| s.type_name == r.type_name)
        })
        .filter(|r| {
            registry.schema(&r.type_name).is_some_and(|s| {
                s.taggable
                    && s.fixed_name_property
                        .as_ref()
                        .is_none_or(|p| !r.properties.contains_key(p))
            })
        })
        .map(|r| (r.logical_id.clone(), r.type_name.clone()))
        .collect();
    let lost: BTreeSet<String> = missing.values().cloned().collect();
    let swept: BTreeSet<String> = twin_prone
        .values()
        .filter(|t| !lost.contains(*t))
        .cloned()
        .collect();
    let owner = Ownership::of(stack);
    let (lost, swept) = tokio::join!(
        find_owned(registry, lost, &owner, false),
        find_owned(registry, swept, &owner, true)
    );
    let found = lost?.into_iter().chain(swept?);

    let known: BTreeSet<String> = state
        .resources
        .values()
        .flat_map(|r| r.physical_ids().map(String::from))
        .collect();
    let candidates: Vec<(String, Found)> = found
        .filter(|(t, f)| {
            !known.contains(&f.physical_id)
                && (missing.get(&f.logical_id) == Some(t)
                    || twin_prone.get(&f.logical_id) == Some(t))
        })
        .collect();
    // Keep only candidates that still exist: a tag search can list objects
    // that are being deleted (NAT gateways, instances).
    let mut adopt: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    let mut extra: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for (t, f) in still_there(registry, candidates).await? {
        let bucket = if missing.get(&f.logical_id) == Some(&t) {
            &mut adopt
        } else {
            &mut extra
        };
        bucket.entry(f.logical_id.clone()).or_default().push(f);
    }

    for (id, twins) in extra {
        let r = state
            .resources
            .get_mut(&id)
            .expect("twin-prone ids are in state");
        depose_twins(&id, r, twins, &mut notes);
    }
    for (id, mut twins) in adopt {
        twins.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        let type_name = missing[&id].clone();
        let pending = state.pending.remove(&id);
        let first = twins.remove(0);
        let mut done = Entry::new(Op::Create, Phase::Done, &id, &type_name);
        done.seq = state.journal_seq;
        done.physical_id = Some(first.physical_id.clone());
        done.properties = pending.as_ref().map(|p| p.properties.clone());
        done.initial_only = stack
            .resource(&id)
            .map(|r| r.initial_only.clone())
            .unwrap_or_default();
        done.dependencies = match pending {
            Some(p) => p.dependencies,
            None => stack
                .resource(&id)
                .map(declared_dependencies)
                .unwrap_or_default(),
        };
        state.record(&done);
        notes.push(format!(
            "adopted {id} ({}), found by its ownership tags",
            first.physical_id
        ));
        let r = state.resources.get_mut(&id).expect("just recorded");
        depose_twins(&id, r, twins, &mut notes);
    }
    // Creates that left nothing behind were never carried out.
    state
        .pending
        .retain(|_, p| !matches!(p.op, Op::Create | Op::Import));
    Ok(notes)
}

/// Marks `twins` of `id` for deletion, with the reason plans show.
fn depose_twins(id: &str, r: &mut ResourceState, twins: Vec<Found>, notes: &mut Vec<String>) {
    for twin in twins {
        notes.push(format!(
            "{id} has a twin {} left by an interrupted call; it will be deleted",
            twin.physical_id
        ));
        r.deposed.push(Deposed {
            physical_id: twin.physical_id,
            properties: r.properties.clone(),
            reason: Some(format!("twin of {id} left by an interrupted call")),
        });
    }
}

/// Whether `recover` or `read_all` may change `state`: only with pending
/// mutations, adoptions, or resources whose outputs were never recorded.
pub fn may_repair(state: &State) -> bool {
    !state.pending.is_empty()
        || state
            .resources
            .values()
            .any(|r| r.attributes.is_empty() || r.properties.is_empty() || !r.deposed.is_empty())
}

/// Reads every resource in state, one call per type, and settles pending
/// deletes and updates. Adopted resources get their attributes and, where the
/// create's properties were never journaled, the properties the cloud reports.
pub async fn read_all(registry: &Registry, state: &mut State) -> Result<Observations> {
    let mut by_type: BTreeMap<String, Vec<ResourceHandle>> = BTreeMap::new();
    for (id, r) in &state.resources {
        by_type
            .entry(r.type_name.clone())
            .or_default()
            .push(handle(id, r));
    }
    let mut observations = Observations::default();
    for (h, seen) in read_handles(registry, by_type).await? {
        let id = h.logical_id;
        if let (Some(r), Some(o)) = (state.resources.get_mut(&id), &seen) {
            if r.attributes.is_empty() {
                r.attributes = o.attributes.clone();
            }
            if r.properties.is_empty() {
                r.properties = o.properties.clone();
            }
        }
        observations.resources.insert(id, seen);
    }
    // A delete or update that was cut off: the read above tells the outcome.
    let pending: Vec<String> = state.pending.keys().cloned().collect();
    for id in pending {
        let gone = matches!(observations.resources.get(&id), Some(None));
        let p = state.pending.remove(&id).expect("listed above");
        // Only the primary object's fate is known here; a deposed object's
        // delete is planned again (deleting what is gone succeeds).
        let primary = state.resources.get(&id).map(|r| &r.physical_id);
        if p.op == Op::Delete && gone && p.physical_id.as_ref() == primary {
            let mut done = Entry::new(Op::Delete, Phase::Done, &id, &p.type_name);
            done.seq = state.journal_seq;
            done.physical_id = p.physical_id;
            state.record(&done);
        }
    }
    Ok(observations)
}

/// The logical ids a resource refers to or names in `DependsOn`.
pub(crate) fn declared_dependencies(spec: &crate::ResourceSpec) -> Vec<String> {
    let mut deps: BTreeSet<String> = spec
        .properties
        .values()
        .filter_map(|v| crate::resolve::references(v).ok())
        .flatten()
        .map(|r| r.target)
        .collect();
    deps.extend(spec.depends_on.iter().cloned());
    deps.into_iter().collect()
}

/// Of `found`, what still exists: a tag search can list objects being
/// deleted (a KMS key waiting out its deletion window, an INACTIVE ECS
/// service). One read per type, of the candidates only.
pub async fn still_there(
    registry: &Registry,
    found: Vec<(String, Found)>,
) -> Result<Vec<(String, Found)>> {
    let mut by_type: BTreeMap<String, Vec<ResourceHandle>> = BTreeMap::new();
    for (t, f) in &found {
        by_type.entry(t.clone()).or_default().push(ResourceHandle {
            logical_id: f.logical_id.clone(),
            physical_id: f.physical_id.clone(),
            properties: Default::default(),
            attributes: Default::default(),
        });
    }
    let alive: BTreeSet<(String, String)> = read_handles(registry, by_type)
        .await?
        .into_iter()
        .filter_map(|(h, seen)| seen.map(|_| (h.logical_id, h.physical_id)))
        .collect();
    Ok(found
        .into_iter()
        .filter(|(_, f)| alive.contains(&(f.logical_id.clone(), f.physical_id.clone())))
        .collect())
}

/// Reads the given resources, one call per type, concurrently.
async fn read_handles(
    registry: &Registry,
    by_type: BTreeMap<String, Vec<ResourceHandle>>,
) -> Result<Vec<(ResourceHandle, Option<Observed>)>> {
    let answers = per_type(
        registry,
        by_type,
        |driver, handles: Vec<ResourceHandle>| async move {
            let seen = driver.read(&handles).await?;
            Ok(handles.into_iter().zip(seen).collect::<Vec<_>>())
        },
    )
    .await?;
    Ok(answers.into_values().flatten().collect())
}

pub(crate) fn handle(id: &str, r: &ResourceState) -> ResourceHandle {
    ResourceHandle {
        logical_id: id.to_string(),
        physical_id: r.physical_id.clone(),
        properties: r.properties.clone(),
        attributes: r.attributes.clone(),
    }
}
