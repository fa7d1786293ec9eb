//! A fake cloud implementing [`Driver`] for any schema, in memory: for engine
//! tests and benchmarks, with no AWS SDK.
//!
//! It can delay each operation per type, fail chosen operations, throttle,
//! and it keeps an event log (start and end of every mutation, on tokio's
//! clock) and call counters that tests assert on.
//!
//! Like AWS, it commits a create when the request arrives and answers after
//! the latency: an apply cut off while waiting leaves the resource behind,
//! tagged, for the next run to find.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::driver::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, Registry, ResourceHandle, UpdateRequest,
};
use crate::model::{service_of, CloudContext, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK};
use crate::schema::{TypeSchema, ValueKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FakeOp {
    Read,
    Create,
    Update,
    Delete,
    /// A search by ownership tags.
    Find,
    /// A search by natural key.
    FindByKey,
    /// The wait for an adopted object to be ready.
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Instant,
    pub phase: Phase,
    pub op: FakeOp,
    pub logical_id: String,
    pub physical_id: String,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FakeResource {
    pub type_name: String,
    pub physical_id: String,
    pub properties: Map<String, Value>,
    pub attributes: Map<String, Value>,
    pub tags: BTreeMap<String, String>,
}

impl FakeResource {
    pub fn logical_id(&self) -> Option<&str> {
        self.tags.get(TAG_LOGICAL_ID).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// By (type, physical id): names are unique per type, as in AWS.
    resources: HashMap<(String, String), FakeResource>,
    events: Vec<Event>,
    calls: BTreeMap<(String, FakeOp), u64>,
    latency: BTreeMap<String, Duration>,
    default_latency: Duration,
    failures: BTreeMap<(String, FakeOp), String>,
    throttles: BTreeMap<String, u32>,
    /// Answers to lose: per (logical id, op), how many, and whether after
    /// the call took effect (else before it reached the cloud).
    lost: BTreeMap<(String, FakeOp), (u32, bool)>,
}

impl Inner {
    /// Takes one lost answer of this call, lost `after` it took effect or
    /// before: whether there was one.
    fn lose(&mut self, logical_id: &str, op: FakeOp, after: bool) -> bool {
        match self.lost.get_mut(&(logical_id.to_string(), op)) {
            Some((n, a)) if *n > 0 && *a == after => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

impl Inner {
    /// The resource with this physical id, of whatever type (tests name
    /// resources by physical id alone).
    fn find(&self, physical_id: &str) -> Option<&FakeResource> {
        let mut matches = self
            .resources
            .values()
            .filter(|r| r.physical_id == physical_id);
        let first = matches.next();
        assert!(
            matches.next().is_none(),
            "physical id {physical_id} names resources of several types"
        );
        first
    }
}

/// The fake cloud. Share it with `Arc`; every method takes `&self`.
#[derive(Default)]
pub struct FakeCloud {
    inner: Mutex<Inner>,
}

impl FakeCloud {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeCloud::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("fake cloud lock"))
    }

    /// A registry with one fake driver per schema.
    pub fn registry(self: &Arc<Self>, schemas: impl IntoIterator<Item = TypeSchema>) -> Registry {
        let mut r = Registry::new();
        for schema in schemas {
            r.register(Arc::new(FakeDriver {
                cloud: self.clone(),
                schema,
            }));
        }
        r
    }

    pub fn set_latency(&self, type_name: &str, d: Duration) {
        self.with(|i| i.latency.insert(type_name.into(), d));
    }

    pub fn set_default_latency(&self, d: Duration) {
        self.with(|i| i.default_latency = d);
    }

    /// Makes every `op` on `logical_id` fail with `message` until cleared.
    pub fn fail(&self, logical_id: &str, op: FakeOp, message: &str) {
        self.with(|i| i.failures.insert((logical_id.into(), op), message.into()));
    }

    pub fn clear_failures(&self) {
        self.with(|i| i.failures.clear());
    }

    /// Loses the answer to the next `times` calls of `op` on `logical_id`, as
    /// a timeout or a dropped connection does: `after` the call took effect
    /// (it did its work, the caller hears nothing) or before it reached the
    /// cloud. Either way the caller gets `ErrorKind::OutcomeUnknown`.
    pub fn lose_answers(&self, logical_id: &str, op: FakeOp, times: u32, after: bool) {
        self.with(|i| i.lost.insert((logical_id.into(), op), (times, after)));
    }

    /// Makes the next `times` mutations of `type_name` fail as throttled.
    pub fn throttle(&self, type_name: &str, times: u32) {
        self.with(|i| i.throttles.insert(type_name.into(), times));
    }

    /// Every resource, ordered by physical id.
    pub fn resources(&self) -> Vec<FakeResource> {
        let mut all: Vec<FakeResource> = self.with(|i| i.resources.values().cloned().collect());
        all.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        all
    }

    pub fn get(&self, physical_id: &str) -> Option<FakeResource> {
        self.with(|i| i.find(physical_id).cloned())
    }

    pub fn len(&self) -> usize {
        self.with(|i| i.resources.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes a property behind the engine's back (drift).
    pub fn set_property(&self, physical_id: &str, name: &str, value: Value) {
        self.with(|i| {
            let key = i
                .find(physical_id)
                .map(|r| (r.type_name.clone(), r.physical_id.clone()));
            if let Some(r) = key.and_then(|k| i.resources.get_mut(&k)) {
                r.properties.insert(name.into(), value);
            }
        });
    }

    /// A property of a resource as the cloud holds it.
    pub fn property(&self, physical_id: &str, name: &str) -> Option<Value> {
        self.with(|i| {
            i.find(physical_id)
                .and_then(|r| r.properties.get(name).cloned())
        })
    }

    /// Deletes a resource behind the engine's back.
    pub fn remove(&self, physical_id: &str) {
        self.with(|i| {
            let key = i
                .find(physical_id)
                .map(|r| (r.type_name.clone(), r.physical_id.clone()));
            key.map(|k| i.resources.remove(&k))
        });
    }

    pub fn events(&self) -> Vec<Event> {
        self.with(|i| i.events.clone())
    }

    pub fn clear_events(&self) {
        self.with(|i| {
            i.events.clear();
            i.calls.clear();
        });
    }

    /// How many calls of `op` were made for `type_name`.
    pub fn calls(&self, type_name: &str, op: FakeOp) -> u64 {
        self.with(|i| i.calls.get(&(type_name.into(), op)).copied().unwrap_or(0))
    }

    /// Calls of `op` over all types.
    pub fn total_calls(&self, op: FakeOp) -> u64 {
        self.with(|i| {
            i.calls
                .iter()
                .filter(|((_, o), _)| *o == op)
                .map(|(_, n)| n)
                .sum()
        })
    }
}

fn lost(operation: String) -> DriverError {
    DriverError::new(
        ErrorKind::OutcomeUnknown,
        operation,
        "no answer: the connection was closed (the call may have taken effect)",
    )
}

struct FakeDriver {
    cloud: Arc<FakeCloud>,
    schema: TypeSchema,
}

impl FakeDriver {
    fn op_name(&self, op: FakeOp) -> String {
        let verb = match op {
            FakeOp::Read => "Describe",
            FakeOp::Create => "Create",
            FakeOp::Update => "Modify",
            FakeOp::Delete => "Delete",
            FakeOp::Find => "GetResources",
            FakeOp::FindByKey => "List",
            FakeOp::Ready => "Wait",
        };
        let short = self
            .schema
            .type_name
            .rsplit("::")
            .next()
            .unwrap_or_default();
        format!("fake:{verb}{short}")
    }

    /// Counts the call, records its start, and applies injected faults.
    fn begin(
        &self,
        op: FakeOp,
        logical_id: &str,
        physical_id: &str,
    ) -> Result<Duration, DriverError> {
        let t = &self.schema.type_name;
        self.cloud.with(|i| {
            *i.calls.entry((t.clone(), op)).or_default() += 1;
            if matches!(
                op,
                FakeOp::Read | FakeOp::Find | FakeOp::FindByKey | FakeOp::Ready
            ) {
                return Ok(Duration::ZERO);
            }
            i.events.push(Event {
                at: Instant::now(),
                phase: Phase::Start,
                op,
                logical_id: logical_id.into(),
                physical_id: physical_id.into(),
                ok: true,
            });
            let lost_before = i.lose(logical_id, op, false);
            let fault = if lost_before {
                Some(lost(self.op_name(op)))
            } else if let Some(n) = i.throttles.get_mut(t).filter(|n| **n > 0) {
                *n -= 1;
                Some(DriverError::new(
                    ErrorKind::Throttled,
                    self.op_name(op),
                    "Rate exceeded",
                ))
            } else {
                i.failures.get(&(logical_id.to_string(), op)).map(|m| {
                    DriverError::new(ErrorKind::InvalidRequest, self.op_name(op), m.clone())
                })
            };
            match fault {
                Some(e) => {
                    i.events.push(Event {
                        at: Instant::now(),
                        phase: Phase::End,
                        op,
                        logical_id: logical_id.into(),
                        physical_id: physical_id.into(),
                        ok: false,
                    });
                    Err(e)
                }
                None => Ok(i.latency.get(t).copied().unwrap_or(i.default_latency)),
            }
        })
    }

    fn end(&self, op: FakeOp, logical_id: &str, physical_id: &str) {
        self.cloud.with(|i| {
            i.events.push(Event {
                at: Instant::now(),
                phase: Phase::End,
                op,
                logical_id: logical_id.into(),
                physical_id: physical_id.into(),
                ok: true,
            })
        });
    }

    fn readable(&self, props: &Map<String, Value>) -> Map<String, Value> {
        props
            .iter()
            .filter(|(k, _)| !self.schema.is_write_only(k))
            .map(|(k, v)| {
                // Like AWS, documents come back as JSON strings.
                let v = match (self.schema.kind_of(k), v) {
                    (ValueKind::JsonDocument, Value::Object(_)) => Value::String(v.to_string()),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(
        &self,
        resources: &[ResourceHandle],
    ) -> Result<Vec<Option<Observed>>, DriverError> {
        self.begin(FakeOp::Read, "", "")?;
        Ok(self.cloud.with(|i| {
            resources
                .iter()
                .map(|h| {
                    i.resources
                        .get(&(self.schema.type_name.clone(), h.physical_id.clone()))
                        .map(|r| Observed {
                            properties: self.readable(&r.properties),
                            attributes: r.attributes.clone(),
                        })
                })
                .collect()
        }))
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let latency = self.begin(FakeOp::Create, req.logical_id, "")?;
        let t = &self.schema.type_name;
        let fixed = self
            .schema
            .fixed_name_property
            .as_ref()
            .and_then(|p| req.properties.get(p))
            .and_then(Value::as_str)
            .map(String::from);
        let created = self.cloud.with(|i| {
            if let Some(name) = &fixed {
                if i.resources.contains_key(&(t.clone(), name.clone())) {
                    return Err(DriverError::new(
                        ErrorKind::AlreadyExists,
                        self.op_name(FakeOp::Create),
                        format!("{name} already exists"),
                    ));
                }
            }
            i.next_id += 1;
            let short = t.rsplit("::").next().unwrap_or("res").to_lowercase();
            let physical_id = fixed.unwrap_or_else(|| format!("{short}-{:05}", i.next_id));
            let attributes: Map<String, Value> = self
                .schema
                .attributes
                .iter()
                .map(|a| {
                    let v = if a == "Arn" {
                        format!(
                            "arn:{}:{}:{}:{}:{short}/{physical_id}",
                            req.context.partition,
                            service_of(t).to_lowercase(),
                            req.context.region,
                            req.context.account_id
                        )
                    } else {
                        format!("{physical_id}.{a}")
                    };
                    (a.clone(), Value::String(v))
                })
                .collect();
            i.resources.insert(
                (t.clone(), physical_id.clone()),
                FakeResource {
                    type_name: t.clone(),
                    physical_id: physical_id.clone(),
                    properties: req.properties.clone(),
                    attributes: attributes.clone(),
                    tags: req.tags.clone(),
                },
            );
            Ok(Created {
                physical_id,
                attributes,
            })
        });
        tokio::time::sleep(latency).await;
        let created = created?;
        self.end(FakeOp::Create, req.logical_id, &created.physical_id);
        if self
            .cloud
            .with(|i| i.lose(req.logical_id, FakeOp::Create, true))
        {
            return Err(lost(self.op_name(FakeOp::Create)));
        }
        Ok(created)
    }

    /// A lookup reads the property of that name as the cloud holds it.
    async fn lookup(&self, physical_id: &str, name: &str) -> Result<Option<Value>, DriverError> {
        self.begin(FakeOp::Read, "", physical_id)?;
        if !self.schema.lookups.iter().any(|l| l == name) {
            return Err(DriverError::new(
                ErrorKind::InvalidRequest,
                self.op_name(FakeOp::Read),
                format!("no lookup {name}"),
            ));
        }
        Ok(self.cloud.with(|i| {
            i.resources
                .get(&(self.schema.type_name.clone(), physical_id.to_string()))
                .and_then(|r| r.properties.get(name).cloned())
        }))
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let latency = self.begin(FakeOp::Update, req.logical_id, req.physical_id)?;
        tokio::time::sleep(latency).await;
        let attrs = self.cloud.with(|i| {
            let key = (self.schema.type_name.clone(), req.physical_id.to_string());
            i.resources.get_mut(&key).map(|r| {
                // As AWS's update calls do: what changed, nothing else.
                for name in req.changed {
                    match req.properties.get(name) {
                        Some(v) => r.properties.insert(name.clone(), v.clone()),
                        None => r.properties.remove(name),
                    };
                }
                r.attributes.clone()
            })
        });
        let attrs = attrs.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                self.op_name(FakeOp::Update),
                format!("{} does not exist", req.physical_id),
            )
        })?;
        self.end(FakeOp::Update, req.logical_id, req.physical_id);
        Ok(attrs)
    }

    async fn delete(&self, r: &ResourceHandle) -> Result<(), DriverError> {
        let latency = self.begin(FakeOp::Delete, &r.logical_id, &r.physical_id)?;
        tokio::time::sleep(latency).await;
        let key = (self.schema.type_name.clone(), r.physical_id.clone());
        self.cloud.with(|i| i.resources.remove(&key));
        self.end(FakeOp::Delete, &r.logical_id, &r.physical_id);
        Ok(())
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        self.begin(FakeOp::Find, "", "")?;
        Ok(self.cloud.with(|i| {
            i.resources
                .values()
                .filter(|r| {
                    r.type_name == self.schema.type_name
                        && r.tags.get(TAG_STACK) == Some(&owner.stack)
                        && r.tags.get(TAG_ENV) == Some(&owner.env)
                })
                .filter_map(|r| {
                    Some(Found {
                        logical_id: r.logical_id()?.to_string(),
                        physical_id: r.physical_id.clone(),
                    })
                })
                .collect()
        }))
    }

    /// By the name the stack fixes, else by `CidrBlock` (and `NetworkId`,
    /// when the type has it), like EC2's keys; other types have none.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let keys: Vec<&str> = match self.schema.fixed_name_property.as_deref() {
            Some(name) => vec![name],
            None if self.schema.properties.contains_key("CidrBlock") => ["NetworkId", "CidrBlock"]
                .into_iter()
                .filter(|k| self.schema.properties.contains_key(*k))
                .collect(),
            None => return Ok(None),
        };
        let mut wanted = Vec::new();
        for k in &keys {
            match q.properties.get(*k) {
                Some(v) => wanted.push((*k, v)),
                None => return Ok(None),
            }
        }
        self.begin(FakeOp::FindByKey, q.logical_id, "")?;
        let by_name = self.schema.fixed_name_property.is_some();
        let key: Vec<String> = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut found: Vec<Candidate> = self.cloud.with(|i| {
            i.resources
                .values()
                .filter(|r| r.type_name == self.schema.type_name)
                .filter(|r| {
                    wanted.iter().all(|(k, v)| match by_name {
                        true => Some(r.physical_id.as_str()) == v.as_str(),
                        false => r.properties.get(*k) == Some(*v),
                    })
                })
                .map(|r| Candidate {
                    physical_id: r.physical_id.clone(),
                    tags: r.tags.clone(),
                    observed: Observed {
                        properties: self.readable(&r.properties),
                        attributes: r.attributes.clone(),
                    },
                    key: key.join(", "),
                })
                .collect()
        });
        found.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        Ok(Some(found))
    }

    /// Adds the tags, as an update (so failures can be injected there).
    async fn tag_adopted(
        &self,
        r: &ResourceHandle,
        tags: &BTreeMap<String, String>,
        _context: &CloudContext,
    ) -> Result<(), DriverError> {
        self.begin(FakeOp::Update, &r.logical_id, &r.physical_id)?;
        let key = (self.schema.type_name.clone(), r.physical_id.clone());
        self.cloud.with(|i| {
            if let Some(res) = i.resources.get_mut(&key) {
                res.tags.extend(tags.clone());
            }
        });
        self.end(FakeOp::Update, &r.logical_id, &r.physical_id);
        Ok(())
    }

    /// Counted, so tests see that an adopted object was waited for; the
    /// fake's objects are ready at once.
    async fn ready(&self, r: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        self.begin(FakeOp::Ready, &r.logical_id, &r.physical_id)?;
        Ok(None)
    }
}

/// Schemas of a small made-up cloud, shaped like AWS's, for tests, benches
/// and examples.
pub fn demo_schemas() -> Vec<TypeSchema> {
    vec![
        TypeSchema::new("Fake::Net::Network")
            .required("CidrBlock")
            .create_only("CidrBlock")
            .prop("Tags")
            .kind("Tags", ValueKind::Tags)
            .attribute("NetworkId")
            .attribute("Arn")
            .typical_duration(Duration::from_secs(2)),
        TypeSchema::new("Fake::Net::Subnet")
            .required("NetworkId")
            .create_only("NetworkId")
            .required("CidrBlock")
            .create_only("CidrBlock")
            .prop("Zone")
            .create_only("Zone")
            .prop("Tags")
            .kind("Tags", ValueKind::Tags)
            .pattern("Tags/*/Value", "^[\\p{L}\\p{N}_.:/=+\\-@]*$")
            .attribute("SubnetId")
            .typical_duration(Duration::from_secs(2)),
        TypeSchema::new("Fake::Queue::Stream")
            .fixed_name("StreamName")
            .max_length("StreamName", 32)
            .prop("RetentionHours")
            .prop("Shards")
            .prop("KeyId")
            .guard("KeyId", crate::schema::Guard::Protection)
            .attribute("Arn")
            .lookup("Shards")
            .typical_duration(Duration::from_secs(20)),
        TypeSchema::new("Fake::Db::Instance")
            .fixed_name("Identifier")
            .required("Engine")
            .create_only("Engine")
            .prop("SubnetIds")
            .kind("SubnetIds", ValueKind::UnorderedList)
            .prop("Size")
            .secret("MasterPassword")
            .attribute("Endpoint.Address")
            .attribute("Arn")
            .typical_duration(Duration::from_secs(600)),
        TypeSchema::new("Fake::Iam::Role")
            .required("PolicyDocument")
            .guard("PolicyDocument", crate::schema::Guard::Policy)
            .kind("PolicyDocument", ValueKind::JsonDocument)
            .prop("Description")
            .attribute("Arn")
            .typical_duration(Duration::from_secs(3)),
        TypeSchema::new("Fake::Generic::Thing")
            .prop("Name")
            .create_only("Name")
            .prop("Size")
            .prop("Inputs")
            .prop("Secret")
            .secret("Secret")
            .attribute("Arn")
            .typical_duration(Duration::from_secs(1)),
    ]
}

/// `services` made-up services with one type each, `Fake::Svc<i>::Thing`,
/// shaped like the resources of the property tests.
pub fn generic_schemas(services: usize) -> Vec<TypeSchema> {
    (0..services)
        .map(|i| {
            TypeSchema::new(format!("Fake::Svc{i}::Thing"))
                .prop("Name")
                .create_only("Name")
                .prop("Size")
                .prop("Inputs")
                .attribute("Arn")
        })
        .collect()
}

/// A random DAG of `n` resources over [`generic_schemas`]`(services)`: each
/// resource reads the `Arn` of up to `max_deps` earlier ones. The same seed
/// gives the same stack.
pub fn random_stack(n: usize, max_deps: usize, services: usize, seed: u64) -> crate::StackSpec {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut next = move |bound: usize| {
        // xorshift64*: small, fast, and good enough for shapes.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(2685821657736338717) >> 33) as usize % bound.max(1)
    };
    let mut stack = crate::StackSpec::new("bench", "gen");
    for i in 0..n {
        let mut deps: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            (0..next(max_deps + 1)).map(|_| next(i)).collect()
        };
        deps.sort_unstable();
        deps.dedup();
        let inputs: Vec<Value> = deps
            .iter()
            .map(|d| crate::get_att(&format!("R{d}"), "Arn"))
            .collect();
        stack.add(
            crate::ResourceSpec::new(
                format!("R{i}"),
                format!("Fake::Svc{}::Thing", next(services)),
            )
            .prop("Name", format!("r{i}"))
            .prop("Size", next(4) as u64)
            .prop("Inputs", Value::Array(inputs)),
        );
    }
    stack
}
