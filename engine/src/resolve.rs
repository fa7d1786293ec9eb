//! Intrinsic functions: finding the references in a value, and replacing them
//! with real values once the resources they name exist.
//!
//! One parser ([`parse`]) serves both directions, so what validation accepts
//! and what the walker can resolve never disagree.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::CloudContext;

pub const PSEUDO_PARAMETERS: [&str; 3] = ["AWS::Region", "AWS::AccountId", "AWS::Partition"];

/// What another resource has published: its physical id (`Ref`) and its
/// attributes (`Fn::GetAtt`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub physical_id: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// The published values of the resources that are known now. A resource that
/// is absent is "known after apply".
pub type Known = BTreeMap<String, Published>;

/// Where resolution looks up other resources' published values; `None` means
/// "known after apply".
pub trait Lookup {
    fn physical_id(&self, id: &str) -> Option<&str>;
    fn attributes(&self, id: &str) -> Option<&Map<String, Value>>;
}

impl Lookup for Known {
    fn physical_id(&self, id: &str) -> Option<&str> {
        self.get(id).map(|p| p.physical_id.as_str())
    }
    fn attributes(&self, id: &str) -> Option<&Map<String, Value>> {
        self.get(id).map(|p| &p.attributes)
    }
}

/// A reference from one value to another resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub target: String,
    /// `None` for `Ref`, the attribute for `Fn::GetAtt`.
    pub attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// The value depends on these resources, which do not exist yet (or are
    /// about to be replaced): it is known after apply.
    KnownAfterApply(BTreeSet<String>),
    /// The value cannot be resolved at all; the message says why.
    Invalid(String),
}

enum SubPart<'a> {
    Literal(String),
    Var(&'a str),
}

enum Intrinsic<'a> {
    Ref(&'a str),
    GetAtt(&'a str, &'a str),
    Sub(Vec<SubPart<'a>>, Option<&'a Map<String, Value>>),
    Join(&'a str, &'a Value),
    Select(usize, &'a Value),
    GetAzs,
}

/// Recognizes an intrinsic function. `None` when the value is not one;
/// `Some(Err)` when it is one but malformed.
fn parse(value: &Value) -> Option<Result<Intrinsic<'_>, String>> {
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (key, arg) = obj.iter().next()?;
    let parsed = match key.as_str() {
        "Ref" => arg
            .as_str()
            .map(Intrinsic::Ref)
            .ok_or_else(|| "Ref takes a string".to_string()),
        "Fn::GetAtt" => parse_get_att(arg),
        "Fn::Sub" => parse_sub(arg),
        "Fn::Join" => match arg.as_array().map(Vec::as_slice) {
            Some([Value::String(d), parts]) if parts.is_array() || parse(parts).is_some() => {
                Ok(Intrinsic::Join(d, parts))
            }
            _ => Err("Fn::Join takes [delimiter, [values]]".to_string()),
        },
        "Fn::Select" => match arg.as_array().map(Vec::as_slice) {
            Some([index, list]) => index
                .as_u64()
                .or_else(|| index.as_str().and_then(|s| s.parse().ok()))
                .map(|i| Intrinsic::Select(i as usize, list))
                .ok_or_else(|| "Fn::Select takes [index, list]".to_string()),
            _ => Err("Fn::Select takes [index, list]".to_string()),
        },
        "Fn::GetAZs" => Ok(Intrinsic::GetAzs),
        _ => return None,
    };
    Some(parsed)
}

fn parse_get_att(arg: &Value) -> Result<Intrinsic<'_>, String> {
    const USAGE: &str = "Fn::GetAtt takes [logical id, attribute] or \"LogicalId.Attribute\"";
    match arg {
        Value::Array(a) => match a.as_slice() {
            [Value::String(t), Value::String(attr)] => Ok(Intrinsic::GetAtt(t, attr)),
            _ => Err(USAGE.into()),
        },
        Value::String(s) => s
            .split_once('.')
            .map(|(t, a)| Intrinsic::GetAtt(t, a))
            .ok_or_else(|| USAGE.into()),
        _ => Err(USAGE.into()),
    }
}

fn parse_sub(arg: &Value) -> Result<Intrinsic<'_>, String> {
    let (template, vars) = match arg {
        Value::String(s) => (s.as_str(), None),
        Value::Array(a) => match a.as_slice() {
            [Value::String(s), Value::Object(vars)] => (s.as_str(), Some(vars)),
            _ => return Err("Fn::Sub takes a string or [string, {variables}]".into()),
        },
        _ => return Err("Fn::Sub takes a string or [string, {variables}]".into()),
    };
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("Fn::Sub template {template:?} has an unclosed ${{"))?;
        parts.push(SubPart::Literal(rest[..start].to_string()));
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            parts.push(SubPart::Literal(format!("${{{literal}}}")));
        } else {
            parts.push(SubPart::Var(name));
        }
        rest = &after[end + 1..];
    }
    parts.push(SubPart::Literal(rest.to_string()));
    Ok(Intrinsic::Sub(parts, vars))
}

