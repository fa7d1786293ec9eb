//! `fastcart import`: taking over objects that exist but are in no state
//! (made by another tool), without creating, replacing or deleting any.
//!
//! Each stack resource the state lacks is looked for by its natural key
//! ([`Driver::find_by_key`]): its name, or what identifies it where it is.
//! A key is often made of other resources' ids (a subnet's VPC), so the
//! search runs in passes, in dependency order, until a pass finds nothing
//! new. Some types have no key of their own (a KMS key, an Elastic IP): what
//! refers to them names them. After each match the stack's value of every
//! property is laid over what the cloud reports for it: where the stack
//! says `Ref X` (or `Fn::GetAtt X.<id attribute>`) and the cloud holds an
//! id, that id is X's, once a read confirms X exists. Such a reference also
//! settles a choice between two candidates of X's key.
//!
//! What is found is recorded like a create (journal first, `Op::Import`),
//! with the stack's properties as they resolve: a write-only property,
//! which no read reports, is assumed to be as the stack says, so the first
//! plan does not rewrite a token or a key it cannot see. Ownership tags are
//! added, and none is removed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::driver::{KeyQuery, Observed, Registry, ResourceHandle};
use crate::error::{Error, Result};
use crate::graph::StackGraph;
use crate::model::{CloudContext, StackSpec};
use crate::resolve::{resolve, Lookup};
use crate::state::State;

/// One object to take over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub physical_id: String,
    /// How it was found: `by Name=…`, `through Database.DBSubnetGroupName`,
    /// `given with --id`.
    pub how: String,
    #[serde(skip)]
    pub observed: Observed,
}

/// A resource with more than one candidate: nothing of it is adopted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ambiguity {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// Each candidate's physical id and how it was found.
    pub candidates: Vec<(String, String)>,
}

/// A resource nothing was found for, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoMatch {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// In dependency order.
    pub adopted: Vec<Adoption>,
    pub ambiguous: Vec<Ambiguity>,
    pub unmatched: Vec<NoMatch>,
    /// Stack resources the state already holds (left alone).
    pub in_state: Vec<String>,
    /// Whether the adoptions were recorded (`--apply`).
    pub applied: bool,
}

impl ImportReport {
    /// Whether the import left a choice to the operator.
    pub fn has_ambiguity(&self) -> bool {
        !self.ambiguous.is_empty()
    }
}

/// The state's published values with the matches so far laid over them.
struct Known<'a> {
    state: &'a State,
    found: &'a BTreeMap<String, Adoption>,
}

impl Lookup for Known<'_> {
    fn physical_id(&self, id: &str) -> Option<&str> {
        match self.found.get(id) {
            Some(a) => Some(&a.physical_id),
            None => self.state.physical_id(id),
        }
    }
    fn attributes(&self, id: &str) -> Option<&Map<String, Value>> {
        match self.found.get(id) {
            Some(a) => Some(&a.observed.attributes),
            None => self.state.attributes(id),
        }
    }
}

