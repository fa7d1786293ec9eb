//! Every driver schema held against AWS's own resource provider schemas, as
//! shipped by the `cfn-lint` package (installed beside moto by
//! `scripts/moto.sh`): each property a driver accepts exists for that type,
//! each attribute is one of AWS's read-only properties, each property AWS
//! calls create-only is create-only in the driver too, and each it calls
//! write-only (never returned) is write-only in the driver; and each
//! constraint AWS's schema puts on a property's value (enum, lengths, range,
//! pattern) is declared the same in the driver, which validation checks
//! before any AWS call.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn schemas_dir() -> PathBuf {
    let lib = crate::moto::venv().join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("python"))
        .unwrap_or_else(|| panic!("no python directory in {}", lib.display()))
        .path();
    python.join("site-packages/cfnlint/data/schemas")
}

fn aws_schema(dir: &std::path::Path, type_name: &str) -> Value {
    let providers: Value = read_json(&dir.join("providers/eu-central-1.json"));
    let file = providers[type_name]
        .as_str()
        .unwrap_or_else(|| panic!("AWS has no schema for {type_name}"));
    read_json(&dir.join(format!("resources/{file}.json")))
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `["/properties/A", "/properties/B/C"]` as `{"A", "B/C"}`.
fn paths(schema: &Value, key: &str) -> BTreeSet<String> {
    schema[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| p.trim_start_matches("/properties/").to_string())
        .collect()
}

/// AWS's constraints on a property: its own, or those of the scalar
/// definition it names (`$ref`).
fn aws_constraints(schema: &Value, d: &Value) -> fastcart_engine::Constraints {
    let mut d = d.clone();
    if let Some(r) = d["$ref"].as_str() {
        let def = &schema["definitions"][r.rsplit('/').next().unwrap_or_default()];
        if matches!(def["type"].as_str(), Some("string" | "integer" | "number")) {
            let mut merged = def.clone();
            for (k, v) in d.as_object().into_iter().flatten() {
                merged[k] = v.clone();
            }
            d = merged;
        }
    }
    let length = |k: &str| d[k].as_u64().map(|n| n as usize);
    fastcart_engine::Constraints {
        one_of: d["enum"].as_array().cloned(),
        min_length: length("minLength"),
        max_length: length("maxLength"),
        minimum: d["minimum"].as_f64(),
        maximum: d["maximum"].as_f64(),
        pattern: d["pattern"].as_str().map(String::from),
    }
}

/// Each kind of constraint, the driver's and AWS's, as JSON for comparing
/// and printing.
fn constraint_pairs(
    ours: &fastcart_engine::Constraints,
    aws: &fastcart_engine::Constraints,
) -> Vec<(&'static str, Option<Value>, Option<Value>)> {
    let j = |c: &fastcart_engine::Constraints| serde_json::to_value(c).unwrap();
    let (o, a) = (j(ours), j(aws));
    [
        "one_of",
        "min_length",
        "max_length",
        "minimum",
        "maximum",
        "pattern",
    ]
    .into_iter()
    .map(|k| {
        let get = |v: &Value| v.get(k).cloned().map(normalize);
        (k, get(&o), get(&a))
    })
    .collect()
}

/// Numbers as numbers, whether written 1 or 1.0.
fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

#[test]
fn every_driver_schema_agrees_with_aws() {
    let dir = schemas_dir();
    let registry = fastcart_drivers::offline_registry();
    let mut problems = Vec::new();
    let mut checked = 0;
    for ours in registry.schemas() {
        let t = &ours.type_name;
        let theirs = aws_schema(&dir, t);
        let properties = theirs["properties"].as_object().expect("properties");
        let read_only = paths(&theirs, "readOnlyProperties");
        let create_only = paths(&theirs, "createOnlyProperties");
        let write_only = paths(&theirs, "writeOnlyProperties");
        for (name, p) in &ours.properties {
            checked += 1;
            if !properties.contains_key(name) {
                problems.push(format!("{t}: AWS has no property {name}"));
            } else if read_only.contains(name) {
                problems.push(format!("{t}: {name} is read-only in AWS, not an input"));
            }
            if let Some(d) = properties.get(name) {
                let want = aws_constraints(&theirs, d);
                for (what, ours, aws) in constraint_pairs(&p.constraints, &want) {
                    // Ours may add a rule AWS's schema leaves out (a load
                    // balancer's 32 characters, from its API reference);
                    // where AWS gives one, ours is the same.
                    if aws.is_some() && ours != aws {
                        problems.push(format!(
                            "{t}: {name}'s {what} is {} in the driver, {} in AWS's schema",
                            ours.map_or("unset".into(), |v| v.to_string()),
                            aws.map_or("unset".into(), |v| v.to_string()),
                        ));
                    }
                }
            }
            if create_only.contains(name) && !p.create_only {
                problems.push(format!(
                    "{t}: {name} is create-only in AWS but not in the driver"
                ));
            }
            if write_only.contains(name) && !p.write_only {
                problems.push(format!(
                    "{t}: {name} is write-only in AWS (never returned) but not in the driver"
                ));
            }
        }
        for a in &ours.attributes {
            checked += 1;
            let path = a.replace('.', "/");
            if !read_only.contains(&path) && !properties.contains_key(&path) {
                problems.push(format!("{t}: AWS has no attribute {a}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 0, "no driver schema was checked");
}