/// A `${...}` name inside `Fn::Sub`: a pseudo parameter, `Resource` or
/// `Resource.Attribute`.
fn sub_var_reference(name: &str) -> Option<Reference> {
    if PSEUDO_PARAMETERS.contains(&name) {
        return None;
    }
    Some(match name.split_once('.') {
        Some((t, a)) => Reference {
            target: t.to_string(),
            attribute: Some(a.to_string()),
        },
        None => Reference {
            target: name.to_string(),
            attribute: None,
        },
    })
}

/// Every reference to another resource inside `value`, or the first malformed
/// intrinsic function.
pub fn references(value: &Value) -> Result<BTreeSet<Reference>, String> {
    let mut out = BTreeSet::new();
    collect(value, &mut out)?;
    Ok(out)
}

fn collect(value: &Value, out: &mut BTreeSet<Reference>) -> Result<(), String> {
    match parse(value) {
        Some(Ok(intrinsic)) => match intrinsic {
            Intrinsic::Ref(t) => {
                if !PSEUDO_PARAMETERS.contains(&t) {
                    out.insert(Reference {
                        target: t.to_string(),
                        attribute: None,
                    });
                }
            }
            Intrinsic::GetAtt(t, a) => {
                out.insert(Reference {
                    target: t.to_string(),
                    attribute: Some(a.to_string()),
                });
            }
            Intrinsic::Sub(parts, vars) => {
                for part in parts {
                    if let SubPart::Var(name) = part {
                        if vars.is_some_and(|v| v.contains_key(name)) {
                            continue;
                        }
                        out.extend(sub_var_reference(name));
                    }
                }
                for v in vars.into_iter().flat_map(|m| m.values()) {
                    collect(v, out)?;
                }
            }
            Intrinsic::Join(_, parts) => collect(parts, out)?,
            Intrinsic::Select(_, list) => collect(list, out)?,
            Intrinsic::GetAzs => {}
        },
        Some(Err(e)) => return Err(e),
        None => match value {
            Value::Array(a) => {
                for v in a {
                    collect(v, out)?;
                }
            }
            Value::Object(m) => {
                for v in m.values() {
                    collect(v, out)?;
                }
            }
            _ => {}
        },
    }
    Ok(())
}

/// Replaces every intrinsic function in `value` with its value.
pub fn resolve(value: &Value, ctx: &CloudContext, known: &dyn Lookup) -> Result<Value, Unresolved> {
    let mut waiting = BTreeSet::new();
    let resolved = resolve_inner(value, ctx, known, &mut waiting)?;
    if waiting.is_empty() {
        Ok(resolved)
    } else {
        Err(Unresolved::KnownAfterApply(waiting))
    }
}

/// Resolves all of a resource's properties at once.
pub fn resolve_map(
    props: &Map<String, Value>,
    ctx: &CloudContext,
    known: &dyn Lookup,
) -> Result<Map<String, Value>, Unresolved> {
    let mut waiting = BTreeSet::new();
    let mut out = Map::new();
    for (k, v) in props {
        out.insert(k.clone(), resolve_inner(v, ctx, known, &mut waiting)?);
    }
    if waiting.is_empty() {
        Ok(out)
    } else {
        Err(Unresolved::KnownAfterApply(waiting))
    }
}

fn pseudo(name: &str, ctx: &CloudContext) -> Option<String> {
    match name {
        "AWS::Region" => Some(ctx.region.clone()),
        "AWS::AccountId" => Some(ctx.account_id.clone()),
        "AWS::Partition" => Some(ctx.partition.clone()),
        _ => None,
    }
}

