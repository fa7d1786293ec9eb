//! The driver trait: the engine's only window on a cloud.
//!
//! A driver manages one resource type. It is handed properties with every
//! reference already resolved, and it returns what AWS reports in the shape
//! of the type's schema, so that reading right after creating compares equal
//! to what was asked for.
//!
//! Guarantees a driver gives the engine:
//! - `read` takes many resources and answers for all of them, with as few
//!   requests as the API allows (one Describe/List per page).
//! - `create` tags the resource with the [`Ownership`] tags it is handed, so
//!   that `find_by_tags` can find it after the engine lost track of it.
//! - `delete` of a resource that is already gone succeeds.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{CloudContext, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK};
use crate::schema::TypeSchema;

/// A resource the engine already knows: its logical and physical id and the
/// properties last applied (with secrets hashed), which some APIs need to find
/// a resource again (a route is found through its route table).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceHandle {
    pub logical_id: String,
    pub physical_id: String,
    pub properties: Map<String, Value>,
    /// The attributes last recorded (empty when unknown: an adopted or
    /// searched-for object). A driver may skip reading an attribute that
    /// never changes in an object's life when it is here.
    pub attributes: Map<String, Value>,
}

/// What AWS reports about a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Properties in the schema's shape. Write-only properties are absent.
    pub properties: Map<String, Value>,
    /// Read-only attributes (`Fn::GetAtt`).
    pub attributes: Map<String, Value>,
}

/// Which stack and environment own a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub stack: String,
    pub env: String,
}

impl Ownership {
    /// The owner of the stack's resources.
    pub fn of(stack: &crate::model::StackSpec) -> Self {
        Ownership {
            stack: stack.name.clone(),
            env: stack.env.clone(),
        }
    }

    /// Whether `tags` say this owner made the resource `logical_id`.
    pub fn made(&self, tags: &BTreeMap<String, String>, logical_id: &str) -> bool {
        tags.get(TAG_STACK) == Some(&self.stack)
            && tags.get(TAG_ENV) == Some(&self.env)
            && tags.get(TAG_LOGICAL_ID).map(String::as_str) == Some(logical_id)
    }

    /// The ownership tags for one resource, merged over the stack's own tags.
    pub fn tags_for(
        &self,
        logical_id: &str,
        stack_tags: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut tags = stack_tags.clone();
        tags.insert(TAG_STACK.into(), self.stack.clone());
        tags.insert(TAG_ENV.into(), self.env.clone());
        tags.insert(TAG_LOGICAL_ID.into(), logical_id.into());
        tags
    }
}

pub struct CreateRequest<'a> {
    pub logical_id: &'a str,
    pub properties: &'a Map<String, Value>,
    /// Tags to attach at creation: the stack's tags plus ownership tags.
    pub tags: &'a BTreeMap<String, String>,
    /// Stable across retries of the same create, for APIs that take a client
    /// token.
    pub idempotency_token: &'a str,
    pub context: &'a CloudContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    pub physical_id: String,
    pub attributes: Map<String, Value>,
}

pub struct UpdateRequest<'a> {
    pub logical_id: &'a str,
    pub physical_id: &'a str,
    pub properties: &'a Map<String, Value>,
    /// The properties last applied (secrets hashed).
    pub previous: &'a Map<String, Value>,
    /// Top-level property names that changed.
    pub changed: &'a [String],
    pub tags: &'a BTreeMap<String, String>,
    pub context: &'a CloudContext,
}

/// What a search by natural key is given: the resource's properties that
/// resolve now. A property whose references do not resolve yet (a resource
/// not found so far) is absent.
pub struct KeyQuery<'a> {
    pub logical_id: &'a str,
    pub properties: &'a Map<String, Value>,
    pub context: &'a CloudContext,
}

/// An object found by its natural key, whoever made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub physical_id: String,
    /// What `read` reports of it.
    pub observed: Observed,
    /// The key it was found by, for people: `Name=fastcart-vpc-dev`.
    pub key: String,
    /// The tags its read reports (none when its type takes no tags; some
    /// drivers report tags only when the stack sets some), which tell what
    /// an earlier create of this stack made from the rest.
    pub tags: BTreeMap<String, String>,
}

