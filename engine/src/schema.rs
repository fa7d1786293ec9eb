//! What a driver says about the type it manages, in the terms of AWS's
//! CloudFormation resource schemas: which properties exist, which are required,
//! which force replacement (createOnly), which are secrets AWS never returns
//! (writeOnly), which attributes `Fn::GetAtt` may read (readOnly), and which
//! property, if any, fixes the physical name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::constraint::Constraints;

/// How values of a property are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Compared as JSON values.
    #[default]
    Plain,
    /// A JSON document that may be given as an object or as a string holding
    /// JSON (IAM policies, container definitions); compared as parsed JSON and
    /// diffed line by line in plans.
    JsonDocument,
    /// A CloudFormation tag list `[{"Key":..,"Value":..}]`, compared as a map.
    Tags,
    /// A list AWS treats as a set: compared without order.
    UnorderedList,
    /// A set of documents (IAM inline policies): compared without order,
    /// each element exactly, as JSON documents are.
    DocumentSet,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PropertySchema {
    pub required: bool,
    /// Changing it replaces the resource.
    pub create_only: bool,
    /// Never read back from AWS (AWS's writeOnlyProperties): compared with
    /// what fastcart applied last, never with the cloud, and never drift.
    pub write_only: bool,
    /// A secret: write-only, kept in state and journal only as a salted hash,
    /// shown as `(sensitive)`.
    #[serde(default)]
    pub sensitive: bool,
    #[serde(skip_serializing_if = "is_plain", default)]
    pub kind: ValueKind,
    /// What a change of it behind fastcart's back means for security, if
    /// anything: drift-check flags such changes (and exits 3).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub guard: Option<Guard>,
    /// For a list of objects: the fields that name an element (a rule by
    /// protocol, ports and source), so that diffs say which element changed.
    /// Tags are named by their key without it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identity: Option<Vec<String>>,
    /// What AWS accepts in its value (AWS's schema's enum, lengths, range
    /// and pattern); validation refuses a literal that breaks them, before
    /// any AWS call.
    #[serde(skip_serializing_if = "Constraints::is_empty", default)]
    pub constraints: Constraints,
    /// What AWS accepts in values inside the property, by their path below
    /// it: `*` for each element of a list, a name for a field of an object
    /// (`*/IpProtocol` of `SecurityGroupIngress`, `*/Key` of `Tags`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub nested: BTreeMap<String, Constraints>,
}

/// A property that guards the resource, and so which drift of it is a
/// security finding. The engine judges the values generically; the driver
/// says which property is which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Network rules: a rule open to `0.0.0.0/0` or `::/0` that was not
    /// applied is a finding.
    Ingress,
    /// Policy documents: an `Allow` statement with `*` actions or resources
    /// that was not applied is a finding.
    Policy,
    /// Encryption, rotation, scanning: applied on, now off or gone.
    Protection,
    /// Public access: applied off, now on (`true`, `ENABLED`).
    Exposure,
}