/// The properties of `id` that resolve against `known`, each on its own.
pub(crate) fn resolvable(
    stack: &StackSpec,
    id: &str,
    ctx: &CloudContext,
    known: &dyn Lookup,
) -> Map<String, Value> {
    let Some(spec) = stack.resource(id) else {
        return Map::new();
    };
    spec.properties
        .iter()
        .filter_map(|(k, v)| resolve(v, ctx, known).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// A reference in the stack's value of a property, laid over the value the
/// cloud reports: `(target, attribute, the id the cloud holds there)`.
fn back_references<'a>(
    spec: &'a Value,
    seen: &'a Value,
    out: &mut Vec<(&'a str, Option<&'a str>, &'a str)>,
) {
    let single = |v: &'a Value| v.as_object().filter(|m| m.len() == 1);
    if let (Some(m), Some(id)) = (single(spec), seen.as_str()) {
        if let Some(Value::String(target)) = m.get("Ref") {
            out.push((target, None, id));
            return;
        }
        if let Some(att) = m.get("Fn::GetAtt") {
            let parts: Option<(&str, &str)> = match att {
                Value::Array(a) if a.len() == 2 => a[0].as_str().zip(a[1].as_str()),
                Value::String(s) => s.split_once('.'),
                _ => None,
            };
            if let Some((target, attribute)) = parts {
                out.push((target, Some(attribute), id));
            }
            return;
        }
    }
    match (spec, seen) {
        (Value::Object(s), Value::Object(o)) => {
            for (k, v) in s {
                if let Some(seen) = o.get(k) {
                    back_references(v, seen, out);
                }
            }
        }
        // Only a list of one pairs up without knowing its order.
        (Value::Array(s), Value::Array(o)) if s.len() == 1 && o.len() == 1 => {
            back_references(&s[0], &o[0], out)
        }
        _ => {}
    }
}

/// Finds, for every stack resource the state lacks, what exists. `given`
/// maps logical ids to physical ids the operator names (`--id`); they win
/// over any search. Changes nothing.
pub async fn find(
    stack: &StackSpec,
    graph: &StackGraph,
    registry: &Registry,
    ctx: &CloudContext,
    state: &State,
    given: &BTreeMap<String, String>,
) -> Result<ImportReport> {
    let order: Vec<&str> = graph.topological().collect();
    let type_of = |id: &str| {
        stack
            .resource(id)
            .map(|r| r.type_name.clone())
            .unwrap_or_default()
    };
    let driver_of = |id: &str| {
        let t = type_of(id);
        registry.get(&t).cloned().ok_or_else(|| Error::NoDriver {
            logical_id: id.to_string(),
            type_name: t,
        })
    };
    let mut report = ImportReport::default();
    let todo: Vec<&str> = order
        .iter()
        .copied()
        .filter(|id| {
            let held = state.resources.contains_key(*id);
            if held {
                report.in_state.push(id.to_string());
            }
            !held
        })
        .collect();
    for id in given.keys() {
        if !graph.contains(id) {
            return Err(Error::Import {
                message: format!(
                    "--id {id}=…: {id} is not a resource of stack {}",
                    stack.qualified_name()
                ),
            });
        }
        if state.resources.contains_key(id) {
            return Err(Error::Import {
                message: format!("--id {id}=…: the state already holds {id}; nothing to import"),
            });
        }
    }
    // Physical ids someone holds already: never adopted twice.
    let mut taken: BTreeSet<String> = state
        .resources
        .values()
        .flat_map(|r| r.physical_ids().map(String::from))
        .collect();
    let mut found: BTreeMap<String, Adoption> = BTreeMap::new();
    // Read a physical id of `id`; `None` when it does not exist.
    let confirm = |id: String, pid: String| {
        let driver = driver_of(&id);
        async move {
            let driver = driver?;
            let handle = ResourceHandle {
                logical_id: id,
                physical_id: pid,
                properties: Map::new(),
                attributes: Map::new(),
            };
            let type_name = driver.schema().type_name.clone();
            let seen = driver
                .read(std::slice::from_ref(&handle))
                .await
                .map_err(|source| Error::Refresh { type_name, source })?;
            Ok::<_, Error>(seen.into_iter().next().flatten())
        }
    };
    for (id, pid) in given {
        match confirm(id.clone(), pid.clone()).await? {
            Some(observed) => {
                taken.insert(pid.clone());
                found.insert(
                    id.clone(),
                    Adoption {
                        logical_id: id.clone(),
                        type_name: type_of(id),
                        physical_id: pid.clone(),
                        how: "given with --id".into(),
                        observed,
                    },
                );
            }
            None => {
                return Err(Error::Import {
                    message: format!("--id {id}={pid}: no {} {pid} exists", type_of(id)),
                })
            }
        }
    }

    // Key searches, then what the matches refer to, until nothing is new.
    let mut candidates: BTreeMap<String, Vec<(String, String, Observed)>> = BTreeMap::new();
    // How many of its properties resolved when a resource's key was last
    // asked: it is asked again only when more resolve (a reference to a
    // resource found since), as a key may lean on one that had not.
    let mut asked: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let mut progress = false;
        for &id in &todo {
            if found.contains_key(id) {
                continue;
            }
            let props = resolvable(
                stack,
                id,
                ctx,
                &Known {
                    state,
                    found: &found,
                },
            );
            if asked.get(id).is_some_and(|&n| n >= props.len()) {
                continue;
            }
            let driver = driver_of(id)?;
            let query = KeyQuery {
                logical_id: id,
                properties: &props,
                context: ctx,
            };
            let cands = driver
                .find_by_key(&query)
                .await
                .map_err(|source| Error::Refresh {
                    type_name: type_of(id),
                    source,
                })?;
            let Some(cands) = cands else {
                continue;
            };
            asked.insert(id.to_string(), props.len());
            let cands: Vec<_> = cands
                .into_iter()
                .filter(|c| !taken.contains(&c.physical_id))
                .map(|c| (c.physical_id, format!("by {}", c.key), c.observed))
                .collect();
            if let [(pid, how, observed)] = cands.as_slice() {
                taken.insert(pid.clone());
                found.insert(
                    id.to_string(),
                    Adoption {
                        logical_id: id.to_string(),
                        type_name: type_of(id),
                        physical_id: pid.clone(),
                        how: how.clone(),
                        observed: observed.clone(),
                    },
                );
                progress = true;
            } else {
                candidates.insert(id.to_string(), cands);
            }
        }
        // What the matches name.
        let mut named: Vec<(String, String, String)> = Vec::new();
        for a in found.values() {
            let Some(spec) = stack.resource(&a.logical_id) else {
                continue;
            };
            for (k, v) in &spec.properties {
                let Some(seen) = a.observed.properties.get(k) else {
                    continue;
                };
                let mut refs = Vec::new();
                back_references(v, seen, &mut refs);
                for (target, attribute, pid) in refs {
                    let id_attribute = registry
                        .schema(&type_of(target))
                        .and_then(|s| s.id_attribute.as_deref());
                    if attribute.is_some() && attribute != id_attribute {
                        continue;
                    }
                    named.push((
                        target.to_string(),
                        pid.to_string(),
                        format!("through {}.{k}", a.logical_id),
                    ));
                }
            }
        }
        for (target, pid, how) in named {
            if found.contains_key(&target)
                || !todo.contains(&target.as_str())
                || taken.contains(&pid)
            {
                continue;
            }
            // One of the key's candidates, or an object a read confirms.
            let known = candidates
                .get(&target)
                .and_then(|c| c.iter().find(|(p, _, _)| *p == pid))
                .map(|(_, _, o)| o.clone());
            let observed = match known {
                Some(o) => Some(o),
                None => confirm(target.clone(), pid.clone()).await?,
            };
            let Some(observed) = observed else { continue };
            candidates.remove(&target);
            taken.insert(pid.clone());
            found.insert(
                target.clone(),
                Adoption {
                    logical_id: target.clone(),
                    type_name: type_of(&target),
                    physical_id: pid,
                    how,
                    observed,
                },
            );
            progress = true;
        }
        if !progress {
            break;
        }
    }

    for &id in &todo {
        if let Some(a) = found.remove(id) {
            report.adopted.push(a);
        } else if let Some(c) = candidates.remove(id).filter(|c| c.len() > 1) {
            report.ambiguous.push(Ambiguity {
                logical_id: id.to_string(),
                type_name: type_of(id),
                candidates: c.into_iter().map(|(p, how, _)| (p, how)).collect(),
            });
        } else {
            let why = if asked.contains_key(id) {
                "nothing has its key, and nothing found refers to it".to_string()
            } else {
                let waits: Vec<&str> = graph
                    .dependencies(id)
                    .into_iter()
                    .filter(|d| !state.resources.contains_key(*d))
                    .filter(|d| report.adopted.iter().all(|a| a.logical_id != *d))
                    .collect();
                if waits.is_empty() {
                    "its type has no key of its own, and nothing found refers to it".to_string()
                } else {
                    format!("its key needs {}, not found", waits.join(", "))
                }
            };
            report.unmatched.push(NoMatch {
                logical_id: id.to_string(),
                type_name: type_of(id),
                why,
            });
        }
    }
    Ok(report)
}

/// The zones the adopted objects are in, where the stack places one with
/// `Fn::Select [i, Fn::GetAZs]`: the stack's later plans resolve zone `i`
/// to where the object already is. Other positions keep `zones`' names.
pub fn zones_found(stack: &StackSpec, report: &ImportReport, zones: &[String]) -> Vec<String> {
    let mut names = zones.to_vec();
    for a in &report.adopted {
        let Some(spec) = stack.resource(&a.logical_id) else {
            continue;
        };
        for (k, v) in &spec.properties {
            let Some(Value::Array(args)) = v.get("Fn::Select") else {
                continue;
            };
            let (Some(i), Some(true)) = (
                args.first().and_then(Value::as_u64),
                args.get(1).map(|l| l.get("Fn::GetAZs").is_some()),
            ) else {
                continue;
            };
            if let Some(zone) = a.observed.properties.get(k).and_then(Value::as_str) {
                let i = i as usize;
                if names.len() <= i {
                    names.resize(i + 1, String::new());
                }
                names[i] = zone.to_string();
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_pair_up_with_what_the_cloud_holds() {
        let spec = json!({
            "a": {"Ref": "Net"},
            "b": [{"Fn::GetAtt": ["Group", "GroupId"]}],
            "c": [{"Ref": "One"}, {"Ref": "Two"}],
            "d": {"Inner": {"Fn::GetAtt": "Eip.AllocationId"}},
        });
        let seen = json!({
            "a": "net-1",
            "b": ["sg-1"],
            "c": ["x", "y"],
            "d": {"Inner": "eipalloc-1"},
        });
        let mut out = Vec::new();
        back_references(&spec, &seen, &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                ("Eip", Some("AllocationId"), "eipalloc-1"),
                ("Group", Some("GroupId"), "sg-1"),
                ("Net", None, "net-1"),
            ]
        );
    }
}
