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
use crate::elements::{counts, elements, short, write_diff, ElementDiff, Terms};
use crate::plan::Observations;
use crate::schema::Guard;
use crate::state::State;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyDrift {
    pub path: String,
    pub expected: Value,
    /// `null` when the cloud no longer reports the property.
    pub actual: Value,
    /// What the change means for security, when the schema says the
    /// property guards the resource and the change weakens it ("ingress
    /// opened to 0.0.0.0/0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<String>,
    /// For a list property: which elements were added, removed or changed
    /// (with full values; the text and the report shorten them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elements: Option<ElementDiff>,
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

    /// The security findings: `(logical id, property, what it means)`.
    pub fn security_findings(&self) -> Vec<(&str, &str, &str)> {
        self.drifted
            .iter()
            .flat_map(|r| {
                r.properties.iter().filter_map(move |p| {
                    Some((
                        r.logical_id.as_str(),
                        p.path.as_str(),
                        p.security.as_deref()?,
                    ))
                })
            })
            .collect()
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
                if let Some(s) = &p.security {
                    let _ = writeln!(out, "      ! SECURITY: {}: {s}", p.path);
                }
                match &p.elements {
                    Some(d) => {
                        let _ = writeln!(out, "      {}: {}", p.path, counts(d, Terms::Cloud));
                        write_diff(&mut out, "        ", d, Terms::Cloud, SHORT);
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "      {}: expected {}, actual {}",
                            p.path,
                            short(&p.expected, SHORT),
                            short(&p.actual, SHORT)
                        );
                    }
                }
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
        let findings = self.security_findings().len();
        if findings > 0 {
            let _ = writeln!(
                out,
                "\n{findings} security finding{} (marked SECURITY above): a change outside fastcart weakened what the stack protects.",
                if findings == 1 { "" } else { "s" }
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
        let findings = self.security_findings();
        if !findings.is_empty() {
            out.push_str(
                "## Security findings\n\n| Resource | Property | Finding |\n|---|---|---|\n",
            );
            for (id, path, what) in &findings {
                let _ = writeln!(out, "| {id} | {path} | **{}** |", what.replace('|', "\\|"));
            }
            out.push('\n');
        }
        if !self.drifted.is_empty() {
            out.push_str("## Changed properties\n\n| Resource | Type | Physical id | Property | Expected | Actual |\n|---|---|---|---|---|---|\n");
            for r in &self.drifted {
                for p in &r.properties {
                    let (expected, actual) = match &p.elements {
                        Some(d) => element_cells(d),
                        None => (
                            format!("`{}`", cell(&p.expected)),
                            format!("`{}`", cell(&p.actual)),
                        ),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | `{}` | {} | {expected} | {actual} |",
                        r.logical_id, r.type_name, r.physical_id, p.path,
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

/// What a drift of a guarding property means, when it weakens it.
pub fn weakened(guard: Guard, expected: &Value, actual: &Value) -> Option<String> {
    match guard {
        Guard::Ingress => {
            // A rule counts as applied when an applied rule matches it by
            // the keys the stack gave (AWS reports more).
            let applied = elements(expected);
            let opened: BTreeSet<&str> = elements(actual)
                .into_iter()
                .filter(|e| {
                    !applied
                        .iter()
                        .any(|a| satisfies(a, Some(e), crate::schema::ValueKind::Plain))
                })
                .flat_map(|e| strings(e).into_iter().filter(|s| OPEN.contains(s)))
                .collect();
            (!opened.is_empty()).then(|| {
                format!(
                    "ingress opened to {}",
                    opened.into_iter().collect::<Vec<_>>().join(" and ")
                )
            })
        }
        Guard::Policy => {
            let before = wildcards(expected);
            let after = wildcards(actual);
            let widened: Vec<&str> = ["actions", "resources"]
                .into_iter()
                .zip([after.0 > before.0, after.1 > before.1])
                .filter_map(|(what, more)| more.then_some(what))
                .collect();
            (!widened.is_empty()).then(|| format!("policy widened to * {}", widened.join(" and ")))
        }
        Guard::Protection => {
            (is_on(expected) && !is_on(actual)).then(|| "protection turned off".to_string())
        }
        Guard::Exposure => (switched_on(actual) > switched_on(expected))
            .then(|| "public access turned on".to_string()),
    }
}

const OPEN: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// Every string anywhere in a value.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// `Allow` statements granting `*` actions and `*` resources, counted over
/// every policy document in a value (documents given as JSON text too).
fn wildcards(v: &Value) -> (usize, usize) {
    match v {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(doc @ (Value::Object(_) | Value::Array(_))) => wildcards(&doc),
            _ => (0, 0),
        },
        Value::Array(items) => items.iter().map(wildcards).fold((0, 0), add),
        Value::Object(m) => {
            let own = if m.get("Effect").and_then(Value::as_str) == Some("Allow") {
                let star = |key: &str| m.get(key).is_some_and(|a| strings(a).contains(&"*"));
                (usize::from(star("Action")), usize::from(star("Resource")))
            } else {
                (0, 0)
            };
            m.values().map(wildcards).fold(own, add)
        }
        _ => (0, 0),
    }
}

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0 + b.0, a.1 + b.1)
}

/// Whether a protection is there: anything but absent, `false`, empty or a
/// "disabled" word (in an object or list: any of its values).
fn is_on(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(
            s.to_ascii_lowercase().as_str(),
            "" | "false" | "disabled" | "none" | "off"
        ),
        Value::Array(a) => a.iter().any(is_on),
        // `{"ScanOnPush": false}` is off; `{"EncryptionType": "KMS"}` on.
        Value::Object(m) => m.values().any(is_on),
        Value::Number(_) => true,
    }
}

/// How many switches in a value are on (`true`, `"true"`, `"ENABLED"`).
fn switched_on(v: &Value) -> usize {
    match v {
        Value::Bool(true) => 1,
        Value::String(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("enabled") => {
            1
        }
        Value::Array(items) => items.iter().map(switched_on).sum(),
        Value::Object(m) => m.values().map(switched_on).sum(),
        _ => 0,
    }
}

/// How long a value may be on a line of the text or the report.
const SHORT: usize = 120;

/// A list property's drift in the report's Expected and Actual cells: what
/// was applied and is gone, and what is there and was not applied.
fn element_cells(d: &ElementDiff) -> (String, String) {
    let item = |sign: &str, v: &Value| format!("{sign} `{}`", cell_str(&short(v, SHORT)));
    let expected: Vec<String> = d
        .removed
        .iter()
        .map(|v| item("−", v))
        .chain(d.changed.iter().map(|c| item("~", &c.expected)))
        .collect();
    let actual: Vec<String> = d
        .added
        .iter()
        .map(|v| item("+", v))
        .chain(d.changed.iter().map(|c| item("~", &c.actual)))
        .collect();
    let join = |v: Vec<String>, none: &str| {
        if v.is_empty() {
            none.to_string()
        } else {
            v.join("<br>")
        }
    };
    (
        join(expected, "(none missing)"),
        join(actual, "(none added)"),
    )
}

fn cell_str(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
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
            .filter(|(k, _)| !schema.is_write_only(k) && !r.initial_only.contains(k))
            .filter(|(k, v)| !satisfies(v, seen.properties.get(*k), schema.kind_of(k)))
            .map(|(k, v)| {
                let actual = seen.properties.get(k).cloned().unwrap_or(Value::Null);
                let p = schema.property(k).cloned().unwrap_or_default();
                PropertyDrift {
                    path: k.clone(),
                    security: p.guard.and_then(|g| weakened(g, v, &actual)),
                    elements: crate::elements::diff(&p, v, &actual).filter(|d| !d.is_empty()),
                    expected: v.clone(),
                    actual,
                }
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

#[cfg(test)]
mod security_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress_opened_to_the_world_is_a_finding_and_an_applied_open_rule_is_not() {
        let applied = json!([{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "SourceSecurityGroupId": "sg-1"}]);
        let opened = json!([
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "SourceSecurityGroupId": "sg-1", "Description": ""},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}
        ]);
        assert_eq!(
            weakened(Guard::Ingress, &applied, &opened).as_deref(),
            Some("ingress opened to 0.0.0.0/0")
        );
        // The load balancer's own 80 from anywhere, as applied: no finding
        // when only another rule changed.
        let lb =
            json!([{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"}]);
        let lb_more = json!([
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"}
        ]);
        assert_eq!(weakened(Guard::Ingress, &lb, &lb_more), None);
        let v6 = json!([{"IpProtocol": "-1", "CidrIpv6": "::/0"}]);
        assert_eq!(
            weakened(Guard::Ingress, &json!([]), &v6).as_deref(),
            Some("ingress opened to ::/0")
        );
    }

    #[test]
    fn a_policy_widened_to_wildcards_is_a_finding() {
        let scoped = json!([{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": ["kinesis:GetRecords"], "Resource": "arn:aws:kinesis:r:1:stream/s"}
        ]}}]);
        let widened = json!([
            {"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": ["kinesis:GetRecords"], "Resource": "arn:aws:kinesis:r:1:stream/s"}
            ]}},
            {"PolicyName": "x", "PolicyDocument": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"}
        ]);
        assert_eq!(
            weakened(Guard::Policy, &scoped, &widened).as_deref(),
            Some("policy widened to * actions and resources")
        );
        let denied = json!([{"PolicyName": "d", "PolicyDocument": {"Statement": [
            {"Effect": "Deny", "Action": "*", "Resource": "*"}
        ]}}]);
        assert_eq!(
            weakened(Guard::Policy, &scoped, &denied),
            None,
            "a Deny widens nothing"
        );
    }

    #[test]
    fn protection_off_and_exposure_on_are_findings_and_the_reverse_is_not() {
        assert!(weakened(Guard::Protection, &json!(true), &json!(false)).is_some());
        assert!(weakened(
            Guard::Protection,
            &json!({"EncryptionType": "KMS", "KeyId": "k"}),
            &Value::Null
        )
        .is_some());
        assert!(weakened(Guard::Protection, &json!(false), &json!(true)).is_none());
        assert!(weakened(Guard::Protection, &json!("key-1"), &json!("key-2")).is_none());
        assert!(weakened(
            Guard::Protection,
            &json!({"ScanOnPush": true}),
            &json!({"ScanOnPush": false})
        )
        .is_some());
        assert!(weakened(Guard::Exposure, &json!(false), &json!(true)).is_some());
        assert!(weakened(
            Guard::Exposure,
            &json!({"AwsvpcConfiguration": {"AssignPublicIp": "DISABLED"}}),
            &json!({"AwsvpcConfiguration": {"AssignPublicIp": "ENABLED"}})
        )
        .is_some());
        assert!(weakened(Guard::Exposure, &json!(true), &json!(false)).is_none());
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;
    use crate::schema::{PropertySchema, ValueKind};
    use serde_json::json;

    /// A report with one rule added among many, a policy widened, and a
    /// plain value changed: every rendering names the one element.
    fn report() -> DriftReport {
        let rules = PropertySchema {
            kind: ValueKind::UnorderedList,
            identity: Some(
                ["IpProtocol", "FromPort", "ToPort", "CidrIp"]
                    .map(String::from)
                    .to_vec(),
            ),
            guard: Some(Guard::Ingress),
            ..Default::default()
        };
        let applied: Vec<Value> = (0..8)
            .map(|i| json!({"IpProtocol": "tcp", "FromPort": 8000 + i, "ToPort": 8000 + i, "CidrIp": "10.0.0.0/16", "Description": "internal service port, kept long on purpose to be cut"}))
            .collect();
        let mut seen = applied.clone();
        seen.push(
            json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}),
        );
        let (applied, seen) = (Value::Array(applied), Value::Array(seen));
        let policies = PropertySchema {
            kind: ValueKind::DocumentSet,
            identity: Some(vec!["PolicyName".into()]),
            guard: Some(Guard::Policy),
            ..Default::default()
        };
        let scoped = json!([{"PolicyName": "read", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "kinesis:GetRecords", "Resource": "arn:aws:kinesis:eu-central-1:1:stream/orders"}]}}]);
        let widened = json!([{"PolicyName": "read", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}]);
        let drift =
            |schema: &PropertySchema, path: &str, expected: &Value, actual: &Value| PropertyDrift {
                path: path.into(),
                security: schema.guard.and_then(|g| weakened(g, expected, actual)),
                elements: crate::elements::diff(schema, expected, actual),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        DriftReport {
            stack: "fastcart".into(),
            env: "dev".into(),
            checked: 3,
            drifted: vec![
                DriftedResource {
                    logical_id: "EcsSecurityGroup".into(),
                    type_name: "AWS::EC2::SecurityGroup".into(),
                    physical_id: "sg-1".into(),
                    properties: vec![drift(&rules, "SecurityGroupIngress", &applied, &seen)],
                },
                DriftedResource {
                    logical_id: "TaskRole".into(),
                    type_name: "AWS::IAM::Role".into(),
                    physical_id: "fastcart-task".into(),
                    properties: vec![drift(&policies, "Policies", &scoped, &widened)],
                },
                DriftedResource {
                    logical_id: "OrdersStream".into(),
                    type_name: "AWS::Kinesis::Stream".into(),
                    physical_id: "orders".into(),
                    properties: vec![drift(
                        &PropertySchema::default(),
                        "RetentionPeriodHours",
                        &json!(24),
                        &json!(48),
                    )],
                },
            ],
            ..DriftReport::default()
        }
    }

    #[test]
    fn drift_text_names_the_elements_and_the_findings() {
        insta::assert_snapshot!(report().render());
    }

    #[test]
    fn drift_markdown_names_the_elements_and_the_findings() {
        insta::assert_snapshot!(report().to_markdown());
    }

    #[test]
    fn drift_json_keeps_whole_values() {
        insta::assert_json_snapshot!(report());
    }
}
