//! The stack model: what a stack declares, as data.
//!
//! Properties are JSON values in CloudFormation's shape. A value may hold the
//! intrinsic functions `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`
//! and `Fn::GetAZs`, and `Ref` may name the pseudo parameters `AWS::Region`,
//! `AWS::AccountId` and `AWS::Partition`. The helpers at the bottom of this file
//! build those values so a stack written in Rust reads like a template.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Properties of one resource: property name to (unresolved) JSON value.
pub type Properties = Map<String, Value>;

/// A whole stack: its resources and the outputs it publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackSpec {
    /// The stack's name, such as `fastcart`.
    pub name: String,
    /// The environment suffix (`dev`, `pr123`, ...) carried by every name and tag.
    pub env: String,
    /// Tags every taggable resource of the stack carries, besides ownership tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Resources in declaration order. Logical ids are unique.
    pub resources: Vec<ResourceSpec>,
    /// Output name to (unresolved) value.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
}

impl StackSpec {
    pub fn new(name: impl Into<String>, env: impl Into<String>) -> Self {
        StackSpec {
            name: name.into(),
            env: env.into(),
            tags: BTreeMap::new(),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Adds a resource and returns `self`, for building stacks fluently.
    pub fn with(mut self, resource: ResourceSpec) -> Self {
        self.resources.push(resource);
        self
    }

    pub fn add(&mut self, resource: ResourceSpec) -> &mut Self {
        self.resources.push(resource);
        self
    }

    pub fn output(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.outputs.insert(name.into(), value.into());
        self
    }

    pub fn tag(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// One resource by logical id. A linear search: for many look-ups, use
    /// [`StackSpec::by_id`].
    pub fn resource(&self, logical_id: &str) -> Option<&ResourceSpec> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    /// Every resource by logical id.
    pub fn by_id(&self) -> HashMap<&str, &ResourceSpec> {
        self.resources
            .iter()
            .map(|r| (r.logical_id.as_str(), r))
            .collect()
    }

    /// `<name>-<env>`: the directory name of the stack's state and its identity
    /// in ownership tags.
    pub fn qualified_name(&self) -> String {
        format!("{}-{}", self.name, self.env)
    }

    /// A hash of the whole spec, carried by saved plans so that applying a plan
    /// against an edited stack is refused.
    pub fn content_hash(&self) -> String {
        // serde_json maps are ordered, so the serialization is canonical.
        let bytes = serde_json::to_vec(self).expect("a stack spec always serializes");
        hex(&Sha256::digest(&bytes))
    }
}

/// One resource of a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    pub logical_id: String,
    /// CloudFormation type name, such as `AWS::EC2::Subnet`.
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub properties: Properties,
    /// Explicit dependencies besides those implied by references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Properties the stack sets only when the resource is created (an ECS
    /// service's desired count, which a scaler moves afterwards): never
    /// compared after that, so neither plan nor drift-check reports what
    /// AWS made of them, and no update sends them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_only: Vec<String>,
}

impl ResourceSpec {
    pub fn new(logical_id: impl Into<String>, type_name: impl Into<String>) -> Self {
        ResourceSpec {
            logical_id: logical_id.into(),
            type_name: type_name.into(),
            properties: Map::new(),
            depends_on: Vec::new(),
            initial_only: Vec::new(),
        }
    }

    /// Sets a property.
    pub fn prop(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Sets a property for the resource's creation only (see
    /// [`ResourceSpec::initial_only`]).
    pub fn initial(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.properties.insert(name.clone(), value.into());
        if !self.initial_only.contains(&name) {
            self.initial_only.push(name);
        }
        self
    }

    /// Whether the stack sets `name` only at creation.
    pub fn is_initial_only(&self, name: &str) -> bool {
        self.initial_only.iter().any(|n| n == name)
    }

    /// Adds an explicit dependency.
    pub fn depends_on(mut self, logical_id: impl Into<String>) -> Self {
        self.depends_on.push(logical_id.into());
        self
    }

    /// The AWS service of the type: the middle part of `AWS::EC2::Subnet`.
    pub fn service(&self) -> &str {
        service_of(&self.type_name)
    }
}

/// The service part of a type name (`EC2` for `AWS::EC2::Subnet`).
pub fn service_of(type_name: &str) -> &str {
    type_name.split("::").nth(1).unwrap_or(type_name)
}

/// Where the engine is running: what the pseudo parameters and `Fn::GetAZs`
/// resolve to. The CLI fills it from the cloud (through the drivers); tests
/// and the fake cloud make one up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudContext {
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub availability_zones: Vec<String>,
}

impl CloudContext {
    pub fn new(region: impl Into<String>, account_id: impl Into<String>) -> Self {
        let region = region.into();
        let availability_zones = ["a", "b", "c"]
            .iter()
            .map(|s| format!("{region}{s}"))
            .collect();
        CloudContext {
            region,
            account_id: account_id.into(),
            partition: "aws".into(),
            availability_zones,
        }
    }
}

/// The ownership tag keys every resource is created with.
pub const TAG_STACK: &str = "fastcart:stack";
pub const TAG_ENV: &str = "fastcart:env";
pub const TAG_LOGICAL_ID: &str = "fastcart:logical-id";

/// `{"Ref": target}`: a resource's physical id, or a pseudo parameter.
pub fn r#ref(target: &str) -> Value {
    json!({ "Ref": target })
}

/// `{"Fn::GetAtt": [target, attribute]}`: an attribute of another resource.
pub fn get_att(target: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [target, attribute] })
}

/// `{"Fn::Sub": template}`: `${Name}`, `${Name.Attr}` and `${AWS::Region}` substituted.
pub fn sub(template: &str) -> Value {
    json!({ "Fn::Sub": template })
}

/// `{"Fn::Join": [delimiter, parts]}`.
pub fn join(delimiter: &str, parts: Vec<Value>) -> Value {
    json!({ "Fn::Join": [delimiter, parts] })
}

/// `{"Fn::Select": [index, list]}`.
pub fn select(index: usize, list: Value) -> Value {
    json!({ "Fn::Select": [index, list] })
}

/// `{"Fn::GetAZs": ""}`: the availability zones of the stack's region.
pub fn get_azs() -> Value {
    json!({ "Fn::GetAZs": "" })
}

/// A CloudFormation tag list from pairs.
pub fn tag_list<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect(),
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
