//! Comparing a desired property value with what the cloud reports, after
//! normalizing both by the property's [`ValueKind`].

use serde_json::{Map, Value};

use crate::schema::ValueKind;

/// The canonical form of a value of the given kind.
pub fn normalize(value: &Value, kind: ValueKind) -> Value {
    match kind {
        ValueKind::Plain => value.clone(),
        ValueKind::JsonDocument => match value {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
            other => other.clone(),
        },
        ValueKind::Tags => match value {
            Value::Array(items) => {
                let mut map = Map::new();
                for item in items {
                    if let (Some(k), Some(v)) =
                        (item.get("Key").and_then(Value::as_str), item.get("Value"))
                    {
                        map.insert(k.to_string(), v.clone());
                    }
                }
                Value::Object(map)
            }
            other => other.clone(),
        },
        ValueKind::UnorderedList | ValueKind::DocumentSet => match value {
            Value::Array(items) => {
                let mut items = items.clone();
                items.sort_by_cached_key(|v| v.to_string());
                Value::Array(items)
            }
            other => other.clone(),
        },
    }
}

/// Whether the cloud's value satisfies the desired one.
///
/// Tags compare only the keys the stack sets (AWS and fastcart add others).
/// Inside plain values and unordered lists, an object compares only the keys
/// the stack gave: what the stack leaves out of a nested structure (a
/// container definition, a security group rule) is AWS's to default, as it is
/// at the top level. JSON documents (policies) compare exactly. Scalars
/// compare by text where one side is a string, as CloudFormation accepts
/// `"24"` for `24`.
pub fn satisfies(desired: &Value, actual: Option<&Value>, kind: ValueKind) -> bool {
    let Some(actual) = actual else {
        return desired.is_null();
    };
    match kind {
        ValueKind::Plain => within(desired, actual),
        ValueKind::UnorderedList => match (desired, actual) {
            (Value::Array(d), Value::Array(a)) => same_set(d, a, within),
            _ => within(desired, actual),
        },
        ValueKind::DocumentSet => match (desired, actual) {
            (Value::Array(d), Value::Array(a)) => same_set(d, a, loosely_equal),
            _ => loosely_equal(desired, actual),
        },
        ValueKind::JsonDocument => {
            loosely_equal(&normalize(desired, kind), &normalize(actual, kind))
        }
        ValueKind::Tags => match (normalize(desired, kind), normalize(actual, kind)) {
            (Value::Object(d), Value::Object(a)) => d
                .iter()
                .all(|(k, v)| a.get(k).is_some_and(|av| loosely_equal(v, av))),
            (d, a) => loosely_equal(&d, &a),
        },
    }
}

/// `desired` as the stack gave it is found in `actual`: objects by the keys
/// the stack gave (a `null` the stack gave matches an absent key), arrays
/// element by element.
fn within(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, v)| match a.get(k) {
            Some(w) => within(v, w),
            None => v.is_null(),
        }),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(p, q)| within(p, q))
        }
        _ => loosely_equal(desired, actual),
    }
}

/// Every desired element matches (by `matches`) its own actual element, in
/// any order, and there are as many of each: a perfect matching, found by
/// augmenting paths, so that a loose desired element never takes the only
/// actual element a stricter one could match.
fn same_set(desired: &[Value], actual: &[Value], matches: fn(&Value, &Value) -> bool) -> bool {
    if desired.len() != actual.len() {
        return false;
    }
    let fits: Vec<Vec<usize>> = desired
        .iter()
        .map(|d| {
            (0..actual.len())
                .filter(|&j| matches(d, &actual[j]))
                .collect()
        })
        .collect();
    // owner[j]: the desired element actual element j is matched to.
    let mut owner: Vec<Option<usize>> = vec![None; actual.len()];
    fn augment(
        i: usize,
        fits: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &j in &fits[i] {
            if !seen[j] {
                seen[j] = true;
                if owner[j].is_none_or(|k| augment(k, fits, seen, owner)) {
                    owner[j] = Some(i);
                    return true;
                }
            }
        }
        false
    }
    (0..desired.len()).all(|i| augment(i, &fits, &mut vec![false; actual.len()], &mut owner))
}

