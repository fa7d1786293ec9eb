//! Reading resolved properties, and writing observed ones, in the
//! CloudFormation shape the schemas use.

use std::collections::BTreeMap;

use fastcart_engine::{DriverError, Observed, UpdateRequest};
use serde_json::{json, Map, Value};

use crate::error::invalid;

pub type Props = Map<String, Value>;

pub fn str_of<'a>(p: &'a Props, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// A required string property; the error names the operation it was for.
pub fn need_str<'a>(p: &'a Props, key: &str, operation: &str) -> Result<&'a str, DriverError> {
    str_of(p, key).ok_or_else(|| invalid(operation, format!("{key} must be a string")))
}

/// A number given as a number or as a string holding one.
pub fn int_of(p: &Props, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn i32_of(p: &Props, key: &str) -> Option<i32> {
    int_of(p, key).and_then(|n| i32::try_from(n).ok())
}

pub fn float_of(p: &Props, key: &str) -> Option<f64> {
    match p.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A boolean given as a boolean or as `"true"`/`"false"`.
pub fn bool_of(p: &Props, key: &str) -> Option<bool> {
    match p.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A list of strings (absent: empty).
pub fn strs_of(p: &Props, key: &str) -> Vec<String> {
    match p.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON document property (a policy) as the string AWS takes.
pub fn document_of(p: &Props, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

/// A JSON document string from AWS (possibly URL-encoded, as IAM returns it)
/// as a JSON value.
pub fn parse_document(text: &str) -> Value {
    let decoded = if text.trim_start().starts_with('%') || text.contains("%22") {
        percent_decode(text)
    } else {
        text.to_string()
    };
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an update changes the top-level property `name`.
pub fn changed(req: &UpdateRequest<'_>, name: &str) -> bool {
    req.changed.iter().any(|c| c == name)
}

/// The new value of `name`, read with `read` (`str_of`, `bool_of`, ...),
/// when the update changes it; `None` when it does not (a modify call then
/// leaves it alone).
pub fn if_changed<T>(
    req: &UpdateRequest<'_>,
    name: &str,
    read: impl Fn(&Props, &str) -> Option<T>,
) -> Option<T> {
    changed(req, name)
        .then(|| read(req.properties, name))
        .flatten()
}

/// The `Tags` property as a map.
pub fn tag_map(p: &Props) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(Value::Array(items)) = p.get("Tags") {
        for t in items {
            if let (Some(k), Some(v)) = (t.get("Key"), t.get("Value")) {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(k) = k.as_str() {
                    m.insert(k.to_string(), v);
                }
            }
        }
    }
    m
}

/// Every tag a resource should carry: the stack's and ownership tags the
/// engine hands over, and the resource's own `Tags` property over them.
pub fn all_tags(p: &Props, given: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut tags = given.clone();
    tags.extend(tag_map(p));
    tags
}

/// Tag keys the resource had through its `Tags` property that it should no
/// longer carry.
pub fn removed_tags(
    previous: &Props,
    desired: &Props,
    given: &BTreeMap<String, String>,
) -> Vec<String> {
    let want = all_tags(desired, given);
    tag_map(previous)
        .into_keys()
        .filter(|k| !want.contains_key(k))
        .collect()
}

/// A CloudFormation tag list, sorted by key.
pub fn tags_value<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Value {
    let mut v: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    v.sort();
    Value::Array(
        v.into_iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Builds an [`Observed`], skipping absent values.
#[derive(Default)]
pub struct Obs(Observed);

impl Obs {
    pub fn new() -> Self {
        Obs::default()
    }

    /// A property, when AWS reported it.
    pub fn prop(mut self, key: &str, value: Option<impl Into<Value>>) -> Self {
        if let Some(v) = value {
            self.0.properties.insert(key.into(), v.into());
        }
        self
    }

    /// An attribute (`Fn::GetAtt`), when AWS reported it.
    pub fn attr(mut self, key: &str, value: Option<impl Into<Value>>) -> Self {
        if let Some(v) = value {
            self.0.attributes.insert(key.into(), v.into());
        }
        self
    }

    pub fn done(self) -> Observed {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_scalars_and_documents() {
        let p: Props = serde_json::from_value(json!({
            "N": "24", "M": 7, "B": "true", "D": {"a": 1}, "L": ["x", 2]
        }))
        .unwrap();
        assert_eq!(int_of(&p, "N"), Some(24));
        assert_eq!(int_of(&p, "M"), Some(7));
        assert_eq!(bool_of(&p, "B"), Some(true));
        assert_eq!(document_of(&p, "D").as_deref(), Some("{\"a\":1}"));
        assert_eq!(strs_of(&p, "L"), vec!["x", "2"]);
        assert_eq!(parse_document("%7B%22a%22%3A1%7D"), json!({"a": 1}));
    }

    #[test]
    fn tags_merge_and_removed_keys() {
        let given: BTreeMap<String, String> =
            [("fastcart:stack".to_string(), "s".to_string())].into();
        let before: Props = serde_json::from_value(
            json!({"Tags": [{"Key": "Old", "Value": "1"}, {"Key": "Keep", "Value": "2"}]}),
        )
        .unwrap();
        let after: Props =
            serde_json::from_value(json!({"Tags": [{"Key": "Keep", "Value": "3"}]})).unwrap();
        let all = all_tags(&after, &given);
        assert_eq!(all.get("Keep").map(String::as_str), Some("3"));
        assert!(all.contains_key("fastcart:stack"));
        assert_eq!(
            removed_tags(&before, &after, &given),
            vec!["Old".to_string()]
        );
    }
}