fn is_plain(kind: &ValueKind) -> bool {
    *kind == ValueKind::Plain
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeSchema {
    #[serde(rename = "type")]
    pub type_name: String,
    pub properties: BTreeMap<String, PropertySchema>,
    /// Read-only attributes, readable with `Fn::GetAtt`.
    pub attributes: Vec<String>,
    /// Values an output may read with `Fastcart::Lookup` that no attribute
    /// publishes (a secret's current version id), answered by the driver's
    /// `lookup` after an apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<String>,
    /// The attribute whose value is the physical id (`GroupId` of a
    /// security group), when it has one besides `Ref`: `fastcart import`
    /// follows an `Fn::GetAtt` of it to the object it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_attribute: Option<String>,
    /// The property that fixes the physical name, if there is one: a
    /// replacement must then delete the old resource before creating the new.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fixed_name_property: Option<String>,
    /// Whether the type takes tags (and so carries ownership tags).
    #[serde(default)]
    pub taggable: bool,
    /// The type holds data a replacement would lose (a database, a cache,
    /// a stream, a secret, a key): apply refuses to replace one unless the
    /// operator names it (`ApplyOptions::allow_replace`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_data: bool,
    /// How long a create typically takes; weights the critical path in plans.
    #[serde(skip)]
    pub typical_duration: Duration,
    /// How long the driver's waits for this type may last before they give
    /// up: the worst case of one call, listed by `fastcart schema`.
    pub deadlines: Deadlines,
}

/// The deadlines of a type's waits. Each bounds a whole operation, however
/// many phases it has (detach, then wait until detached), and giving up is
/// `ErrorKind::DeadlineExceeded`, which nothing retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// Until a created or changed resource is ready (available, active,
    /// visible to reads).
    #[serde(rename = "ready_seconds", with = "seconds")]
    pub ready: Duration,
    /// Until a deleted resource is gone, "still in use" answers retried
    /// meanwhile.
    #[serde(rename = "gone_seconds", with = "seconds")]
    pub gone: Duration,
}

