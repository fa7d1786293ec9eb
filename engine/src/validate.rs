//! Validation of a stack against the drivers' schemas. Every problem is
//! reported at once, each with a message a person can act on.

use std::collections::{BTreeMap, HashMap, HashSet};

use miette::Diagnostic;
use thiserror::Error;

use serde_json::Value;

use crate::constraint::{values_at, Constraints};
use crate::driver::{Ownership, Registry};
use crate::graph::StackGraph;
use crate::lookup::{lookups, LOOKUP};
use crate::model::{ResourceSpec, StackSpec};
use crate::resolve::references;
use crate::schema::PropertySchema;

#[derive(Debug, Clone, PartialEq, Error, Diagnostic)]
pub enum Problem {
    #[error("resource {logical_id} has unknown type {type_name}")]
    #[diagnostic(code(fastcart::unknown_type), help("{help}"))]
    UnknownType {
        logical_id: String,
        type_name: String,
        help: String,
    },
    #[error("resource {logical_id} ({type_name}) sets unknown property {property}")]
    #[diagnostic(code(fastcart::unknown_property), help("{help}"))]
    UnknownProperty {
        logical_id: String,
        type_name: String,
        property: String,
        help: String,
    },
    #[error("resource {logical_id} ({type_name}) is missing required property {property}")]
    #[diagnostic(
        code(fastcart::missing_property),
        help("set {property} on {logical_id}")
    )]
    MissingRequired {
        logical_id: String,
        type_name: String,
        property: String,
    },
    #[error("{place} refers to {target}, which is not a resource of this stack")]
    #[diagnostic(code(fastcart::unknown_reference), help("{help}"))]
    UnknownTarget {
        place: String,
        target: String,
        help: String,
    },
    #[error("{place} reads attribute {attribute} of {target}, which {type_name} does not have")]
    #[diagnostic(code(fastcart::unknown_attribute), help("{help}"))]
    UnknownAttribute {
        place: String,
        target: String,
        type_name: String,
        attribute: String,
        help: String,
    },
    #[error("resource {logical_id} ({type_name}): {property} {rule}: {value}")]
    #[diagnostic(
        code(fastcart::not_accepted),
        help(
            "AWS refuses this value: change it in the stack, or, where it is built from the environment suffix, choose another --env"
        )
    )]
    NotAccepted {
        logical_id: String,
        type_name: String,
        property: String,
        value: String,
        rule: String,
    },
    #[error("resource {logical_id} sets {property} for creation only, but does not set it")]
    #[diagnostic(
        code(fastcart::initial_only_unset),
        help("give {property} a value with ResourceSpec::initial, or drop it from initial_only")
    )]
    InitialOnlyUnset {
        logical_id: String,
        property: String,
    },
    #[error("{place} holds a malformed intrinsic function: {message}")]
    #[diagnostic(code(fastcart::malformed_intrinsic))]
    Malformed { place: String, message: String },
    #[error("{place} looks up {name} of {type_name}, which {why}")]
    #[diagnostic(code(fastcart::unknown_lookup), help("{help}"))]
    UnknownLookup {
        place: String,
        type_name: String,
        name: String,
        why: String,
        help: String,
    },
    #[error("logical id {logical_id} is declared {count} times")]
    #[diagnostic(
        code(fastcart::duplicate_id),
        help("give each resource its own logical id")
    )]
    DuplicateId { logical_id: String, count: usize },
    #[error("dependency cycle between {}", members.join(", "))]
    #[diagnostic(
        code(fastcart::cycle),
        help("resources cannot wait for each other: remove one of the references or DependsOn entries between {}", members.join(", "))
    )]
    Cycle { members: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Error, Diagnostic)]
#[error("stack {stack} is not valid: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" })]
#[diagnostic(
    code(fastcart::invalid_stack),
    help("fix the problems listed below; nothing was read from or sent to the cloud")
)]
pub struct ValidationErrors {
    pub stack: String,
    #[related]
    pub problems: Vec<Problem>,
}

