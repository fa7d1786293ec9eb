//! Diffs of list properties by element: which elements were added, removed
//! or changed, matching elements by the identity the schema gives (a
//! security-group rule by protocol, ports and source; an inline policy by
//! its name; a tag by its key), else by value. A policy document (a key
//! policy, a trust policy, an inline policy's document) is diffed by
//! statement, a statement named by its `Sid`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::satisfies;
use crate::schema::{PropertySchema, ValueKind};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElementDiff {
    /// In the cloud, not applied.
    pub added: Vec<Value>,
    /// Applied, gone from the cloud.
    pub removed: Vec<Value>,
    /// The same element (by identity) with other content.
    pub changed: Vec<ElementChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementChange {
    /// The element's identity, such as `PolicyName=orders`.
    pub id: String,
    pub expected: Value,
    pub actual: Value,
    /// For a policy: which of its statements differ.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub statements: Option<Box<ElementDiff>>,
}

impl ElementDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The fields that name an element of the property, from the schema, or a
/// tag's key for tag lists.
fn identity_of(p: &PropertySchema) -> Vec<String> {
    match (&p.identity, p.kind) {
        (Some(fields), _) => fields.clone(),
        (None, ValueKind::Tags) => vec!["Key".to_string()],
        _ => Vec::new(),
    }
}

/// An element's identity: its identity fields that it has, in order.
fn id(element: &Value, fields: &[String]) -> Option<String> {
    let o = element.as_object()?;
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|f| {
            let v = o.get(f)?;
            Some(format!(
                "{f}={}",
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The element diff of a list property, when both sides are lists (`None`
/// otherwise: a scalar or document drift is shown whole).
pub fn diff(p: &PropertySchema, expected: &Value, actual: &Value) -> Option<ElementDiff> {
    if p.kind == ValueKind::JsonDocument {
        return statements(expected, actual);
    }
    let (Value::Array(want), have) = (expected, actual) else {
        return None;
    };
    let empty = Vec::new();
    let have = match have {
        Value::Array(h) => h,
        Value::Null => &empty,
        _ => return None,
    };
    let fields = identity_of(p);
    let element_kind = if p.kind == ValueKind::DocumentSet {
        ValueKind::JsonDocument
    } else {
        ValueKind::Plain
    };
    let mut out = ElementDiff::default();
    let mut unmatched: Vec<&Value> = have.iter().collect();
    for w in want {
        // The same element, or failing that the one with its identity.
        if let Some(i) = unmatched
            .iter()
            .position(|h| satisfies(w, Some(h), element_kind))
        {
            unmatched.remove(i);
            continue;
        }
        let wid = id(w, &fields);
        match wid.as_ref().and_then(|wid| {
            unmatched
                .iter()
                .position(|h| id(h, &fields).as_ref() == Some(wid))
        }) {
            Some(i) => {
                let h = unmatched.remove(i);
                let statements = (p.kind == ValueKind::DocumentSet)
                    .then(|| statements(&w["PolicyDocument"], &h["PolicyDocument"]))
                    .flatten()
                    .filter(|d| !d.is_empty())
                    .map(Box::new);
                out.changed.push(ElementChange {
                    id: wid.unwrap_or_default(),
                    expected: w.clone(),
                    actual: h.clone(),
                    statements,
                })
            }
            None => out.removed.push(w.clone()),
        }
    }
    // A tag only the cloud has (the ownership tags, AWS's own, another
    // tool's) is not drift and nothing an apply removes: compared tags are
    // the keys the stack sets.
    if p.kind != ValueKind::Tags {
        out.added = unmatched.into_iter().cloned().collect();
    }
    Some(out)
}

/// The statements of two policy documents compared, a statement named by
/// its `Sid` (`None` when either is not a policy document).
pub fn statements(expected: &Value, actual: &Value) -> Option<ElementDiff> {
    fn of(doc: &Value) -> Option<Value> {
        let parsed;
        let doc = match doc {
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text).ok()?;
                &parsed
            }
            other => other,
        };
        match doc.get("Statement")? {
            Value::Array(list) => Some(Value::Array(list.clone())),
            one => Some(Value::Array(vec![one.clone()])),
        }
    }
    let by_sid = PropertySchema {
        kind: ValueKind::DocumentSet,
        identity: Some(vec!["Sid".into()]),
        ..Default::default()
    };
    diff(&by_sid, &of(expected)?, &of(actual)?)
}

/// In whose terms a diff is written: the cloud's (drift: what appeared,
/// what went, what became what) or the apply's (a plan: what it adds, what
/// it removes, what it changes from the cloud's value to the stack's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terms {
    Cloud,
    Apply,
}

/// An element diff's lines under a property, `indent` deep: `+` and `-`
/// elements, then each change as `~ id: from -> to`, or, for a policy, its
/// statements one level deeper; every value cut to `max` characters.
pub fn write_diff(out: &mut String, indent: &str, d: &ElementDiff, terms: Terms, max: usize) {
    use std::fmt::Write;
    let (plus, minus) = match terms {
        Terms::Cloud => (&d.added, &d.removed),
        Terms::Apply => (&d.removed, &d.added),
    };
    for e in plus {
        let _ = writeln!(out, "{indent}+ {}", short(e, max));
    }
    for e in minus {
        let _ = writeln!(out, "{indent}- {}", short(e, max));
    }
    for c in &d.changed {
        if let Some(s) = &c.statements {
            let _ = writeln!(out, "{indent}~ {}: {}", c.id, counts(s, terms));
            write_diff(out, &format!("{indent}    "), s, terms, max);
            continue;
        }
        let (from, to) = match terms {
            Terms::Cloud => (&c.expected, &c.actual),
            Terms::Apply => (&c.actual, &c.expected),
        };
        let _ = writeln!(
            out,
            "{indent}~ {}: {} -> {}",
            c.id,
            short(from, max),
            short(to, max)
        );
    }
}

/// "1 added, 0 removed, 2 changed" (cloud) or "1 to add, ..." (apply).
pub fn counts(d: &ElementDiff, terms: Terms) -> String {
    match terms {
        Terms::Cloud => format!(
            "{} added, {} removed, {} changed",
            d.added.len(),
            d.removed.len(),
            d.changed.len()
        ),
        Terms::Apply => format!(
            "{} to add, {} to remove, {} to change",
            d.removed.len(),
            d.added.len(),
            d.changed.len()
        ),
    }
}

/// The cloud's tags that an apply removes: those `previous` (what was
/// applied last) set and `want` no longer does.
pub fn dropped_tags(previous: &Value, want: &Value, have: &Value) -> Vec<Value> {
    let key = |v: &Value| v.get("Key").and_then(Value::as_str).map(String::from);
    let keys =
        |list: &Value| -> Vec<String> { elements(list).into_iter().filter_map(key).collect() };
    let (before, now) = (keys(previous), keys(want));
    elements(have)
        .into_iter()
        .filter(|t| key(t).is_some_and(|k| before.contains(&k) && !now.contains(&k)))
        .cloned()
        .collect()
}

/// The elements of a list; a single value is a list of one, `null` none.
pub(crate) fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A value on one line, cut to `max` characters (the JSON holds it whole).
pub fn short(v: &Value, max: usize) -> String {
    let text = v.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> PropertySchema {
        PropertySchema {
            kind: ValueKind::UnorderedList,
            identity: Some(
                ["IpProtocol", "FromPort", "ToPort", "CidrIp"]
                    .map(String::from)
                    .to_vec(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn one_added_rule_is_named_among_many_unchanged() {
        let applied: Vec<Value> = (0..10)
            .map(|i| json!({"IpProtocol": "tcp", "FromPort": 8000 + i, "ToPort": 8000 + i, "CidrIp": "10.0.0.0/16"}))
            .collect();
        let mut seen = applied.clone();
        seen.push(
            json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}),
        );
        let d = diff(&rules(), &Value::Array(applied), &Value::Array(seen)).unwrap();
        assert_eq!(d.added.len(), 1, "{d:?}");
        assert_eq!(d.added[0]["FromPort"], 22);
        assert!(d.removed.is_empty() && d.changed.is_empty(), "{d:?}");
    }

    #[test]
    fn policies_match_by_name_and_tags_by_key() {
        let policies = PropertySchema {
            kind: ValueKind::DocumentSet,
            identity: Some(vec!["PolicyName".into()]),
            ..Default::default()
        };
        let d = diff(
            &policies,
            &json!([{"PolicyName": "a", "PolicyDocument": {"Statement": []}}]),
            &json!([
                {"PolicyName": "a", "PolicyDocument": {"Statement": [{"Effect": "Allow"}]}},
                {"PolicyName": "b", "PolicyDocument": {}}
            ]),
        )
        .unwrap();
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].id, "PolicyName=a");
        assert_eq!(d.added.len(), 1);
        let tags = PropertySchema {
            kind: ValueKind::Tags,
            ..Default::default()
        };
        let d = diff(
            &tags,
            &json!([{"Key": "Team", "Value": "orders"}, {"Key": "Gone", "Value": "x"}]),
            &json!([{"Key": "Team", "Value": "someone"}]),
        )
        .unwrap();
        assert_eq!(d.changed[0].id, "Key=Team");
        assert_eq!(d.removed, vec![json!({"Key": "Gone", "Value": "x"})]);
        let d = diff(
            &tags,
            &json!([{"Key": "Team", "Value": "orders"}]),
            &json!([{"Key": "Team", "Value": "orders"}, {"Key": "fastcart:stack", "Value": "s"}]),
        )
        .unwrap();
        assert!(
            d.is_empty(),
            "a tag only the cloud has is not listed: {d:?}"
        );
    }

    #[test]
    fn a_policy_is_diffed_by_statement_named_by_its_sid() {
        let stream = json!({"Sid": "ReadStream", "Effect": "Allow",
                            "Action": ["kinesis:GetRecords"], "Resource": "arn:stream"});
        let logs = json!({"Sid": "WriteLogs", "Effect": "Allow",
                          "Action": "logs:PutLogEvents", "Resource": "arn:logs"});
        let wide = json!({"Effect": "Allow", "Action": "*", "Resource": "*"});
        let mut widened_stream = stream.clone();
        widened_stream["Action"] = json!(["kinesis:*"]);
        let applied = json!({"Version": "2012-10-17", "Statement": [stream, logs]});
        // Given as a string, as AWS returns documents.
        let seen =
            json!({"Version": "2012-10-17", "Statement": [widened_stream, logs, wide]}).to_string();
        let d = statements(&applied, &Value::String(seen.clone())).unwrap();
        assert_eq!(d.added, vec![wide.clone()]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].id, "Sid=ReadStream");
        assert!(d.removed.is_empty());
        // As a key policy (a document property) and inside an inline
        // policy (a set of documents), the same.
        let doc = PropertySchema {
            kind: ValueKind::JsonDocument,
            ..Default::default()
        };
        assert_eq!(
            diff(&doc, &applied, &Value::String(seen.clone())),
            Some(d.clone())
        );
        let policies = PropertySchema {
            kind: ValueKind::DocumentSet,
            identity: Some(vec!["PolicyName".into()]),
            ..Default::default()
        };
        let inline = diff(
            &policies,
            &json!([{"PolicyName": "p", "PolicyDocument": applied}]),
            &json!([{"PolicyName": "p", "PolicyDocument": seen}]),
        )
        .unwrap();
        assert_eq!(inline.changed[0].statements.as_deref(), Some(&d));
        let mut text = String::new();
        write_diff(&mut text, "", &inline, Terms::Cloud, 200);
        assert!(
            text.starts_with("~ PolicyName=p: 1 added, 0 removed, 1 changed\n"),
            "{text}"
        );
        assert!(text.contains("    + {\"Action\":\"*\""), "{text}");
        assert!(text.contains("    ~ Sid=ReadStream: "), "{text}");
        assert!(statements(&json!("not json"), &applied).is_none());
    }

    #[test]
    fn values_that_are_not_lists_have_no_element_diff() {
        let p = PropertySchema::default();
        assert!(diff(&p, &json!(24), &json!(48)).is_none());
        assert!(diff(&p, &json!(["a"]), &json!("a")).is_none());
        assert_eq!(short(&json!("abcdefghij"), 6), "\"abcd…");
    }
}
