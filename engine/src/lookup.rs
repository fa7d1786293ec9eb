//! Outputs read from the cloud after an apply: `Fastcart::Lookup`.
//!
//! Some values a stack's users want are no attribute of any resource:
//! AWS publishes a secret's current version id through no `Fn::GetAtt`, and
//! an RDS-managed secret is not even a resource of the stack. An output may
//! ask a driver for such a value by the physical id of an object it manages:
//!
//! ```json
//! {"Fastcart::Lookup": ["AWS::SecretsManager::Secret", {"Ref": "Secret"}, "CurrentVersionId"]}
//! ```
//!
//! The id may be any value the resolver resolves. The type must be
//! registered and must name the lookup in its schema
//! ([`crate::TypeSchema::lookup`]); validation says so before any call.
//! Lookups are for outputs only: a property's value must not change behind
//! the plan's back.

use serde_json::{Map, Value};

use crate::driver::Registry;
use crate::model::CloudContext;
use crate::resolve::{resolve, Lookup, Unresolved};

/// The intrinsic's name.
pub const LOOKUP: &str = "Fastcart::Lookup";

/// `{"Fastcart::Lookup": [type_name, id, name]}`: the value `name` of the
/// object `id` of type `type_name`, read after the apply (outputs only).
pub fn lookup(type_name: &str, id: Value, name: &str) -> Value {
    serde_json::json!({ LOOKUP: [type_name, id, name] })
}

/// One `Fastcart::Lookup` in a value.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupCall<'a> {
    pub type_name: &'a str,
    /// The physical id, unresolved.
    pub id: &'a Value,
    pub name: &'a str,
}

/// `Some` when `value` is a `Fastcart::Lookup` (an error when malformed).
fn parse(value: &Value) -> Option<Result<LookupCall<'_>, String>> {
    let m = value.as_object().filter(|m| m.len() == 1)?;
    let arg = m.get(LOOKUP)?;
    Some(match arg.as_array().map(Vec::as_slice) {
        Some([Value::String(t), id, Value::String(n)]) => Ok(LookupCall {
            type_name: t,
            id,
            name: n,
        }),
        _ => Err(format!(
            "{LOOKUP} takes [type name, physical id, lookup name], got {arg}"
        )),
    })
}

/// Every lookup in `value`, outermost first.
pub fn lookups(value: &Value) -> Result<Vec<LookupCall<'_>>, String> {
    let mut out = Vec::new();
    collect(value, &mut out)?;
    Ok(out)
}

fn collect<'a>(value: &'a Value, out: &mut Vec<LookupCall<'a>>) -> Result<(), String> {
    match parse(value) {
        Some(call) => {
            let call = call?;
            collect(call.id, out)?;
            out.insert(0, call);
        }
        None => match value {
            Value::Array(a) => a.iter().try_for_each(|v| collect(v, out))?,
            Value::Object(m) => m.values().try_for_each(|v| collect(v, out))?,
            _ => {}
        },
    }
    Ok(())
}

/// `value` with every lookup replaced by what its driver answers, the ids
/// resolved against `known`. Nothing else is resolved.
pub async fn look_up(
    value: &Value,
    ctx: &CloudContext,
    known: &(dyn Lookup + Sync),
    registry: &Registry,
) -> Result<Value, Unresolved> {
    if let Some(call) = parse(value) {
        let call = call.map_err(Unresolved::Invalid)?;
        let id = Box::pin(look_up(call.id, ctx, known, registry)).await?;
        let id = resolve(&id, ctx, known)?;
        let Some(id) = id.as_str().filter(|s| !s.is_empty()) else {
            return Err(Unresolved::Invalid(format!(
                "{LOOKUP} of {} needs a physical id, got {id}",
                call.name
            )));
        };
        let driver = registry.get(call.type_name).ok_or_else(|| {
            Unresolved::Invalid(format!("{LOOKUP}: no driver for {}", call.type_name))
        })?;
        return match driver.lookup(id, call.name).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Unresolved::Invalid(format!(
                "{} {id} has no {} (it does not exist, or has none yet)",
                call.type_name, call.name
            ))),
            Err(e) => Err(Unresolved::Invalid(format!(
                "reading {} of {id} failed: {e}",
                call.name
            ))),
        };
    }
    Ok(match value {
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for v in a {
                out.push(Box::pin(look_up(v, ctx, known, registry)).await?);
            }
            Value::Array(out)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), Box::pin(look_up(v, ctx, known, registry)).await?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_lookups_and_refuses_malformed_ones() {
        let v = json!({"a": [{"Fastcart::Lookup": ["T", {"Ref": "S"}, "V"]}], "b": 1});
        let found = lookups(&v).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].type_name, "T");
        assert_eq!(found[0].id, &json!({"Ref": "S"}));
        assert_eq!(found[0].name, "V");
        let e = lookups(&json!({"Fastcart::Lookup": ["T", "x"]})).unwrap_err();
        assert!(
            e.contains("takes [type name, physical id, lookup name]"),
            "{e}"
        );
        assert!(lookups(&json!({"Ref": "S"})).unwrap().is_empty());
    }
}
