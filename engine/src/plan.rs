//! The plan: a value saying what an apply will do and why.
//!
//! [`diff`] is pure: stack, state and observed resources in, plan out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compare::{dropped_tags, satisfies};
use crate::driver::{Observed, Registry};
use crate::graph::StackGraph;
use crate::model::{CloudContext, StackSpec};
use crate::resolve::{resolve, Lookup, Unresolved};
use crate::schema::ValueKind;
use crate::state::{secret_matches, State};

pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

/// The order of a replacement's two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceOrder {
    CreateBeforeDestroy,
    DeleteBeforeCreate,
}

/// The new value of a property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    Value(Value),
    KnownAfterApply,
    Sensitive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    /// The value the cloud has now; absent on creates and for secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    pub after: After,
    #[serde(default)]
    pub forces_replacement: bool,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub kind: ValueKind,
    /// For a list property: its elements compared, `expected` being what
    /// the stack asks and `actual` what the cloud has (so the apply adds
    /// `removed`, drops `added` and changes `changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elements: Option<crate::elements::ElementDiff>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub action: Action,
    /// The existing object the step acts on (absent on creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_order: Option<ReplaceOrder>,
    /// A delete of an older object of this logical id (the old half of an
    /// interrupted replacement, or a twin found by ownership tags).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deposed: bool,
    /// On a replacement that changes the type: the old object's type, whose
    /// driver deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_type: Option<String>,
}

impl Step {
    /// A key unique within a plan.
    pub fn key(&self) -> String {
        match (&self.physical_id, self.deposed) {
            (Some(pid), true) => format!("{} (deposed {pid})", self.logical_id),
            _ => self.logical_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn changes(&self) -> usize {
        self.create + self.update + self.replace + self.delete
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalPath {
    /// Sum of the types' typical durations along the path.
    pub estimate_secs: u64,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub stack: String,
    pub env: String,
    /// The state the plan was made against: `None` when none existed.
    pub lineage: Option<String>,
    pub serial: u64,
    /// The last journal entry the state held: an interrupted apply since the
    /// plan moves it even when it never saved the state.
    #[serde(default)]
    pub journal_seq: u64,
    /// Where the plan was made: a plan for one account or region is not
    /// applied in another.
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub account_id: String,
    pub stack_hash: String,
    pub summary: Summary,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_path: Option<CriticalPath>,
    /// What the refresh repaired before planning (adoptions, vanished resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty()
    }

    pub fn step(&self, logical_id: &str) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.logical_id == logical_id && !s.deposed)
    }
}

/// State lookups that treat some resources as not yet known.
struct Masked<'a> {
    state: &'a State,
    unknown: &'a HashSet<String>,
}

impl Lookup for Masked<'_> {
    fn physical_id(&self, id: &str) -> Option<&str> {
        if self.unknown.contains(id) {
            return None;
        }
        self.state.resources.get(id).map(|r| r.physical_id.as_str())
    }
    fn attributes(&self, id: &str) -> Option<&Map<String, Value>> {
        if self.unknown.contains(id) {
            return None;
        }
        self.state.resources.get(id).map(|r| &r.attributes)
    }
}

/// What the refresh saw.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Per logical id in state: what the cloud holds, `None` if it is gone.
    pub resources: HashMap<String, Option<Observed>>,
}