impl Deadlines {
    /// A type whose calls take effect at once: nothing to wait for (each
    /// call is still bounded by the SDK's attempts).
    pub const NONE: Deadlines = Deadlines {
        ready: Duration::ZERO,
        gone: Duration::ZERO,
    };
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines::NONE
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl TypeSchema {
    pub fn new(type_name: impl Into<String>) -> Self {
        TypeSchema {
            type_name: type_name.into(),
            properties: BTreeMap::new(),
            attributes: Vec::new(),
            lookups: Vec::new(),
            id_attribute: None,
            fixed_name_property: None,
            taggable: true,
            holds_data: false,
            typical_duration: Duration::from_secs(2),
            deadlines: Deadlines::default(),
        }
    }

    fn with_prop(mut self, name: &str, f: impl FnOnce(&mut PropertySchema)) -> Self {
        let p = self.properties.entry(name.to_string()).or_default();
        f(p);
        self
    }

    /// An optional, updatable property.
    pub fn prop(self, name: &str) -> Self {
        self.with_prop(name, |_| {})
    }

    pub fn required(self, name: &str) -> Self {
        self.with_prop(name, |p| p.required = true)
    }

    /// Marks a property create-only (adding it if needed).
    pub fn create_only(self, name: &str) -> Self {
        self.with_prop(name, |p| p.create_only = true)
    }

    /// Marks a property write-only: an input AWS never returns.
    pub fn write_only(self, name: &str) -> Self {
        self.with_prop(name, |p| p.write_only = true)
    }

    /// Marks a property a secret: write-only, hashed in state, never shown.
    pub fn secret(self, name: &str) -> Self {
        self.with_prop(name, |p| {
            p.write_only = true;
            p.sensitive = true;
        })
    }

    pub fn kind(self, name: &str, kind: ValueKind) -> Self {
        self.with_prop(name, |p| p.kind = kind)
    }

    /// Names the fields that identify an element of a list property.
    pub fn identity(self, name: &str, fields: &[&str]) -> Self {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        self.with_prop(name, |p| p.identity = Some(fields))
    }

    /// The constraints at `path`: a property's name, or a path inside its
    /// value (`SecurityGroupIngress/*/IpProtocol`, see
    /// [`PropertySchema::nested`]). Every constraint builder below takes
    /// either.
    fn constrain(self, path: &str, f: impl FnOnce(&mut Constraints)) -> Self {
        let (name, below) = path.split_once('/').unwrap_or((path, ""));
        self.with_prop(name, |p| {
            f(if below.is_empty() {
                &mut p.constraints
            } else {
                p.nested.entry(below.to_string()).or_default()
            })
        })
    }

    /// The most characters AWS accepts in the value at `path`.
    pub fn max_length(self, path: &str, max: usize) -> Self {
        self.constrain(path, |c| c.max_length = Some(max))
    }

    /// The fewest characters AWS accepts in the value at `path`.
    pub fn min_length(self, path: &str, min: usize) -> Self {
        self.constrain(path, |c| c.min_length = Some(min))
    }

    /// The lengths AWS accepts (AWS's `minLength` and `maxLength`).
    pub fn length(self, path: &str, min: usize, max: usize) -> Self {
        self.constrain(path, |c| {
            c.min_length = Some(min);
            c.max_length = Some(max);
        })
    }

    /// The only values AWS accepts (AWS's `enum`).
    pub fn one_of<V: Into<serde_json::Value> + Clone>(self, path: &str, values: &[V]) -> Self {
        let values = values.iter().cloned().map(Into::into).collect();
        self.constrain(path, |c| c.one_of = Some(values))
    }

    /// The numbers AWS accepts (AWS's `minimum` and `maximum`; either may
    /// be open).
    pub fn range(self, path: &str, min: Option<f64>, max: Option<f64>) -> Self {
        self.constrain(path, |c| {
            c.minimum = min;
            c.maximum = max;
        })
    }

    /// The pattern AWS holds the value at `path` to, in AWS's own words
    /// (`constraint::compile` reads it).
    pub fn pattern(self, path: &str, pattern: &str) -> Self {
        self.constrain(path, |c| c.pattern = Some(pattern.to_string()))
    }

    /// Marks what drift of a property means for security.
    pub fn guard(self, name: &str, guard: Guard) -> Self {
        self.with_prop(name, |p| p.guard = Some(guard))
    }

    pub fn attribute(mut self, name: &str) -> Self {
        self.attributes.push(name.to_string());
        self
    }

    /// A value outputs may read with `Fastcart::Lookup` (see [`crate::lookup`]).
    pub fn lookup(mut self, name: &str) -> Self {
        self.lookups.push(name.to_string());
        self
    }

    /// Names the attribute that equals the physical id (also an attribute).
    pub fn id_attribute(mut self, name: &str) -> Self {
        self.id_attribute = Some(name.to_string());
        self.attribute(name)
    }

    /// Names the property that fixes the physical name (also create-only).
    pub fn fixed_name(mut self, name: &str) -> Self {
        self.fixed_name_property = Some(name.to_string());
        self.create_only(name)
    }

    /// Marks the type as holding data a replacement would lose.
    pub fn holds_data(mut self) -> Self {
        self.holds_data = true;
        self
    }

    pub fn untaggable(mut self) -> Self {
        self.taggable = false;
        self
    }

    pub fn typical_duration(mut self, d: Duration) -> Self {
        self.typical_duration = d;
        self
    }

    /// How long waits for the resource to be ready and to be gone may last
    /// (zero: the driver does not wait for that). Without it, none.
    pub fn deadlines(mut self, ready: Duration, gone: Duration) -> Self {
        self.deadlines = Deadlines { ready, gone };
        self
    }

    pub fn property(&self, name: &str) -> Option<&PropertySchema> {
        self.properties.get(name)
    }

    pub fn is_create_only(&self, name: &str) -> bool {
        self.property(name).is_some_and(|p| p.create_only)
    }

    pub fn is_write_only(&self, name: &str) -> bool {
        self.property(name).is_some_and(|p| p.write_only)
    }

    pub fn is_sensitive(&self, name: &str) -> bool {
        self.property(name).is_some_and(|p| p.sensitive)
    }

    pub fn kind_of(&self, name: &str) -> ValueKind {
        self.property(name).map(|p| p.kind).unwrap_or_default()
    }

    /// Whether a replacement of this resource must delete the old one first.
    /// It must when the stack sets the property that fixes its name.
    pub fn replacement_deletes_first(&self, properties: &crate::Properties) -> bool {
        self.fixed_name_property
            .as_deref()
            .is_some_and(|p| properties.contains_key(p))
    }
}