/// The tags in a CloudFormation tag list (`[{"Key": .., "Value": ..}]`).
pub fn tag_map(tags: Option<&Value>) -> BTreeMap<String, String> {
    tags.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = t.get("Key")?.as_str()?;
            let value = match t.get("Value")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((key.to_string(), value))
        })
        .collect()
}

/// A resource found by its ownership tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub logical_id: String,
    pub physical_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate exceeded: worth retrying after a pause.
    Throttled,
    /// Another resource still uses this one: worth retrying for a while.
    DependencyViolation,
    NotFound,
    /// A create found the name taken. When the taken one carries this
    /// resource's ownership tags (an earlier create whose answer was lost, or
    /// that an interrupted apply never recorded), the engine adopts it.
    AlreadyExists,
    InvalidRequest,
    /// A mutating call got no answer, a 5xx or a throttle: it may or may
    /// not have taken effect. The engine looks for what it made before it
    /// sends it again (see `apply`), never blindly.
    OutcomeUnknown,
    /// A wait or a bounded retry ran out its deadline. Not retried again:
    /// whoever set the deadline already retried.
    DeadlineExceeded,
    /// A wait stopped because the user pressed Ctrl-C. What it waited for
    /// may still finish; the journal and the ownership tags let the next
    /// run find it.
    Cancelled,
    Other,
}

/// An error from the cloud: which operation, on what, and what it said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverError {
    pub kind: ErrorKind,
    /// The API operation, such as `ec2:CreateVpc`.
    pub operation: String,
    pub message: String,
    /// AWS's own error code (`InvalidPermission.Duplicate`), when it gave
    /// one: drivers decide on it, never on the message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl DriverError {
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        DriverError {
            kind,
            operation: operation.into(),
            message: message.into(),
            code: None,
        }
    }

    /// The same error carrying AWS's error code (none when `code` is empty).
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = (!code.is_empty()).then(|| code.to_string());
        self
    }

    /// Whether AWS answered with this error code.
    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether the engine's one retry loop per step may try again. Errors
    /// of calls the SDK already retried (reads, idempotent writes) come back
    /// with other kinds and are not retried a second time.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled | ErrorKind::DependencyViolation | ErrorKind::OutcomeUnknown
        )
    }

    /// Whether a create that failed this way may have made something, so
    /// the engine must look for it before sending the create again.
    pub fn may_have_created(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::OutcomeUnknown | ErrorKind::Throttled | ErrorKind::AlreadyExists
        )
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for DriverError {}

#[async_trait]
pub trait Driver: Send + Sync {
    fn schema(&self) -> &TypeSchema;

    /// Reads many resources of this type. The answer has one entry per
    /// handle, in order: `None` when the resource no longer exists.
    async fn read(
        &self,
        resources: &[ResourceHandle],
    ) -> Result<Vec<Option<Observed>>, DriverError>;

    async fn create(&self, request: CreateRequest<'_>) -> Result<Created, DriverError>;

    /// Updates in place; returns the attributes after the update.
    async fn update(&self, request: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError>;

    /// Deletes and waits until the resource is gone. Deleting a resource that
    /// does not exist succeeds.
    async fn delete(&self, resource: &ResourceHandle) -> Result<(), DriverError>;

    /// Every resource of this type carrying the owner's tags. It may list
    /// objects being deleted: the engine reads candidates before acting.
    /// A type that takes no tags (`TypeSchema::untaggable`: a route, an
    /// alias, a listener) has none to find, which is the default; a taggable
    /// type must say how its tags are searched.
    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let _ = owner;
        debug_assert!(
            !self.schema().taggable,
            "{} takes tags but does not say how to find them",
            self.schema().type_name
        );
        Ok(Vec::new())
    }

    /// Waits until an object this driver did not see created (adopted after
    /// a lost answer) is ready, as `create` waits for the objects it makes,
    /// and returns its attributes then (`None`: nothing to wait for, the
    /// attributes read are current). `resource.properties` are the desired
    /// ones.
    async fn ready(
        &self,
        resource: &ResourceHandle,
    ) -> Result<Option<Map<String, Value>>, DriverError> {
        let _ = resource;
        Ok(None)
    }

    /// What exists that the stack's resource describes, found by the type's
    /// natural key (its name; for an unnamed type what identifies it in its
    /// network, such as a VPC and a CIDR block), whoever made it and
    /// whatever tags it carries. `None`: the type has no key of its own (it
    /// is found through what refers to it), or the key's properties are not
    /// in `query` yet. The default looks under the name the stack fixes.
    async fn find_by_key(
        &self,
        query: &KeyQuery<'_>,
    ) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(prop) = self.schema().fixed_name_property.as_deref() else {
            return Ok(None);
        };
        let Some(name) = query.properties.get(prop).and_then(Value::as_str) else {
            return Ok(None);
        };
        let handle = ResourceHandle {
            logical_id: query.logical_id.to_string(),
            physical_id: name.to_string(),
            properties: query.properties.clone(),
            attributes: Map::new(),
        };
        let seen = self.read(std::slice::from_ref(&handle)).await?;
        Ok(Some(
            seen.into_iter()
                .flatten()
                .map(|observed| Candidate {
                    physical_id: name.to_string(),
                    tags: tag_map(observed.properties.get("Tags")),
                    observed,
                    key: format!("{prop}={name}"),
                })
                .collect(),
        ))
    }

