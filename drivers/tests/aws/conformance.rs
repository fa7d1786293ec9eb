//! Every driver schema held against AWS's own resource provider schemas, as
//! shipped by the `cfn-lint` package (installed beside moto by
//! `scripts/moto.sh`): each property a driver accepts exists for that type,
//! each attribute is one of AWS's read-only properties, each property AWS
//! calls create-only is create-only in the driver too, and each it calls
//! write-only (never returned) is write-only in the driver.

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
            let their_max = properties.get(name).and_then(|d| d["maxLength"].as_u64());
            if let (Some(ours), Some(theirs)) = (p.max_length, their_max) {
                if ours as u64 > theirs {
                    problems.push(format!(
                        "{t}: {name} takes {ours} characters here, AWS at most {theirs}"
                    ));
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
