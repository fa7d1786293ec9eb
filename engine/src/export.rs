//! A stack as a CloudFormation template, so that the tools that judge
//! templates (cfn-lint, cfn-guard, checkov) can judge fastcart's stacks as
//! written. The model is CloudFormation's already (types, properties,
//! intrinsics); the export adds what CloudFormation keeps elsewhere:
//!
//! - the stack's tags on every resource whose type takes `Tags` (fastcart
//!   adds them at apply time; its ownership tags are left out);
//! - outputs under alphanumeric names (`vpc_id` → `VpcId`, the flat key in
//!   the description), a list joined with commas, as CloudFormation outputs
//!   are strings; an output read by `Fastcart::Lookup` is left out, as a
//!   template has no way to read such a value;
//! - a secret never as a value: a dynamic reference
//!   (`{{resolve:secretsmanager:...}}`, also inside `Fn::Sub`) stays as
//!   written; a literal secret becomes a `NoEcho` parameter without a
//!   default.
//!
//! Properties set for creation only are exported as they are: a template
//! has no such notion, and CloudFormation, like fastcart, sets them at
//! creation.

use serde_json::{json, Map, Value};

use crate::driver::Registry;
use crate::lookup::lookups;
use crate::model::StackSpec;

/// The stack as a CloudFormation template (JSON).
pub fn cloudformation(stack: &StackSpec, registry: &Registry) -> Value {
    let mut parameters = Map::new();
    let mut resources = Map::new();
    for r in &stack.resources {
        let schema = registry.schema(&r.type_name);
        let mut properties = r.properties.clone();
        for (name, value) in properties.iter_mut() {
            let secret = schema.is_some_and(|s| s.is_sensitive(name));
            if secret && !is_dynamic_reference(value) {
                let parameter = format!("{}{name}", r.logical_id);
                parameters.insert(
                    parameter.clone(),
                    json!({
                        "Type": "String",
                        "NoEcho": true,
                        "Description": format!("{name} of {}", r.logical_id),
                    }),
                );
                *value = json!({"Ref": parameter});
            }
        }
        let takes_tags = schema.is_some_and(|s| s.taggable && s.property("Tags").is_some());
        if takes_tags && !stack.tags.is_empty() {
            let mut tags: Vec<Value> = properties
                .get("Tags")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (k, v) in &stack.tags {
                if !tags.iter().any(|t| t["Key"] == json!(k)) {
                    tags.push(json!({"Key": k, "Value": v}));
                }
            }
            properties.insert("Tags".into(), Value::Array(tags));
        }
        let mut resource = Map::new();
        resource.insert("Type".into(), json!(r.type_name));
        if !properties.is_empty() {
            resource.insert("Properties".into(), Value::Object(properties));
        }
        if !r.depends_on.is_empty() {
            resource.insert("DependsOn".into(), json!(r.depends_on));
        }
        resources.insert(r.logical_id.clone(), Value::Object(resource));
    }
    let mut outputs = Map::new();
    for (key, value) in &stack.outputs {
        if matches!(lookups(value), Ok(l) if !l.is_empty()) {
            continue;
        }
        let value = match value {
            Value::Array(items) => json!({"Fn::Join": [",", items]}),
            Value::String(_) | Value::Object(_) => value.clone(),
            other => Value::String(other.to_string()),
        };
        outputs.insert(
            output_name(key),
            json!({"Description": format!("flat-outputs key {key}"), "Value": value}),
        );
    }
    let mut template = Map::new();
    template.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    template.insert(
        "Description".into(),
        json!(format!(
            "fastcart stack {}, exported by fastcart",
            stack.qualified_name()
        )),
    );
    if !parameters.is_empty() {
        template.insert("Parameters".into(), Value::Object(parameters));
    }
    template.insert("Resources".into(), Value::Object(resources));
    if !outputs.is_empty() {
        template.insert("Outputs".into(), Value::Object(outputs));
    }
    Value::Object(template)
}

/// A value CloudFormation resolves from a secret store at deploy time.
fn is_dynamic_reference(v: &Value) -> bool {
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => match o.get("Fn::Sub") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or_default(),
            _ => "",
        },
        _ => "",
    };
    text.starts_with("{{resolve:")
}

/// `vpc_id` → `VpcId`: output names are alphanumeric in CloudFormation.
fn output_name(key: &str) -> String {
    key.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{demo_schemas, FakeCloud};
    use crate::model::{r#ref, ResourceSpec};

    #[test]
    fn secrets_tags_outputs_as_cloudformation_has_them() {
        let cloud = FakeCloud::new();
        let registry = cloud.registry(demo_schemas());
        let mut s = StackSpec::new("shop", "dev");
        s.tag("Application", "Shop");
        s.add(
            ResourceSpec::new("Db", "Fake::Db::Instance")
                .prop("Identifier", "orders")
                .prop("MasterPassword", "s3cret-Pa55word"),
        );
        s.add(
            ResourceSpec::new("Net", "Fake::Net::Network")
                .prop("CidrBlock", "10.0.0.0/16")
                .depends_on("Db"),
        );
        s.output("network_id", r#ref("Net"));
        s.output("ids", json!([r#ref("Net"), r#ref("Db")]));
        let t = cloudformation(&s, &registry);
        let text = t.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(
            t["Resources"]["Db"]["Properties"]["MasterPassword"],
            json!({"Ref": "DbMasterPassword"})
        );
        assert_eq!(t["Parameters"]["DbMasterPassword"]["NoEcho"], json!(true));
        assert_eq!(t["Resources"]["Net"]["DependsOn"], json!(["Db"]));
        assert_eq!(
            t["Resources"]["Net"]["Properties"]["Tags"],
            json!([{"Key": "Application", "Value": "Shop"}])
        );
        assert_eq!(t["Outputs"]["NetworkId"]["Value"], json!({"Ref": "Net"}));
        assert_eq!(
            t["Outputs"]["Ids"]["Value"],
            json!({"Fn::Join": [",", [{"Ref": "Net"}, {"Ref": "Db"}]]})
        );
        let dynamic = json!({"Fn::Sub": "{{resolve:secretsmanager:${S}:SecretString:token}}"});
        assert!(is_dynamic_reference(&dynamic));
        assert_eq!(
            output_name("redis_primary_endpoint"),
            "RedisPrimaryEndpoint"
        );
    }
}