    /// Adds `tags` to an object taken over by `fastcart import`, removing
    /// none. The default is an update of `Tags` alone, with the properties
    /// recorded for it as both the previous and the desired ones; types
    /// without tags have nothing to add.
    async fn tag_adopted(
        &self,
        resource: &ResourceHandle,
        tags: &BTreeMap<String, String>,
        context: &CloudContext,
    ) -> Result<(), DriverError> {
        if !self.schema().taggable {
            return Ok(());
        }
        self.update(UpdateRequest {
            logical_id: &resource.logical_id,
            physical_id: &resource.physical_id,
            properties: &resource.properties,
            previous: &resource.properties,
            changed: &["Tags".to_string()],
            tags,
            context,
        })
        .await
        .map(|_| ())
    }

    /// A value of the object `physical_id` that no attribute publishes,
    /// asked for by an output's `Fastcart::Lookup` after an apply; `name`
    /// is one of the schema's `lookups`. `None`: the object does not exist
    /// or has no such value now.
    async fn lookup(&self, physical_id: &str, name: &str) -> Result<Option<Value>, DriverError> {
        let _ = physical_id;
        Err(DriverError::new(
            ErrorKind::InvalidRequest,
            "fastcart:Lookup",
            format!("{} has no lookup {name}", self.schema().type_name),
        ))
    }
}

/// Finds the owner's resources of many types in one go, where the cloud has
/// a call that answers for all of them at once (on AWS, the Resource Groups
/// Tagging API). Types it does not cover are asked of their driver.
#[async_trait]
pub trait BatchFinder: Send + Sync {
    /// Whether `find` answers for resources of `type_name`.
    fn covers(&self, type_name: &str) -> bool;

    /// Every resource of the given (covered) types carrying the owner's
    /// tags, as `(type name, found)`. It may list objects that are being
    /// deleted; the engine reads candidates before it acts on them.
    async fn find(
        &self,
        owner: &Ownership,
        types: &[String],
    ) -> Result<Vec<(String, Found)>, DriverError>;
}

/// Type name to driver, and the batch finder over them if the cloud has one.
#[derive(Clone, Default)]
pub struct Registry {
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    finder: Option<Arc<dyn BatchFinder>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, driver: Arc<dyn Driver>) -> &mut Self {
        self.drivers
            .insert(driver.schema().type_name.clone(), driver);
        self
    }

    /// Finds resources of the types `finder` covers with one batch call
    /// instead of one `find_by_tags` per type.
    pub fn set_finder(&mut self, finder: Arc<dyn BatchFinder>) -> &mut Self {
        self.finder = Some(finder);
        self
    }

    pub fn finder(&self) -> Option<&Arc<dyn BatchFinder>> {
        self.finder.as_ref()
    }

    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(type_name)
    }

    pub fn schema(&self, type_name: &str) -> Option<&TypeSchema> {
        self.get(type_name).map(|d| d.schema())
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.drivers.keys().map(String::as_str)
    }

    pub fn schemas(&self) -> impl Iterator<Item = &TypeSchema> {
        self.drivers.values().map(|d| d.schema())
    }
}