fn lookup(
    target: &str,
    attribute: Option<&str>,
    known: &dyn Lookup,
    waiting: &mut BTreeSet<String>,
) -> Result<Value, Unresolved> {
    let Some(physical_id) = known.physical_id(target) else {
        waiting.insert(target.to_string());
        return Ok(Value::Null);
    };
    match attribute {
        None => Ok(Value::String(physical_id.to_string())),
        Some(a) => known
            .attributes(target)
            .and_then(|m| m.get(a))
            .cloned()
            .ok_or_else(|| Unresolved::Invalid(format!("{target} did not publish attribute {a}"))),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn resolve_inner(
    value: &Value,
    ctx: &CloudContext,
    known: &dyn Lookup,
    waiting: &mut BTreeSet<String>,
) -> Result<Value, Unresolved> {
    let intrinsic = match parse(value) {
        Some(Ok(i)) => i,
        Some(Err(e)) => return Err(Unresolved::Invalid(e)),
        None => {
            return Ok(match value {
                Value::Array(a) => Value::Array(
                    a.iter()
                        .map(|v| resolve_inner(v, ctx, known, waiting))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, v)| Ok((k.clone(), resolve_inner(v, ctx, known, waiting)?)))
                        .collect::<Result<_, _>>()?,
                ),
                other => other.clone(),
            })
        }
    };
    match intrinsic {
        Intrinsic::Ref(t) => match pseudo(t, ctx) {
            Some(v) => Ok(Value::String(v)),
            None => lookup(t, None, known, waiting),
        },
        Intrinsic::GetAtt(t, a) => lookup(t, Some(a), known, waiting),
        Intrinsic::Sub(parts, vars) => {
            let mut s = String::new();
            for part in parts {
                match part {
                    SubPart::Literal(l) => s.push_str(&l),
                    SubPart::Var(name) => {
                        let v = if let Some(v) = vars.and_then(|m| m.get(name)) {
                            resolve_inner(v, ctx, known, waiting)?
                        } else if let Some(p) = pseudo(name, ctx) {
                            Value::String(p)
                        } else {
                            let r = sub_var_reference(name).expect("not a pseudo parameter");
                            lookup(&r.target, r.attribute.as_deref(), known, waiting)?
                        };
                        s.push_str(&as_text(&v));
                    }
                }
            }
            Ok(Value::String(s))
        }
        Intrinsic::Join(delimiter, parts) => match resolve_inner(parts, ctx, known, waiting)? {
            Value::Array(items) => Ok(Value::String(
                items
                    .iter()
                    .map(as_text)
                    .collect::<Vec<_>>()
                    .join(delimiter),
            )),
            _ if !waiting.is_empty() => Ok(Value::Null),
            other => Err(Unresolved::Invalid(format!(
                "Fn::Join needs a list, got {other}"
            ))),
        },
        Intrinsic::Select(index, list) => {
            let list = resolve_inner(list, ctx, known, waiting)?;
            if !waiting.is_empty() {
                return Ok(Value::Null);
            }
            match list {
                Value::Array(items) => items.get(index).cloned().ok_or_else(|| {
                    Unresolved::Invalid(format!(
                        "Fn::Select index {index} is out of range for a list of {}",
                        items.len()
                    ))
                }),
                _ => Err(Unresolved::Invalid("Fn::Select needs a list".into())),
            }
        }
        Intrinsic::GetAzs => Ok(Value::Array(
            ctx.availability_zones
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> Known {
        let mut k = Known::new();
        k.insert(
            "Vpc".into(),
            Published {
                physical_id: "vpc-1".into(),
                attributes: json!({"CidrBlock": "10.0.0.0/16"})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
        );
        k
    }

    #[test]
    fn resolves_every_intrinsic() {
        let ctx = CloudContext::new("eu-central-1", "123456789012");
        let v = json!({
            "a": {"Ref": "Vpc"},
            "b": {"Fn::GetAtt": ["Vpc", "CidrBlock"]},
            "c": {"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:${AWS::AccountId}:${Vpc}/${Vpc.CidrBlock}/${!Literal}"},
            "d": {"Fn::Join": ["-", ["x", {"Ref": "Vpc"}]]},
            "e": {"Fn::Select": [1, {"Fn::GetAZs": ""}]},
            "g": {"Fn::Join": [",", {"Fn::GetAZs": ""}]},
            "f": {"Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "Vpc"}}]},
        });
        let r = resolve(&v, &ctx, &known()).unwrap();
        assert_eq!(
            r,
            json!({
                "a": "vpc-1",
                "b": "10.0.0.0/16",
                "c": "arn:aws:x:eu-central-1:123456789012:vpc-1/10.0.0.0/16/${Literal}",
                "d": "x-vpc-1",
                "e": "eu-central-1b",
                "g": "eu-central-1a,eu-central-1b,eu-central-1c",
                "f": "vpc-1-eu-central-1",
            })
        );
    }

    #[test]
    fn unknown_targets_are_known_after_apply() {
        let ctx = CloudContext::new("eu-central-1", "1");
        let v = json!({"Fn::Join": [",", [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Arn"]}]]});
        assert_eq!(
            resolve(&v, &ctx, &Known::new()),
            Err(Unresolved::KnownAfterApply(
                ["A".to_string(), "B".to_string()].into()
            ))
        );
        let refs = references(&v).unwrap();
        assert_eq!(refs.len(), 2);
    }

    #[test]
    fn malformed_intrinsics_are_errors() {
        assert!(references(&json!({"Fn::Join": "x"})).is_err());
        assert!(references(&json!({"Fn::Sub": "${oops"})).is_err());
        assert!(references(&json!({"Fn::GetAtt": "NoDot"})).is_err());
    }
}
