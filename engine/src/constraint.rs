//! What AWS accepts in a property's value, as its resource schemas say it:
//! one of a list of values, a length, a numeric range, a pattern. Drivers
//! declare them per property ([`crate::TypeSchema::one_of`] and friends, in
//! AWS's own words, which the drivers' conformance test holds against the
//! schemas); validation checks every literal value against them before any
//! AWS call.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Constraints {
    /// The values AWS accepts (its schema's `enum`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub one_of: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub minimum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub maximum: Option<f64>,
    /// AWS's pattern, as its schema writes it (see [`compile`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pattern: Option<String>,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }

    /// The rules `value` breaks, each as a sentence. Only literals are
    /// judged: a reference or function is known after apply.
    pub fn broken_by(&self, value: &Value) -> Vec<String> {
        let mut broken = Vec::new();
        if self.is_empty() {
            return broken;
        }
        if let Some(allowed) = &self.one_of {
            let same = |a: &Value| match (a.as_f64(), number(value)) {
                (Some(x), Some(y)) => x == y,
                _ => a == value,
            };
            if is_literal(value) && !allowed.iter().any(same) {
                let list: Vec<String> = allowed.iter().map(plain).collect();
                broken.push(format!("must be one of {}", list.join(", ")));
            }
        }
        if let Value::String(text) = value {
            let n = text.chars().count();
            let (lo, hi) = (self.min_length.unwrap_or(0), self.max_length);
            if n < lo || hi.is_some_and(|hi| n > hi) {
                broken.push(match hi {
                    Some(hi) if lo > 0 => format!("must be {lo} to {hi} characters, not {n}"),
                    Some(hi) => format!("must be at most {hi} characters, not {n}"),
                    None => format!("must be at least {lo} characters, not {n}"),
                });
            }
            if let Some(p) = &self.pattern {
                if compiled(p).is_some_and(|re| !re.is_match(text)) {
                    broken.push(format!("must match {p}"));
                }
            }
        }
        if let Some(x) = number(value) {
            let low = self.minimum.is_some_and(|m| x < m);
            let high = self.maximum.is_some_and(|m| x > m);
            if low || high {
                broken.push(match (self.minimum, self.maximum) {
                    (Some(lo), Some(hi)) => format!("must be from {lo} to {hi}"),
                    (Some(lo), None) => format!("must be at least {lo}"),
                    (None, Some(hi)) => format!("must be at most {hi}"),
                    (None, None) => unreachable!("a bound was broken"),
                });
            }
        }
        broken
    }
}