/// Tag keys fastcart applied before, that the stack no longer sets, and that
/// the cloud still has: an update must remove them.
pub fn dropped_tags(applied: Option<&Value>, desired: &Value, actual: Option<&Value>) -> bool {
    let keys = |v: Option<&Value>| match v.map(|v| normalize(v, ValueKind::Tags)) {
        Some(Value::Object(m)) => m.keys().cloned().collect::<Vec<String>>(),
        _ => Vec::new(),
    };
    let wanted = keys(Some(desired));
    let present = keys(actual);
    keys(applied)
        .iter()
        .any(|k| !wanted.contains(k) && present.contains(k))
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(s), Value::Number(_) | Value::Bool(_))
        | (Value::Number(_) | Value::Bool(_), Value::String(s)) => {
            let other = if a.is_string() { b } else { a };
            let text = other.to_string();
            *s == text
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loosely_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loosely_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_documents_compare_as_json() {
        let desired = json!({"Version": "2012-10-17", "Statement": []});
        let actual = json!("{\"Statement\": [], \"Version\": \"2012-10-17\"}");
        assert!(satisfies(&desired, Some(&actual), ValueKind::JsonDocument));
        assert!(!satisfies(&desired, Some(&actual), ValueKind::Plain));
    }

    #[test]
    fn tags_compare_as_maps_of_the_keys_the_stack_sets() {
        let desired = json!([{"Key": "A", "Value": "1"}, {"Key": "B", "Value": "2"}]);
        let actual = json!([
            {"Key": "fastcart:stack", "Value": "s"},
            {"Key": "B", "Value": "2"},
            {"Key": "A", "Value": "1"}
        ]);
        assert!(satisfies(&desired, Some(&actual), ValueKind::Tags));
        let changed = json!([{"Key": "A", "Value": "9"}, {"Key": "B", "Value": "2"}]);
        assert!(!satisfies(&desired, Some(&changed), ValueKind::Tags));
    }

    #[test]
    fn a_tag_the_stack_stopped_setting_is_a_change() {
        let applied = json!([{"Key": "A", "Value": "1"}, {"Key": "Old", "Value": "x"}]);
        let desired = json!([{"Key": "A", "Value": "1"}]);
        let actual = json!([{"Key": "A", "Value": "1"}, {"Key": "Old", "Value": "x"}]);
        assert!(dropped_tags(Some(&applied), &desired, Some(&actual)));
        let removed = json!([{"Key": "A", "Value": "1"}]);
        assert!(!dropped_tags(Some(&applied), &desired, Some(&removed)));
        // A tag someone else added is not fastcart's to remove.
        assert!(!dropped_tags(Some(&desired), &desired, Some(&actual)));
    }

    #[test]
    fn unordered_lists_and_loose_scalars() {
        assert!(satisfies(
            &json!(["b", "a"]),
            Some(&json!(["a", "b"])),
            ValueKind::UnorderedList
        ));
        assert!(!satisfies(
            &json!(["b", "a"]),
            Some(&json!(["a", "b"])),
            ValueKind::Plain
        ));
        assert!(satisfies(&json!("24"), Some(&json!(24)), ValueKind::Plain));
        assert!(!satisfies(&json!(24), None, ValueKind::Plain));
    }

    #[test]
    fn nested_objects_compare_the_keys_the_stack_gave() {
        let desired = json!([{"Name": "app", "PortMappings": [{"ContainerPort": 8080}]}]);
        let actual = json!([{"Name": "app", "Cpu": 0, "Essential": true,
            "PortMappings": [{"ContainerPort": 8080, "HostPort": 8080, "Protocol": "tcp"}]}]);
        assert!(satisfies(&desired, Some(&actual), ValueKind::Plain));
        let changed = json!([{"Name": "app", "PortMappings": [{"ContainerPort": 8081}]}]);
        assert!(!satisfies(&desired, Some(&changed), ValueKind::Plain));
        // A rule more or a rule less is a difference, in any order.
        let rules = json!([{"FromPort": 1, "CidrIp": "a"}, {"FromPort": 2, "CidrIp": "b"}]);
        let seen = json!([{"FromPort": 2, "CidrIp": "b", "IpProtocol": "tcp"},
                          {"FromPort": 1, "CidrIp": "a", "IpProtocol": "tcp"}]);
        assert!(satisfies(&rules, Some(&seen), ValueKind::UnorderedList));
        let more = json!([{"FromPort": 2, "CidrIp": "b"}, {"FromPort": 1, "CidrIp": "a"},
                          {"FromPort": 3, "CidrIp": "c"}]);
        assert!(!satisfies(&rules, Some(&more), ValueKind::UnorderedList));
        // A loose element does not take the only match of a stricter one.
        let desired = json!([{"A": 1}, {"A": 1, "B": 2}]);
        let seen = json!([{"A": 1, "B": 2}, {"A": 1, "B": 3}]);
        assert!(satisfies(&desired, Some(&seen), ValueKind::UnorderedList));
        // Policy documents stay exact: a condition added behind our back shows.
        let policy = json!({"Statement": [{"Effect": "Allow"}]});
        let widened = json!({"Statement": [{"Effect": "Allow", "Condition": {}}]});
        assert!(!satisfies(&policy, Some(&widened), ValueKind::JsonDocument));
        // So do documents inside a set of them (inline policies), in any order.
        let policies = json!([{"PolicyName": "a", "PolicyDocument": {"Statement": [{"Effect": "Allow"}]}},
                              {"PolicyName": "b", "PolicyDocument": {"Statement": []}}]);
        let reordered = json!([{"PolicyName": "b", "PolicyDocument": {"Statement": []}},
                               {"PolicyName": "a", "PolicyDocument": {"Statement": [{"Effect": "Allow"}]}}]);
        assert!(satisfies(
            &policies,
            Some(&reordered),
            ValueKind::DocumentSet
        ));
        let widened = json!([{"PolicyName": "a", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Condition": {}}]}},
                             {"PolicyName": "b", "PolicyDocument": {"Statement": []}}]);
        assert!(!satisfies(
            &policies,
            Some(&widened),
            ValueKind::DocumentSet
        ));
    }
}
