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

use serde_json::{json, Value};

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
    let merged = resolved(schema, d);
    let scalar = matches!(
        merged["type"].as_str(),
        Some("string" | "integer" | "number")
    );
    let d = if scalar { merged } else { d.clone() };
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

/// A node of AWS's schema with the definition it names (`$ref`) merged in.
fn resolved(schema: &Value, node: &Value) -> Value {
    let mut node = node.clone();
    while let Some(r) = node["$ref"].as_str().map(String::from) {
        let mut merged = schema["definitions"][r.rsplit('/').next().unwrap_or_default()].clone();
        for (k, v) in node.as_object().into_iter().flatten() {
            if k != "$ref" {
                merged[k] = v.clone();
            }
        }
        node = merged;
    }
    node
}

/// AWS's schema of the value at `path` below a property's definition `d`
/// (`*` an element of a list, a name a field of an object), if AWS's schema
/// has that path.
fn aws_node(schema: &Value, d: &Value, path: &str) -> Option<Value> {
    let mut node = d.clone();
    for step in path.split('/') {
        let here = resolved(schema, &node);
        node = match step {
            "*" => here.get("items")?.clone(),
            field => here.get("properties")?.get(field)?.clone(),
        };
    }
    Some(node)
}

/// The constraints AWS's schema puts on each literal inside `value` (a
/// property's value as a stack sets it, with AWS's definition `d`), by the
/// path of the literal below the property, `*` for any element.
fn constrained_inside(
    schema: &Value,
    d: &Value,
    value: &Value,
    path: &str,
    out: &mut std::collections::BTreeMap<String, fastcart_engine::Constraints>,
) {
    let here = resolved(schema, d);
    let below = |step: &str| match path {
        "" => step.to_string(),
        _ => format!("{path}/{step}"),
    };
    match value {
        Value::Array(items) => {
            if let Some(item) = here.get("items") {
                for v in items {
                    constrained_inside(schema, item, v, &below("*"), out);
                }
            }
        }
        Value::Object(fields) => {
            // A reference or function: AWS judges it once it is known.
            if fields.keys().any(|k| k == "Ref" || k.starts_with("Fn::")) {
                return;
            }
            for (k, v) in fields {
                if let Some(field) = here.get("properties").and_then(|p| p.get(k)) {
                    constrained_inside(schema, field, v, &below(k), out);
                }
            }
        }
        _ if !path.is_empty() => {
            let c = aws_constraints(schema, d);
            if !c.is_empty() {
                out.insert(path.to_string(), c);
            }
        }
        _ => {}
    }
}

/// Where the driver's constraints differ from AWS's: each kind AWS's
/// schema gives must be the driver's too. Ours may add a rule AWS's schema
/// leaves out (a load balancer's 32 characters, from its API reference).
fn disagreements(
    place: &str,
    ours: &fastcart_engine::Constraints,
    aws: &fastcart_engine::Constraints,
) -> Vec<String> {
    constraint_pairs(ours, aws)
        .into_iter()
        .filter(|(_, ours, aws)| aws.is_some() && ours != aws)
        .map(|(what, ours, aws)| {
            format!(
                "{place}'s {what} is {} in the driver, {} in AWS's schema",
                ours.map_or("unset".into(), |v| v.to_string()),
                aws.map_or("unset".into(), |v| v.to_string()),
            )
        })
        .collect()
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
                problems.extend(disagreements(
                    &format!("{t}: {name}"),
                    &p.constraints,
                    &want,
                ));
                for (below, c) in &p.nested {
                    let place = format!("{t}: {name}/{below}");
                    match aws_node(&theirs, d, below) {
                        None => problems.push(format!("{place} is not in AWS's schema")),
                        Some(node) => {
                            let want = aws_constraints(&theirs, &node);
                            problems.extend(disagreements(&place, c, &want));
                        }
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

/// Every value the stacks set inside a property (a rule's protocol, a tag's
/// value, a container's port) that AWS's schema constrains has the same
/// constraints in the driver, so validation judges it before any AWS call
/// as it judges the properties themselves.
#[test]
fn every_value_the_stacks_set_inside_a_property_is_judged_as_aws_would() {
    let dir = schemas_dir();
    let registry = fastcart_drivers::offline_registry();
    let mut problems = std::collections::BTreeSet::new();
    let mut checked = 0;
    for stack in fastcart_stacks::names() {
        let options = fastcart_stacks::StackOptions {
            env: "dev".into(),
            region: fastcart_stacks::home_region(stack).into(),
            ..Default::default()
        };
        let spec = fastcart_stacks::stack(stack, &options).expect("a stack of this build");
        let owner = fastcart_engine::Ownership::of(&spec);
        for r in &spec.resources {
            let t = &r.type_name;
            let ours = registry.schema(t).expect("a driver for every type");
            let theirs = aws_schema(&dir, t);
            // The tags the resource is created with are judged too.
            let mut properties = r.properties.clone();
            if ours.taggable && theirs["properties"].get("Tags").is_some() {
                let created = owner.tags_for(&r.logical_id, &spec.tags);
                let mut tags = properties
                    .get("Tags")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                tags.extend(created.iter().map(|(k, v)| json!({"Key": k, "Value": v})));
                properties.insert("Tags".into(), Value::Array(tags));
            }
            for (name, value) in &properties {
                let Some(d) = theirs["properties"].get(name) else {
                    continue; // the other test says so
                };
                let mut inside = std::collections::BTreeMap::new();
                constrained_inside(&theirs, d, value, "", &mut inside);
                for (below, want) in inside {
                    checked += 1;
                    let place = format!("{t}: {name}/{below}");
                    match ours.property(name).and_then(|p| p.nested.get(&below)) {
                        None => {
                            problems.insert(format!(
                                "{place} is not judged by the driver; AWS's schema says {}",
                                serde_json::to_string(&want).unwrap()
                            ));
                        }
                        Some(c) => problems.extend(disagreements(&place, c, &want)),
                    }
                }
            }
        }
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 0, "no value inside a property was checked");
}