/// Diffs the stack against the state and what the cloud reports.
pub fn diff(
    stack: &StackSpec,
    graph: &StackGraph,
    registry: &Registry,
    ctx: &CloudContext,
    state: &State,
    observed: &Observations,
) -> Result<Vec<Step>, crate::Error> {
    let mut steps: Vec<Step> = Vec::new();
    // Resources whose outputs are not known before apply.
    let mut unknown: HashSet<String> = HashSet::new();
    // Replaced resources that must delete first, to spread to dependents.
    let mut deletes_first: HashSet<String> = HashSet::new();
    let specs = stack.by_id();

    for id in graph.topological() {
        let spec = specs[id];
        let schema = registry
            .schema(&spec.type_name)
            .expect("validated stacks only hold known types");
        let lookup = Masked {
            state,
            unknown: &unknown,
        };
        let in_state = state.resources.get(id);
        let old_type = in_state
            .filter(|r| r.type_name != spec.type_name)
            .map(|r| r.type_name.clone());
        // An object of another type is not compared: it is replaced whole.
        let existing = in_state.filter(|_| old_type.is_none());
        let seen = observed.resources.get(id).and_then(Option::as_ref);
        let vanished = existing.is_some() && seen.is_none();

        let mut changes = Vec::new();
        for (name, value) in &spec.properties {
            let prop = schema.property(name).cloned().unwrap_or_default();
            let resolved = match resolve(value, ctx, &lookup) {
                Ok(v) => Some(v),
                Err(Unresolved::KnownAfterApply(_)) => None,
                Err(Unresolved::Invalid(message)) => {
                    return Err(crate::Error::Resolve {
                        logical_id: id.to_string(),
                        message: format!("property {name}: {message}"),
                    })
                }
            };
            let sensitive = prop.sensitive;
            let after = match (&resolved, sensitive) {
                (_, true) => After::Sensitive,
                (Some(v), false) => After::Value(v.clone()),
                (None, false) => After::KnownAfterApply,
            };
            let (Some(existing), Some(seen)) = (existing, seen) else {
                // Created now (or again): every property is sent, the
                // initial-only ones too.
                changes.push(Change {
                    path: name.clone(),
                    before: None,
                    after,
                    forces_replacement: false,
                    sensitive,
                    kind: prop.kind,
                    elements: None,
                });
                continue;
            };
            // Set at creation, AWS's (or a scaler's) business since.
            if spec.is_initial_only(name) {
                continue;
            }
            // What AWS never returns is compared with what was applied last.
            let before = if prop.write_only {
                existing.properties.get(name)
            } else {
                seen.properties.get(name)
            };
            let same = match &resolved {
                None => false,
                Some(v) if sensitive => before.is_some_and(|b| secret_matches(b, v)),
                Some(v) => {
                    satisfies(v, before, prop.kind)
                        && !(prop.kind == ValueKind::Tags
                            && dropped_tags(existing.properties.get(name), v, before))
                }
            };
            if !same {
                let elements = match (&resolved, before) {
                    (Some(want), Some(have)) if !sensitive => {
                        crate::elements::diff(&prop, want, have).map(|mut d| {
                            // Tags the stack stopped setting, which the
                            // apply removes.
                            if let (ValueKind::Tags, Some(previous)) =
                                (prop.kind, existing.properties.get(name))
                            {
                                d.added = crate::elements::dropped_tags(previous, want, have);
                            }
                            d
                        })
                    }
                    _ => None,
                }
                .filter(|d| !d.is_empty());
                changes.push(Change {
                    path: name.clone(),
                    before: if sensitive { None } else { before.cloned() },
                    after,
                    forces_replacement: prop.create_only,
                    sensitive,
                    kind: prop.kind,
                    elements,
                });
            }
        }

        let dbc_dependency = !deletes_first.is_empty()
            && graph
                .dependencies(id)
                .iter()
                .any(|d| deletes_first.contains(*d));
        // A replacement that would lose data says so; apply refuses it
        // unless the operator names it.
        let loses_data = schema.holds_data
            || old_type
                .as_deref()
                .and_then(|t| registry.schema(t))
                .is_some_and(|t| t.holds_data);
        let data_note = |reason: String| {
            match loses_data {
            true => format!(
                "{reason}; it holds data, so apply refuses to replace it unless --allow-replace {id}"
            ),
            false => reason,
        }
        };
        let step = match (existing, seen) {
            (None, _) if old_type.is_some() => {
                deletes_first.insert(id.to_string());
                Some(Step {
                    logical_id: id.to_string(),
                    type_name: spec.type_name.clone(),
                    action: Action::Replace,
                    physical_id: in_state.map(|r| r.physical_id.clone()),
                    reason: data_note(format!(
                        "the type changes from {}; the old object is deleted first",
                        old_type.as_deref().unwrap_or_default()
                    )),
                    changes,
                    replace_order: Some(ReplaceOrder::DeleteBeforeCreate),
                    deposed: false,
                    old_type: old_type.clone(),
                })
            }
            (None, _) => Some(Step {
                logical_id: id.to_string(),
                type_name: spec.type_name.clone(),
                action: Action::Create,
                physical_id: None,
                reason: "not in state".into(),
                changes,
                replace_order: None,
                deposed: false,
                old_type: None,
            }),
            (Some(_), None) => Some(Step {
                logical_id: id.to_string(),
                type_name: spec.type_name.clone(),
                action: Action::Create,
                physical_id: None,
                reason: "deleted outside fastcart".into(),
                changes,
                replace_order: None,
                deposed: false,
                old_type: None,
            }),
            (Some(existing), Some(_)) if changes.iter().any(|c| c.forces_replacement) => {
                let forcing: Vec<&str> = changes
                    .iter()
                    .filter(|c| c.forces_replacement)
                    .map(|c| c.path.as_str())
                    .collect();
                let fixed = schema.replacement_deletes_first(&spec.properties);
                let order = if fixed || dbc_dependency {
                    deletes_first.insert(id.to_string());
                    ReplaceOrder::DeleteBeforeCreate
                } else {
                    ReplaceOrder::CreateBeforeDestroy
                };
                let mut reason = format!("{} forces replacement", forcing.join(", "));
                if fixed {
                    let name = schema.fixed_name_property.as_deref().unwrap_or_default();
                    reason.push_str(&format!(
                        "; {name} fixes the physical name, so the old one is deleted first"
                    ));
                } else if dbc_dependency {
                    reason
                        .push_str("; a dependency is deleted before it is created, so this is too");
                }
                Some(Step {
                    logical_id: id.to_string(),
                    type_name: spec.type_name.clone(),
                    action: Action::Replace,
                    physical_id: Some(existing.physical_id.clone()),
                    reason: data_note(reason),
                    changes,
                    replace_order: Some(order),
                    deposed: false,
                    old_type: None,
                })
            }
            (Some(existing), Some(_)) if !changes.is_empty() => {
                let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
                Some(Step {
                    logical_id: id.to_string(),
                    type_name: spec.type_name.clone(),
                    action: Action::Update,
                    physical_id: Some(existing.physical_id.clone()),
                    reason: format!("{} changed", paths.join(", ")),
                    changes,
                    replace_order: None,
                    deposed: false,
                    old_type: None,
                })
            }
            _ => None,
        };
        if step
            .as_ref()
            .is_some_and(|s| matches!(s.action, Action::Create | Action::Replace))
        {
            unknown.insert(id.to_string());
        }
        if let Some(mut s) = step {
            if vanished {
                s.physical_id = existing.map(|e| e.physical_id.clone());
            }
            steps.push(s);
        }
        if let Some(r) = in_state {
            for d in &r.deposed {
                steps.push(deposed_step(id, &r.type_name, d));
            }
        }
    }

    // Resources in state that the stack no longer declares, dependents first.
    let mut removed: Vec<&String> = state
        .resources
        .keys()
        .filter(|id| !graph.contains(id))
        .collect();
    removed.sort_by_key(|id| std::cmp::Reverse(depth(state, id)));
    for id in removed {
        let r = &state.resources[id];
        steps.push(Step {
            logical_id: id.clone(),
            type_name: r.type_name.clone(),
            action: Action::Delete,
            physical_id: Some(r.physical_id.clone()),
            reason: if stack.resources.is_empty() {
                "the stack is being destroyed".into()
            } else {
                "no longer in the stack".into()
            },
            changes: Vec::new(),
            replace_order: None,
            deposed: false,
            old_type: None,
        });
        for d in &r.deposed {
            steps.push(deposed_step(id, &r.type_name, d));
        }
    }
    Ok(steps)
}