fn suggest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(wanted.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> String {
    let all: Vec<&str> = candidates.into_iter().collect();
    let list = if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    };
    match suggest(wanted, all.iter().copied()) {
        Some(s) => format!("did you mean {s}? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}

fn sorted<'a>(ids: &HashSet<&'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = ids.iter().copied().collect();
    v.sort_unstable();
    v
}

/// Every rule AWS would break the property `name` of `r` on, in its value
/// and in the values inside it.
fn judge(
    r: &ResourceSpec,
    name: &str,
    value: &Value,
    p: &PropertySchema,
    problems: &mut Vec<Problem>,
) {
    if p.constraints.is_empty() && p.nested.is_empty() {
        return;
    }
    not_accepted(r, name.to_string(), &p.constraints, value, problems);
    for (path, c) in &p.nested {
        for (at, v) in values_at(value, path) {
            not_accepted(r, format!("{name}{at}"), c, v, problems);
        }
    }
}

fn not_accepted(
    r: &ResourceSpec,
    place: String,
    c: &Constraints,
    value: &Value,
    problems: &mut Vec<Problem>,
) {
    for rule in c.broken_by(value) {
        problems.push(Problem::NotAccepted {
            logical_id: r.logical_id.clone(),
            type_name: r.type_name.clone(),
            property: place.clone(),
            value: value
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| value.to_string()),
            rule,
        });
    }
}

/// Every `Fastcart::Lookup` in an output names a registered type and one of
/// its lookups.
fn check_lookups(place: String, value: &Value, registry: &Registry, problems: &mut Vec<Problem>) {
    let calls = match lookups(value) {
        Ok(c) => c,
        Err(message) => {
            problems.push(Problem::Malformed { place, message });
            return;
        }
    };
    for call in calls {
        let (why, help) = match registry.schema(call.type_name) {
            None => (
                "is not a registered type".to_string(),
                did_you_mean(
                    call.type_name,
                    registry
                        .schemas()
                        .filter(|s| !s.lookups.is_empty())
                        .map(|s| s.type_name.as_str()),
                    "types with lookups",
                ),
            ),
            Some(s) if !s.lookups.iter().any(|l| l == call.name) => (
                "it does not offer".to_string(),
                did_you_mean(
                    call.name,
                    s.lookups.iter().map(String::as_str),
                    &format!("lookups of {}", s.type_name),
                ),
            ),
            Some(_) => continue,
        };
        problems.push(Problem::UnknownLookup {
            place: place.clone(),
            type_name: call.type_name.to_string(),
            name: call.name.to_string(),
            why,
            help,
        });
    }
}

/// Checks the stack against the registry's schemas and builds its graph.
pub fn validate(stack: &StackSpec, registry: &Registry) -> Result<StackGraph, ValidationErrors> {
    let mut problems = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &stack.resources {
        *counts.entry(&r.logical_id).or_default() += 1;
    }
    for (id, &count) in &counts {
        if count > 1 {
            problems.push(Problem::DuplicateId {
                logical_id: id.to_string(),
                count,
            });
        }
    }
    let ids: HashSet<&str> = counts.keys().copied().collect();
    let type_of: HashMap<&str, &str> = stack
        .resources
        .iter()
        .map(|r| (r.logical_id.as_str(), r.type_name.as_str()))
        .collect();

    let check_refs = |place: String, value: &serde_json::Value, problems: &mut Vec<Problem>| {
        let refs = match references(value) {
            Ok(r) => r,
            Err(message) => {
                problems.push(Problem::Malformed { place, message });
                return Vec::new();
            }
        };
        let mut deps = Vec::new();
        for r in refs {
            let Some(&target) = ids.get(r.target.as_str()) else {
                problems.push(Problem::UnknownTarget {
                    help: did_you_mean(&r.target, sorted(&ids), "resources of the stack"),
                    place: place.clone(),
                    target: r.target,
                });
                continue;
            };
            if let (Some(attr), Some(schema)) = (&r.attribute, registry.schema(type_of[target])) {
                if !schema.attributes.iter().any(|a| a == attr) {
                    problems.push(Problem::UnknownAttribute {
                        help: did_you_mean(
                            attr,
                            schema.attributes.iter().map(String::as_str),
                            &format!("attributes of {}", schema.type_name),
                        ),
                        place: place.clone(),
                        target: target.to_string(),
                        type_name: schema.type_name.clone(),
                        attribute: attr.clone(),
                    });
                }
            }
            deps.push(target);
        }
        deps
    };

    let owner = Ownership::of(stack);
    let mut nodes = Vec::new();
    for r in &stack.resources {
        let mut deps = Vec::new();
        match registry.schema(&r.type_name) {
            None => problems.push(Problem::UnknownType {
                help: did_you_mean(&r.type_name, registry.type_names(), "supported types"),
                logical_id: r.logical_id.clone(),
                type_name: r.type_name.clone(),
            }),
            Some(schema) => {
                for name in r.properties.keys() {
                    if schema.property(name).is_none() {
                        problems.push(Problem::UnknownProperty {
                            help: did_you_mean(
                                name,
                                schema.properties.keys().map(String::as_str),
                                &format!("properties of {}", schema.type_name),
                            ),
                            logical_id: r.logical_id.clone(),
                            type_name: r.type_name.clone(),
                            property: name.clone(),
                        });
                    }
                }
                for (name, value) in &r.properties {
                    if let Some(p) = schema.property(name) {
                        judge(r, name, value, p, &mut problems);
                    }
                }
                // The tags each resource is created with (the stack's and
                // the ownership tags, which carry the environment) are
                // values AWS judges too.
                if let Some(p) = schema.property("Tags").filter(|_| schema.taggable) {
                    let (key, value) = (p.nested.get("*/Key"), p.nested.get("*/Value"));
                    if key.is_some() || value.is_some() {
                        for (k, v) in owner.tags_for(&r.logical_id, &stack.tags) {
                            let key_place = format!("tag key {k}");
                            let tag_place = format!("tag {k}");
                            let (k, v) = (Value::String(k), Value::String(v));
                            let pairs = [(key_place, key, &k), (tag_place, value, &v)];
                            for (place, c, v) in pairs {
                                if let Some(c) = c {
                                    not_accepted(r, place, c, v, &mut problems);
                                }
                            }
                        }
                    }
                }
                for (name, p) in &schema.properties {
                    if p.required && !r.properties.contains_key(name) {
                        problems.push(Problem::MissingRequired {
                            logical_id: r.logical_id.clone(),
                            type_name: r.type_name.clone(),
                            property: name.clone(),
                        });
                    }
                }
            }
        }
        for (name, value) in &r.properties {
            let place = format!("property {name} of {}", r.logical_id);
            if matches!(lookups(value), Ok(l) if !l.is_empty()) {
                problems.push(Problem::Malformed {
                    place: place.clone(),
                    message: format!(
                        "{LOOKUP} is for outputs only: a property's value must not change behind \
                         the plan's back; use Ref or Fn::GetAtt"
                    ),
                });
            }
            deps.extend(check_refs(place, value, &mut problems));
        }
        for name in &r.initial_only {
            if !r.properties.contains_key(name) {
                problems.push(Problem::InitialOnlyUnset {
                    logical_id: r.logical_id.clone(),
                    property: name.clone(),
                });
            }
        }
        for d in &r.depends_on {
            match ids.get(d.as_str()) {
                Some(&t) => deps.push(t),
                None => problems.push(Problem::UnknownTarget {
                    help: did_you_mean(d, sorted(&ids), "resources of the stack"),
                    place: format!("DependsOn of {}", r.logical_id),
                    target: d.clone(),
                }),
            }
        }
        nodes.push((r.logical_id.as_str(), deps));
    }
    for (name, value) in &stack.outputs {
        check_refs(format!("output {name}"), value, &mut problems);
        check_lookups(format!("output {name}"), value, registry, &mut problems);
    }

    // Duplicate ids would make the graph ambiguous; report the rest first.
    let graph = if problems
        .iter()
        .any(|p| matches!(p, Problem::DuplicateId { .. }))
    {
        None
    } else {
        match StackGraph::build(nodes) {
            Ok(g) => Some(g),
            Err(cycles) => {
                problems.extend(
                    cycles
                        .0
                        .into_iter()
                        .map(|members| Problem::Cycle { members }),
                );
                None
            }
        }
    };
    match graph {
        Some(g) if problems.is_empty() => Ok(g),
        _ => Err(ValidationErrors {
            stack: stack.qualified_name(),
            problems,
        }),
    }
}
