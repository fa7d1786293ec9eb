//! Drift: differences between what fastcart last applied and what the cloud
//! holds now, found without changing anything.
//!
//! Expected values come from the state (what was applied), not from the
//! stack definition, so an unapplied edit is not drift. Write-only
//! properties are never read back and so never drift.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::satisfies;
use crate::driver::{Found, Registry};
use crate::plan::Observations;
use crate::state::State;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyDrift {
    pub path: String,
    pub expected: Value,
    /// `null` when the cloud no longer reports the property.
    pub actual: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftedResource {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub physical_id: String,
    pub properties: Vec<PropertyDrift>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRef {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub physical_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub stack: String,
    pub env: String,
    /// Resources whose properties changed outside fastcart.
    pub drifted: Vec<DriftedResource>,
    /// Resources deleted outside fastcart.
    pub deleted: Vec<ResourceRef>,
    /// Resources carrying this stack's ownership tags that the state does not know.
    pub unmanaged: Vec<ResourceRef>,
    /// Resources checked.
    pub checked: usize,
}

impl DriftReport {
    pub fn has_drift(&self) -> bool {
        !(self.drifted.is_empty() && self.deleted.is_empty() && self.unmanaged.is_empty())
    }

    /// Plain text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.has_drift() {
            let _ = writeln!(
                out,
                "No drift: {} resource{} of {}-{} match what fastcart applied.",
                self.checked,
                if self.checked == 1 { "" } else { "s" },
                self.stack,
                self.env
            );
            return out;
        }
        let _ = writeln!(out, "Drift in {}-{}:", self.stack, self.env);
        for r in &self.drifted {
            let _ = writeln!(
                out,
                "\n  ~ {}  {}  ({})",
                r.logical_id, r.type_name, r.physical_id
            );
            for p in &r.properties {
                let _ = writeln!(
                    out,
                    "      {}: expected {}, actual {}",
                    p.path, p.expected, p.actual
                );
            }
        }
        for r in &self.deleted {
            let _ = writeln!(
                out,
                "\n  - {}  {}  ({}) was deleted outside fastcart",
                r.logical_id, r.type_name, r.physical_id
            );
        }
        for r in &self.unmanaged {
            let _ = writeln!(
                out,
                "\n  ? {}  ({}) carries this stack's tags (logical id {}) but is not in its state",
                r.type_name, r.physical_id, r.logical_id
            );
        }
        let _ = writeln!(
            out,
            "\n{} drifted, {} deleted, {} unmanaged, of {} checked. `fastcart apply` restores what the stack declares; it leaves unmanaged resources alone.",
            self.drifted.len(),
            self.deleted.len(),
            self.unmanaged.len(),
            self.checked
        );
        out
    }

    /// A Markdown report for people.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# Drift report: {}-{}\n\n", self.stack, self.env);
        if !self.has_drift() {
            let _ = writeln!(out, "No drift. {} resources checked.", self.checked);
            return out;
        }
        let _ = writeln!(
            out,
            "{} drifted, {} deleted outside fastcart, {} unmanaged, of {} checked.\n",
            self.drifted.len(),
            self.deleted.len(),
            self.unmanaged.len(),
            self.checked
        );
        if !self.drifted.is_empty() {
            out.push_str("## Changed properties\n\n| Resource | Type | Physical id | Property | Expected | Actual |\n|---|---|---|---|---|---|\n");
            for r in &self.drifted {
                for p in &r.properties {
                    let _ = writeln!(
                        out,
                        "| {} | {} | `{}` | {} | `{}` | `{}` |",
                        r.logical_id,
                        r.type_name,
                        r.physical_id,
                        p.path,
                        cell(&p.expected),
                        cell(&p.actual)
                    );
                }
            }
            out.push('\n');
        }
        for (title, list) in [
            ("Deleted outside fastcart", &self.deleted),
            (
                "Unmanaged (tagged as this stack's, not in state)",
                &self.unmanaged,
            ),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "## {title}\n\n| Resource | Type | Physical id |\n|---|---|---|"
            );
            for r in list {
                let _ = writeln!(
                    out,
                    "| {} | {} | `{}` |",
                    r.logical_id, r.type_name, r.physical_id
                );
            }
            out.push('\n');
        }
        out
    }
}

fn cell(v: &Value) -> String {
    v.to_string().replace('|', "\\|").replace('`', "'")
}

/// Compares the applied state with the cloud. `found` holds what the
/// ownership-tag search returned, per type.
pub fn detect(
    state: &State,
    observed: &Observations,
    registry: &Registry,
    found: &[(String, Found)],
) -> DriftReport {
    let mut report = DriftReport {
        stack: state.stack.clone(),
        env: state.env.clone(),
        checked: state.resources.len(),
        ..DriftReport::default()
    };
    for (id, r) in &state.resources {
        let rref = || ResourceRef {
            logical_id: id.clone(),
            type_name: r.type_name.clone(),
            physical_id: r.physical_id.clone(),
        };
        let Some(Some(seen)) = observed.resources.get(id) else {
            report.deleted.push(rref());
            continue;
        };
        let Some(schema) = registry.schema(&r.type_name) else {
            continue;
        };
        let properties: Vec<PropertyDrift> = r
            .properties
            .iter()
            .filter(|(k, _)| !schema.is_write_only(k))
            .filter(|(k, v)| !satisfies(v, seen.properties.get(*k), schema.kind_of(k)))
            .map(|(k, v)| PropertyDrift {
                path: k.clone(),
                expected: v.clone(),
                actual: seen.properties.get(k).cloned().unwrap_or(Value::Null),
            })
            .collect();
        if !properties.is_empty() {
            report.drifted.push(DriftedResource {
                logical_id: id.clone(),
                type_name: r.type_name.clone(),
                physical_id: r.physical_id.clone(),
                properties,
            });
        }
    }
    let known: BTreeSet<&str> = state
        .resources
        .values()
        .flat_map(|r| {
            std::iter::once(r.physical_id.as_str())
                .chain(r.deposed.iter().map(|d| d.physical_id.as_str()))
        })
        .collect();
    for (type_name, f) in found {
        if !known.contains(f.physical_id.as_str()) {
            report.unmanaged.push(ResourceRef {
                logical_id: f.logical_id.clone(),
                type_name: type_name.clone(),
                physical_id: f.physical_id.clone(),
            });
        }
    }
    report
}