fn deposed_step(id: &str, type_name: &str, d: &crate::state::Deposed) -> Step {
    Step {
        logical_id: id.to_string(),
        type_name: type_name.to_string(),
        action: Action::Delete,
        physical_id: Some(d.physical_id.clone()),
        reason: d
            .reason
            .clone()
            .unwrap_or_else(|| "an older object of this resource is still in the cloud".into()),
        changes: Vec::new(),
        replace_order: None,
        deposed: true,
        old_type: None,
    }
}

/// Length of the longest dependency chain below `id` in the state.
fn depth(state: &State, id: &str) -> usize {
    fn go(state: &State, id: &str, seen: &mut BTreeSet<String>) -> usize {
        if !seen.insert(id.to_string()) {
            return 0;
        }
        state.resources.get(id).map_or(0, |r| {
            1 + r
                .dependencies
                .iter()
                .map(|d| go(state, d, seen))
                .max()
                .unwrap_or(0)
        })
    }
    go(state, id, &mut BTreeSet::new())
}

/// Counts and the critical path of the steps.
pub fn summarize(
    steps: &[Step],
    graph: &StackGraph,
    registry: &Registry,
    stack: &StackSpec,
) -> (Summary, Option<CriticalPath>) {
    let mut s = Summary::default();
    for step in steps {
        match step.action {
            Action::Create => s.create += 1,
            Action::Update => s.update += 1,
            Action::Replace => s.replace += 1,
            Action::Delete => s.delete += 1,
        }
    }
    let changing: BTreeSet<&str> = steps
        .iter()
        .filter(|s| !s.deposed && s.action != Action::Delete)
        .map(|s| s.logical_id.as_str())
        .collect();
    s.unchanged = graph.len() - changing.len();
    if changing.is_empty() {
        return (s, None);
    }
    let specs = stack.by_id();
    let weight = |id: &str| {
        if !changing.contains(id) {
            return Duration::ZERO;
        }
        specs
            .get(id)
            .and_then(|r| registry.schema(&r.type_name))
            .map_or(Duration::ZERO, |sc| sc.typical_duration)
    };
    let (total, path) = graph.critical_path(weight);
    let resources = path
        .into_iter()
        .filter(|id| changing.contains(id.as_str()))
        .collect();
    (
        s,
        Some(CriticalPath {
            estimate_secs: total.as_secs(),
            resources,
        }),
    )
}

/// Whether `kind` values are documents worth a line diff.
pub(crate) fn is_document(kind: ValueKind, v: &Value) -> bool {
    kind == ValueKind::JsonDocument
        || matches!(v, Value::Object(m) if m.len() > 3)
        || matches!(v, Value::Array(a) if a.iter().any(Value::is_object))
}