/// The values at `path` inside `value` (see
/// [`crate::PropertySchema::nested`]: `*` is each element of a list, a name
/// a field of an object), each with where it is (`[2].IpProtocol`). A
/// reference or function in the way holds nothing to judge yet.
pub fn values_at<'a>(value: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let mut found = vec![(String::new(), value)];
    for step in path.split('/') {
        found = found
            .into_iter()
            .flat_map(|(at, v)| -> Vec<(String, &'a Value)> {
                match (step, v) {
                    ("*", Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (format!("{at}[{i}]"), item))
                        .collect(),
                    (field, Value::Object(o)) => o
                        .get(field)
                        .map(|item| (format!("{at}.{field}"), item))
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    found
}

fn is_literal(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A number, or a string holding one (CloudFormation takes `"20"` for 20).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn plain(v: &Value) -> String {
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

/// `compile`, once per pattern per process: validation runs on every plan
/// and apply, over every resource that sets a patterned property.
fn compiled(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .expect("pattern cache");
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| compile(pattern).ok())
        .clone()
}

/// AWS's pattern as a Rust regex. AWS's schemas write Java-style patterns:
/// `\uXXXX` escapes, `\Z` for the end, `\p{Print}`, and (once, for ECR
/// names) a leading length lookahead `^(?=.{2,256}$)`, which the length
/// constraint beside it already holds. These are translated; a pattern that
/// still does not compile is an error (the drivers' tests compile every
/// pattern they declare).
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    let mut p = pattern.to_string();
    if let Some(rest) = p.strip_prefix("^(?=") {
        if let Some(end) = rest.find(")") {
            p = format!("^{}", &rest[end + 1..]);
        }
    }
    let p = p.replace("\\p{Print}", "\\PC");
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars().peekable();
    // Inside a character class a `[` is a plain character to AWS, and the
    // start of a nested class to Rust: escape it.
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '[' if in_class => {
                out.push_str("\\[");
                continue;
            }
            '[' => {
                in_class = true;
                out.push('[');
                // A `]` first in a class is one of its characters.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
                continue;
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
                continue;
            }
            '\\' => {}
            _ => {
                out.push(c);
                continue;
            }
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push_str(&format!("\\x{{{hex}}}"));
            }
            Some('Z') => out.push_str("\\z"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    regex::Regex::new(&out).map_err(|e| format!("{pattern}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aws_patterns_compile_and_judge() {
        let rds = compile("^[a-zA-Z]{1}(?:-?[a-zA-Z0-9]){0,62}$").unwrap();
        assert!(rds.is_match("fastcart-orders-dev"));
        assert!(!rds.is_match("fastcart-orders-bad env!"));
        let iam = compile("^[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u00A1-\\u00FF]*$").unwrap();
        assert!(iam.is_match("reads the stream\n"));
        assert!(!iam.is_match("\u{0001}"));
        let logs = compile("^[.\\-_/#A-Za-z0-9]{1,512}\\Z").unwrap();
        assert!(logs.is_match("/ecs/fastcart-dev"));
        assert!(!logs.is_match("/ecs/bad env!"));
        let ecr = compile(
            "^(?=.{2,256}$)([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*)$",
        )
        .unwrap();
        assert!(ecr.is_match("fastcart-order-processor-dev"));
        assert!(!ecr.is_match("Fastcart"));
        let group = compile("^([a-z,A-Z,0-9,. _\\-:/()#,@[\\]+=&;\\{\\}!$*])*$").unwrap();
        assert!(group.is_match("fastcart tasks: [all] (8080)"));
        assert!(!group.is_match("tabs\there"));
        let print = compile("^\\p{Print}+$").unwrap();
        assert!(print.is_match("flask-api-cpu-scaling-dev"));
        assert!(!print.is_match("tab\there"));
    }

    #[test]
    fn every_kind_of_rule_is_named() {
        let c = Constraints {
            one_of: Some(vec![json!(1), json!(7), json!(14)]),
            ..Default::default()
        };
        assert!(c.broken_by(&json!(7)).is_empty());
        assert!(c.broken_by(&json!("7")).is_empty());
        assert_eq!(c.broken_by(&json!(8)), ["must be one of 1, 7, 14"]);
        let c = Constraints {
            min_length: Some(1),
            max_length: Some(32),
            pattern: Some("^[a-z-]+$".into()),
            ..Default::default()
        };
        assert_eq!(c.broken_by(&json!("bad env!")), ["must match ^[a-z-]+$"]);
        assert_eq!(
            c.broken_by(&json!("x".repeat(33))),
            ["must be 1 to 32 characters, not 33"]
        );
        let c = Constraints {
            minimum: Some(1.0),
            maximum: Some(35.0),
            ..Default::default()
        };
        assert_eq!(c.broken_by(&json!(36)), ["must be from 1 to 35"]);
        // A reference is judged once it is known, by AWS.
        assert!(c.broken_by(&json!({"Ref": "X"})).is_empty());
    }

    #[test]
    fn values_inside_a_property_are_found_by_path() {
        let rules = json!([
            {"IpProtocol": "tcp", "CidrIp": "10.0.0.0/16"},
            {"IpProtocol": {"Ref": "Protocol"}},
            {"CidrIp": "0.0.0.0/0"}
        ]);
        let found = values_at(&rules, "*/IpProtocol");
        assert_eq!(
            found,
            [
                ("[0].IpProtocol".to_string(), &json!("tcp")),
                ("[1].IpProtocol".to_string(), &json!({"Ref": "Protocol"})),
            ]
        );
        let nested = json!({"AwsvpcConfiguration": {"AssignPublicIp": "DISABLED"}});
        assert_eq!(
            values_at(&nested, "AwsvpcConfiguration/AssignPublicIp"),
            [(
                ".AwsvpcConfiguration.AssignPublicIp".to_string(),
                &json!("DISABLED")
            )]
        );
        // A list given as a reference has no elements to judge yet.
        assert!(values_at(&json!({"Fn::GetAZs": ""}), "*/Key").is_empty());
    }
}
