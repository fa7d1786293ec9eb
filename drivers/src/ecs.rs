//! ECS: `AWS::ECS::Cluster`, `AWS::ECS::TaskDefinition` and
//! `AWS::ECS::Service`.
//!
//! - A cluster is named (its physical id is the name); `DescribeClusters`
//!   takes up to 100 names, so a read of many clusters is one call per 100.
//! - A task definition has no fixed name: every registration is a new
//!   revision with its own ARN, which is the physical id. There is no batch
//!   describe, so a read is one `DescribeTaskDefinition` per revision.
//! - A service is named within its cluster; its physical id is its ARN, which
//!   (in the long ARN format) names the cluster too. `DescribeServices` takes
//!   up to 10 services of one cluster.
//!
//! What moto 5.2.5 does that shaped this module:
//! - `CreateCluster` with a taken name and `CreateService` with a taken name
//!   succeed and overwrite; `CreateService` ignores `clientToken`. Both creates
//!   look first.
//! - `UpdateClusterSettings` is not implemented; `UpdateCluster` with
//!   `settings` is (and does the same on AWS), so settings go through it.
//! - Deleted clusters and services stay, `INACTIVE`, in `Describe*` and in the
//!   tagging API; `find_by_tags` therefore checks their status.
//! - Services never start tasks: `runningCount` stays 0 and the deployment
//!   `IN_PROGRESS` for ever. The tests' emulator (tests/support/moto_server.py)
//!   runs them, so `settled` makes the same check against it as against ECS.
//! - A task definition that does not exist is a `ClientException` "Unable to
//!   describe task definition." (as on AWS), not a `*NotFound` code.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    ApplicationProtocol, AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem,
    Cluster as EcsCluster, ClusterField, ClusterSetting, ClusterSettingName, Compatibility,
    ContainerCondition, ContainerDefinition, ContainerDependency, CpuArchitecture,
    DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentRolloutState, EphemeralStorage,
    HealthCheck, KeyValuePair, LaunchType, LogConfiguration, LogDriver, NetworkConfiguration,
    NetworkMode, OsFamily, PortMapping, PropagateTags, RuntimePlatform, Secret,
    Service as EcsService, ServiceField, Tag, TaskDefinition as EcsTaskDefinition,
    TaskDefinitionField, TaskDefinitionStatus, TransportProtocol,
};
use fastcart_engine::{
    CreateRequest, Created, Driver, DriverError, ErrorKind, Found, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK,
};
use serde_json::{json, Map, Value};

use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{
    all_tags, bool_of, i32_of, need_str, removed_tags, str_of, strs_of, tags_value, Obs,
};
use crate::sdk::Clients;
use crate::{tagging, wait};

type Obj = Map<String, Value>;

const NOTHING: &[Value] = &[];

// ---------------------------------------------------------------------------
// Shared helpers: tags, and reading nested CloudFormation objects strictly.

fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// ECS tags as a CloudFormation tag list.
fn tags_of(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Whether a resource's tags carry the same ownership tags as `want`: it is
/// what an earlier attempt of this very create made.
fn same_owner(tags: &[Tag], want: &BTreeMap<String, String>) -> bool {
    [TAG_STACK, TAG_ENV, TAG_LOGICAL_ID].iter().all(|k| {
        let have = tags
            .iter()
            .find(|t| t.key() == Some(*k))
            .and_then(|t| t.value());
        have.is_some() && have == want.get(*k).map(String::as_str)
    })
}

/// Sets `tags` on the resource `arn` and removes `removed`.
async fn sync_tags(
    c: &Clients,
    arn: &str,
    tags: &BTreeMap<String, String>,
    removed: &[String],
) -> Result<(), DriverError> {
    if !tags.is_empty() {
        c.pace("ECS").await;
        c.ecs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecs_tags(tags)))
            .send()
            .await
            .op("ecs:TagResource", arn)?;
    }
    if !removed.is_empty() {
        c.pace("ECS").await;
        c.ecs
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(removed.to_vec()))
            .send()
            .await
            .op("ecs:UntagResource", arn)?;
    }
    Ok(())
}

fn put(o: &mut Obj, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        o.insert(key.to_string(), v.into());
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn given<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn obj<'a>(v: &'a Value, what: &str, op: &str) -> Result<&'a Obj, DriverError> {
    v.as_object()
        .ok_or_else(|| invalid(op, format!("{what} must be an object")))
}

fn list<'a>(o: &'a Obj, key: &str, what: &str, op: &str) -> Result<&'a [Value], DriverError> {
    match given(o, key) {
        None => Ok(NOTHING),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(invalid(op, format!("{what}.{key} must be a list"))),
    }
}

/// Rejects keys fastcart does not handle, rather than ignoring them.
fn only_keys(o: &Obj, allowed: &[&str], what: &str, op: &str) -> Result<(), DriverError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            op,
            format!(
                "{what}: {k} is not supported (supported: {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn need<'a>(o: &'a Obj, key: &str, what: &str, op: &str) -> Result<&'a str, DriverError> {
    str_of(o, key).ok_or_else(|| invalid(op, format!("{what}.{key} must be a string")))
}

fn text<'a>(o: &'a Obj, key: &str, what: &str, op: &str) -> Result<Option<&'a str>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(op, format!("{what}.{key} must be a string"))),
    }
}

fn num(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<i32>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(_) => i32_of(o, key)
            .map(Some)
            .ok_or_else(|| invalid(op, format!("{what}.{key} must be a number"))),
    }
}

fn flag(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<bool>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(_) => bool_of(o, key)
            .map(Some)
            .ok_or_else(|| invalid(op, format!("{what}.{key} must be true or false"))),
    }
}

fn texts(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<Vec<String>>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                scalar(v)
                    .ok_or_else(|| invalid(op, format!("{what}.{key} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(
            op,
            format!("{what}.{key} must be a list of strings"),
        )),
    }
}

/// A list of `{Name, <second>}` pairs (`Value` or `ValueFrom`).
fn pairs(
    o: &Obj,
    key: &str,
    second: &str,
    what: &str,
    op: &str,
) -> Result<Option<Vec<(String, String)>>, DriverError> {
    if given(o, key).is_none() {
        return Ok(None);
    }
    let w = format!("{what}.{key}[]");
    let mut out = Vec::new();
    for item in list(o, key, what, op)? {
        let item = obj(item, &w, op)?;
        only_keys(item, &["Name", second], &w, op)?;
        let name = need(item, "Name", &w, op)?.to_string();
        let value = given(item, second)
            .and_then(scalar)
            .ok_or_else(|| invalid(op, format!("{w}.{second} must be a string")))?;
        out.push((name, value));
    }
    Ok(Some(out))
}

fn secrets(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<Vec<Secret>>, DriverError> {
    let Some(items) = pairs(o, key, "ValueFrom", what, op)? else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|(name, from)| {
            Secret::builder()
                .name(name)
                .value_from(from)
                .build()
                .map_err(|e| invalid(op, format!("{what}.{key}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

// ---------------------------------------------------------------------------
// Container definitions: CloudFormation's PascalCase objects <-> SDK types.

const CONTAINER_KEYS: &[&str] = &[
    "Name",
    "Image",
    "Essential",
    "Cpu",
    "Memory",
    "MemoryReservation",
    "PortMappings",
    "Environment",
    "Secrets",
    "LogConfiguration",
    "Command",
    "EntryPoint",
    "HealthCheck",
    "WorkingDirectory",
    "User",
    "ReadonlyRootFilesystem",
    "StopTimeout",
    "StartTimeout",
    "DependsOn",
];

fn container_definition(v: &Value, op: &str) -> Result<ContainerDefinition, DriverError> {
    let o = obj(v, "each of ContainerDefinitions", op)?;
    let name = need(o, "Name", "ContainerDefinitions[]", op)?;
    let what = format!("ContainerDefinitions[{name}]");
    let what = what.as_str();
    only_keys(o, CONTAINER_KEYS, what, op)?;
    let mut b = ContainerDefinition::builder()
        .name(name)
        .image(need(o, "Image", what, op)?)
        .set_essential(flag(o, "Essential", what, op)?)
        .set_cpu(num(o, "Cpu", what, op)?)
        .set_memory(num(o, "Memory", what, op)?)
        .set_memory_reservation(num(o, "MemoryReservation", what, op)?)
        .set_command(texts(o, "Command", what, op)?)
        .set_entry_point(texts(o, "EntryPoint", what, op)?)
        .set_working_directory(text(o, "WorkingDirectory", what, op)?.map(String::from))
        .set_user(text(o, "User", what, op)?.map(String::from))
        .set_readonly_root_filesystem(flag(o, "ReadonlyRootFilesystem", what, op)?)
        .set_stop_timeout(num(o, "StopTimeout", what, op)?)
        .set_start_timeout(num(o, "StartTimeout", what, op)?)
        .set_secrets(secrets(o, "Secrets", what, op)?);
    if given(o, "PortMappings").is_some() {
        let w = format!("{what}.PortMappings[]");
        let mut ports = Vec::new();
        for p in list(o, "PortMappings", what, op)? {
            let p = obj(p, &w, op)?;
            only_keys(
                p,
                &[
                    "ContainerPort",
                    "HostPort",
                    "Protocol",
                    "Name",
                    "AppProtocol",
                    "ContainerPortRange",
                ],
                &w,
                op,
            )?;
            ports.push(
                PortMapping::builder()
                    .set_container_port(num(p, "ContainerPort", &w, op)?)
                    .set_host_port(num(p, "HostPort", &w, op)?)
                    .set_protocol(text(p, "Protocol", &w, op)?.map(TransportProtocol::from))
                    .set_name(text(p, "Name", &w, op)?.map(String::from))
                    .set_app_protocol(
                        text(p, "AppProtocol", &w, op)?.map(ApplicationProtocol::from),
                    )
                    .set_container_port_range(
                        text(p, "ContainerPortRange", &w, op)?.map(String::from),
                    )
                    .build(),
            );
        }
        b = b.set_port_mappings(Some(ports));
    }
    if let Some(env) = pairs(o, "Environment", "Value", what, op)? {
        b = b.set_environment(Some(
            env.into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ));
    }
    if let Some(lc) = given(o, "LogConfiguration") {
        let w = format!("{what}.LogConfiguration");
        let lc = obj(lc, &w, op)?;
        only_keys(lc, &["LogDriver", "Options", "SecretOptions"], &w, op)?;
        let options = match given(lc, "Options") {
            None => None,
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| {
                        scalar(v)
                            .map(|v| (k.clone(), v))
                            .ok_or_else(|| invalid(op, format!("{w}.Options.{k} must be a string")))
                    })
                    .collect::<Result<HashMap<String, String>, DriverError>>()?,
            ),
            Some(_) => return Err(invalid(op, format!("{w}.Options must be an object"))),
        };
        b = b.log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::from(need(lc, "LogDriver", &w, op)?))
                .set_options(options)
                .set_secret_options(secrets(lc, "SecretOptions", &w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    if let Some(hc) = given(o, "HealthCheck") {
        let w = format!("{what}.HealthCheck");
        let hc = obj(hc, &w, op)?;
        only_keys(
            hc,
            &["Command", "Interval", "Timeout", "Retries", "StartPeriod"],
            &w,
            op,
        )?;
        b = b.health_check(
            HealthCheck::builder()
                .set_command(texts(hc, "Command", &w, op)?)
                .set_interval(num(hc, "Interval", &w, op)?)
                .set_timeout(num(hc, "Timeout", &w, op)?)
                .set_retries(num(hc, "Retries", &w, op)?)
                .set_start_period(num(hc, "StartPeriod", &w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    if given(o, "DependsOn").is_some() {
        let w = format!("{what}.DependsOn[]");
        let mut deps = Vec::new();
        for d in list(o, "DependsOn", what, op)? {
            let d = obj(d, &w, op)?;
            only_keys(d, &["ContainerName", "Condition"], &w, op)?;
            deps.push(
                ContainerDependency::builder()
                    .container_name(need(d, "ContainerName", &w, op)?)
                    .condition(ContainerCondition::from(need(d, "Condition", &w, op)?))
                    .build()
                    .map_err(|e| invalid(op, format!("{w}: {e}")))?,
            );
        }
        b = b.set_depends_on(Some(deps));
    }
    Ok(b.build())
}

fn secrets_json(secrets: &[Secret]) -> Value {
    Value::Array(
        secrets
            .iter()
            .map(|s| json!({"Name": s.name(), "ValueFrom": s.value_from()}))
            .collect(),
    )
}

/// What AWS reports about a container, in CloudFormation's shape. Numbers
/// stay numbers; lists are always present (AWS reports empty ones).
/// ECS does not keep the order of a container's environment variables and
/// secrets: lists them in the order the stack gave them (matched by name,
/// container by container), so the same set reads back equal. Entries the
/// stack did not give go last, so a variable added behind fastcart's back is
/// still a difference.
fn in_given_order(seen: &mut Value, given: &Value) {
    let (Value::Array(seen), Value::Array(given)) = (seen, given) else {
        return;
    };
    for container in seen.iter_mut() {
        let name = container.get("Name").cloned();
        let Some(wanted) = given.iter().find(|g| g.get("Name") == name.as_ref()) else {
            continue;
        };
        for key in ["Environment", "Secrets"] {
            let order: Vec<&Value> = match wanted.get(key) {
                Some(Value::Array(items)) => items.iter().filter_map(|i| i.get("Name")).collect(),
                _ => continue,
            };
            if let Some(Value::Array(items)) = container.get_mut(key) {
                items.sort_by_key(|i| {
                    i.get("Name")
                        .and_then(|n| order.iter().position(|o| *o == n))
                        .unwrap_or(usize::MAX)
                });
            }
        }
    }
}

fn container_json(c: &ContainerDefinition) -> Value {
    let mut o = Map::new();
    put(&mut o, "Name", c.name());
    put(&mut o, "Image", c.image());
    put(&mut o, "Essential", c.essential());
    o.insert("Cpu".into(), c.cpu().into());
    put(&mut o, "Memory", c.memory());
    put(&mut o, "MemoryReservation", c.memory_reservation());
    o.insert(
        "PortMappings".into(),
        Value::Array(
            c.port_mappings()
                .iter()
                .map(|p| {
                    let mut m = Map::new();
                    put(&mut m, "ContainerPort", p.container_port());
                    put(&mut m, "HostPort", p.host_port());
                    put(&mut m, "Protocol", p.protocol().map(|x| x.as_str()));
                    put(&mut m, "Name", p.name());
                    put(&mut m, "AppProtocol", p.app_protocol().map(|x| x.as_str()));
                    put(&mut m, "ContainerPortRange", p.container_port_range());
                    Value::Object(m)
                })
                .collect(),
        ),
    );
    o.insert(
        "Environment".into(),
        Value::Array(
            c.environment()
                .iter()
                .map(|e| {
                    json!({
                        "Name": e.name().unwrap_or_default(),
                        "Value": e.value().unwrap_or_default(),
                    })
                })
                .collect(),
        ),
    );
    o.insert("Secrets".into(), secrets_json(c.secrets()));
    if let Some(lc) = c.log_configuration() {
        let mut m = Map::new();
        m.insert("LogDriver".into(), lc.log_driver().as_str().into());
        if let Some(options) = lc.options() {
            m.insert(
                "Options".into(),
                Value::Object(
                    options
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
            );
        }
        if !lc.secret_options().is_empty() {
            m.insert("SecretOptions".into(), secrets_json(lc.secret_options()));
        }
        o.insert("LogConfiguration".into(), Value::Object(m));
    }
    o.insert("Command".into(), Value::from(c.command().to_vec()));
    o.insert("EntryPoint".into(), Value::from(c.entry_point().to_vec()));
    if let Some(hc) = c.health_check() {
        let mut m = Map::new();
        m.insert("Command".into(), Value::from(hc.command().to_vec()));
        put(&mut m, "Interval", hc.interval());
        put(&mut m, "Timeout", hc.timeout());
        put(&mut m, "Retries", hc.retries());
        put(&mut m, "StartPeriod", hc.start_period());
        o.insert("HealthCheck".into(), Value::Object(m));
    }
    put(&mut o, "WorkingDirectory", c.working_directory());
    put(&mut o, "User", c.user());
    put(
        &mut o,
        "ReadonlyRootFilesystem",
        c.readonly_root_filesystem(),
    );
    put(&mut o, "StopTimeout", c.stop_timeout());
    put(&mut o, "StartTimeout", c.start_timeout());
    o.insert(
        "DependsOn".into(),
        Value::Array(
            c.depends_on()
                .iter()
                .map(|d| {
                    json!({
                        "ContainerName": d.container_name(),
                        "Condition": d.condition().as_str(),
                    })
                })
                .collect(),
        ),
    );
    Value::Object(o)
}

// ---------------------------------------------------------------------------
// AWS::ECS::Cluster

/// Clusters, task-definition revisions and services in the tagging API. A
/// revision and a service are known by their ARN.
pub const CLUSTER_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:cluster",
    arn: "ecs:cluster/",
    id: tagging::after_slash,
};
pub const TASK_DEFINITION_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:task-definition",
    arn: "ecs:task-definition/",
    id: tagging::whole,
};
pub const SERVICE_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:service",
    arn: "ecs:service/",
    id: tagging::whole,
};

pub struct Cluster {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// A cluster that exists: not deleted, nor being deleted.
fn cluster_live(cl: &EcsCluster) -> bool {
    !matches!(cl.status(), Some("INACTIVE" | "DEPROVISIONING"))
}

/// The name in a cluster's or service's ARN (the part after the last `/`),
/// or the name itself.
fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

fn cluster_settings_of(p: &Obj, op: &str) -> Result<Option<Vec<ClusterSetting>>, DriverError> {
    if given(p, "ClusterSettings").is_none() {
        return Ok(None);
    }
    let w = "ClusterSettings[]";
    let mut out = Vec::new();
    for s in list(p, "ClusterSettings", "ClusterSettings", op)? {
        let s = obj(s, w, op)?;
        only_keys(s, &["Name", "Value"], w, op)?;
        let value = given(s, "Value")
            .and_then(scalar)
            .ok_or_else(|| invalid(op, format!("{w}.Value must be a string")))?;
        out.push(
            ClusterSetting::builder()
                .set_name(Some(ClusterSettingName::from(need(s, "Name", w, op)?)))
                .set_value(Some(value))
                .build(),
        );
    }
    Ok(Some(out))
}

fn strategy_of(
    p: &Obj,
    op: &str,
) -> Result<Option<Vec<CapacityProviderStrategyItem>>, DriverError> {
    if given(p, "DefaultCapacityProviderStrategy").is_none() {
        return Ok(None);
    }
    let w = "DefaultCapacityProviderStrategy[]";
    let mut out = Vec::new();
    for s in list(
        p,
        "DefaultCapacityProviderStrategy",
        "DefaultCapacityProviderStrategy",
        op,
    )? {
        let s = obj(s, w, op)?;
        only_keys(s, &["CapacityProvider", "Weight", "Base"], w, op)?;
        out.push(
            CapacityProviderStrategyItem::builder()
                .capacity_provider(need(s, "CapacityProvider", w, op)?)
                .set_weight(num(s, "Weight", w, op)?)
                .set_base(num(s, "Base", w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    Ok(Some(out))
}

fn capacity_providers_of(p: &Obj) -> Option<Vec<String>> {
    given(p, "CapacityProviders").map(|_| strs_of(p, "CapacityProviders"))
}

impl Cluster {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::Cluster")
            .required("ClusterName")
            .fixed_name("ClusterName")
            .prop("ClusterSettings")
            .kind("CapacityProviders", ValueKind::UnorderedList)
            .prop("DefaultCapacityProviderStrategy")
            .kind("Tags", ValueKind::Tags)
            .attribute("Arn")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(300), Duration::from_secs(600));
        Cluster { c, schema }
    }

    /// Clusters by name, with their tags and settings: one call per 100.
    async fn describe(&self, names: &[String]) -> Result<HashMap<String, EcsCluster>, DriverError> {
        let mut found = HashMap::new();
        for chunk in names.chunks(100) {
            let out = self
                .c
                .ecs
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .include(ClusterField::Tags)
                .include(ClusterField::Settings)
                .send()
                .await
                .op("ecs:DescribeClusters", &chunk.join(","))?;
            for cl in out.clusters() {
                if let Some(name) = cl.cluster_name() {
                    found.insert(name.to_string(), cl.clone());
                }
            }
        }
        Ok(found)
    }

    async fn describe_one(&self, name: &str) -> Result<Option<EcsCluster>, DriverError> {
        Ok(self
            .describe(&[name.to_string()])
            .await?
            .remove(name)
            .filter(cluster_live))
    }

    fn attributes(cl: &EcsCluster) -> Map<String, Value> {
        let mut a = Map::new();
        put(&mut a, "Arn", cl.cluster_arn());
        a
    }

    /// Sets the settings and capacity providers the stack gives (for a cluster
    /// adopted from an earlier attempt of the same create).
    async fn reconcile(&self, name: &str, p: &Obj, op: &str) -> Result<(), DriverError> {
        if let Some(settings) = cluster_settings_of(p, op)? {
            self.c.pace("ECS").await;
            self.c
                .ecs
                .update_cluster()
                .cluster(name)
                .set_settings(Some(settings))
                .send()
                .await
                .op("ecs:UpdateCluster", name)?;
        }
        let providers = capacity_providers_of(p);
        let strategy = strategy_of(p, op)?;
        if providers.is_some() || strategy.is_some() {
            self.put_capacity_providers(name, providers, strategy)
                .await?;
        }
        Ok(())
    }

    /// `PutClusterCapacityProviders` takes both lists, and replaces both.
    async fn put_capacity_providers(
        &self,
        name: &str,
        providers: Option<Vec<String>>,
        strategy: Option<Vec<CapacityProviderStrategyItem>>,
    ) -> Result<(), DriverError> {
        self.c.pace("ECS").await;
        self.c
            .ecs
            .put_cluster_capacity_providers()
            .cluster(name)
            .set_capacity_providers(Some(providers.unwrap_or_default()))
            .set_default_capacity_provider_strategy(Some(strategy.unwrap_or_default()))
            .send()
            .await
            .op("ecs:PutClusterCapacityProviders", name)?;
        Ok(())
    }
}

#[async_trait]
impl Driver for Cluster {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let mut names: Vec<String> = handles
            .iter()
            .map(|h| name_of(&h.physical_id).to_string())
            .collect();
        names.sort();
        names.dedup();
        let found = self.describe(&names).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let cl = found
                    .get(name_of(&h.physical_id))
                    .filter(|cl| cluster_live(cl))?;
                let settings: Vec<Value> = cl
                    .settings()
                    .iter()
                    .map(|s| {
                        json!({
                            "Name": s.name().map(|n| n.as_str()).unwrap_or_default(),
                            "Value": s.value().unwrap_or_default(),
                        })
                    })
                    .collect();
                let strategy: Vec<Value> = cl
                    .default_capacity_provider_strategy()
                    .iter()
                    .map(|s| {
                        json!({
                            "CapacityProvider": s.capacity_provider(),
                            "Weight": s.weight(),
                            "Base": s.base(),
                        })
                    })
                    .collect();
                Some(
                    Obs::new()
                        .prop("ClusterName", cl.cluster_name())
                        .prop("ClusterSettings", Some(Value::Array(settings)))
                        .prop(
                            "CapacityProviders",
                            Some(Value::from(cl.capacity_providers().to_vec())),
                        )
                        .prop(
                            "DefaultCapacityProviderStrategy",
                            Some(Value::Array(strategy)),
                        )
                        .prop("Tags", Some(tags_of(cl.tags())))
                        .attr("Arn", cl.cluster_arn())
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:CreateCluster";
        let name = need_str(p, "ClusterName", op)?.to_string();
        let settings = cluster_settings_of(p, op)?;
        let strategy = strategy_of(p, op)?;
        // Look before creating: CreateCluster with a taken name succeeds and
        // hands back the existing cluster (on AWS and on moto alike).
        if let Some(existing) = self.describe_one(&name).await? {
            if !same_owner(existing.tags(), req.tags) {
                return Err(DriverError::new(
                    ErrorKind::InvalidRequest,
                    op,
                    format!(
                        "{name}: a cluster with this name already exists and was not made by \
                         this resource (its ownership tags differ)"
                    ),
                ));
            }
            // An earlier attempt of this very create made it: adopt it.
            self.reconcile(&name, p, op).await?;
            sync_tags(
                &self.c,
                existing.cluster_arn().unwrap_or_default(),
                &all_tags(p, req.tags),
                &[],
            )
            .await?;
            return Ok(Created {
                physical_id: name,
                attributes: Self::attributes(&existing),
            });
        }
        self.c.pace("ECS").await;
        let out = self
            .c
            .ecs
            .create_cluster()
            .cluster_name(&name)
            .set_settings(settings)
            .set_capacity_providers(capacity_providers_of(p))
            .set_default_capacity_provider_strategy(strategy)
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .send()
            .await
            .op(op, &name)?;
        let mut cluster = out.cluster().cloned();
        // With capacity providers a cluster is PROVISIONING for a while.
        if cluster.as_ref().and_then(|c| c.status()) != Some("ACTIVE") {
            cluster = Some(
                wait::until(
                    "ecs:DescribeClusters",
                    &format!("cluster {name} to become ACTIVE"),
                    self.schema.deadlines.ready,
                    || async {
                        let cl = self
                            .describe(std::slice::from_ref(&name))
                            .await?
                            .remove(&name);
                        let status = cl.as_ref().and_then(|c| c.status()).map(String::from);
                        match status.as_deref() {
                            Some("ACTIVE") => Ok(cl),
                            Some("FAILED") => Err(DriverError::new(
                                ErrorKind::Other,
                                op,
                                format!(
                                    "{name}: the cluster FAILED to provision (attachments: {})",
                                    cl.as_ref()
                                        .and_then(|c| c.attachments_status())
                                        .unwrap_or("unknown")
                                ),
                            )),
                            _ => Ok(None),
                        }
                    },
                )
                .await?,
            );
        }
        Ok(Created {
            attributes: cluster.as_ref().map(Self::attributes).unwrap_or_default(),
            physical_id: name,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = name_of(req.physical_id);
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("ClusterSettings") {
            // UpdateCluster takes the settings as UpdateClusterSettings does;
            // moto implements only the former.
            if let Some(settings) = cluster_settings_of(p, "ecs:UpdateCluster")? {
                self.c.pace("ECS").await;
                self.c
                    .ecs
                    .update_cluster()
                    .cluster(name)
                    .set_settings(Some(settings))
                    .send()
                    .await
                    .op("ecs:UpdateCluster", name)?;
            }
        }
        if changed("CapacityProviders") || changed("DefaultCapacityProviderStrategy") {
            let strategy = strategy_of(p, "ecs:PutClusterCapacityProviders")?;
            self.put_capacity_providers(name, capacity_providers_of(p), strategy)
                .await?;
        }
        let cl = self.describe_one(name).await?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                "ecs:DescribeClusters",
                format!("{name}: the cluster does not exist"),
            )
        })?;
        sync_tags(
            &self.c,
            cl.cluster_arn().unwrap_or_default(),
            &all_tags(p, req.tags),
            &removed_tags(req.previous, p, req.tags),
        )
        .await?;
        Ok(Self::attributes(&cl))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = name_of(&h.physical_id);
        // A cluster refuses deletion while services (draining ones too) or
        // tasks remain in it.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        wait::deleted(deadline.left(), || async {
            self.c.pace("ECS").await;
            self.c
                .ecs
                .delete_cluster()
                .cluster(name)
                .send()
                .await
                .op("ecs:DeleteCluster", name)
        })
        .await?;
        wait::until(
            "ecs:DescribeClusters",
            &format!("cluster {name} to become INACTIVE"),
            deadline.left(),
            || async { Ok(self.describe_one(name).await?.is_none().then_some(())) },
        )
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &CLUSTER_TAGGED).await
    }
}

// ---------------------------------------------------------------------------
// AWS::ECS::TaskDefinition

pub struct TaskDefinition {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// Whether an error says the task definition does not exist: ECS answers a
/// `ClientException` for it, not a `*NotFound` code.
fn task_definition_gone(e: &DriverError) -> bool {
    is_gone(e)
        || e.message.contains("Unable to describe task definition")
        || e.message
            .contains("specified task definition does not exist")
}

/// A revision that is deregistered or being deleted: gone, for fastcart.
fn retired(td: &EcsTaskDefinition) -> bool {
    matches!(
        td.status(),
        Some(TaskDefinitionStatus::Inactive | TaskDefinitionStatus::DeleteInProgress)
    )
}

fn runtime_platform_of(p: &Obj, op: &str) -> Result<Option<RuntimePlatform>, DriverError> {
    let Some(v) = given(p, "RuntimePlatform") else {
        return Ok(None);
    };
    let w = "RuntimePlatform";
    let o = obj(v, w, op)?;
    only_keys(o, &["CpuArchitecture", "OperatingSystemFamily"], w, op)?;
    Ok(Some(
        RuntimePlatform::builder()
            .set_cpu_architecture(text(o, "CpuArchitecture", w, op)?.map(CpuArchitecture::from))
            .set_operating_system_family(
                text(o, "OperatingSystemFamily", w, op)?.map(OsFamily::from),
            )
            .build(),
    ))
}

fn ephemeral_storage_of(p: &Obj, op: &str) -> Result<Option<EphemeralStorage>, DriverError> {
    let Some(v) = given(p, "EphemeralStorage") else {
        return Ok(None);
    };
    let w = "EphemeralStorage";
    let o = obj(v, w, op)?;
    only_keys(o, &["SizeInGiB"], w, op)?;
    Ok(Some(
        EphemeralStorage::builder()
            .set_size_in_gib(num(o, "SizeInGiB", w, op)?)
            .build(),
    ))
}

impl TaskDefinition {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::TaskDefinition")
            .required("Family")
            .create_only("Family")
            .required("ContainerDefinitions")
            .create_only("ContainerDefinitions")
            .create_only("Cpu")
            .create_only("Memory")
            .create_only("NetworkMode")
            .create_only("RequiresCompatibilities")
            .kind("RequiresCompatibilities", ValueKind::UnorderedList)
            .create_only("ExecutionRoleArn")
            .create_only("TaskRoleArn")
            .create_only("RuntimePlatform")
            .create_only("EphemeralStorage")
            .kind("Tags", ValueKind::Tags)
            .attribute("TaskDefinitionArn")
            .typical_duration(Duration::from_secs(2))
            // Registering and deregistering a revision take effect at once.
            .deadlines(Duration::ZERO, Duration::ZERO);
        TaskDefinition { c, schema }
    }

    /// One revision and its tags; `None` when it does not exist.
    async fn describe(
        &self,
        arn: &str,
    ) -> Result<Option<(EcsTaskDefinition, Vec<Tag>)>, DriverError> {
        let r = self
            .c
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .op("ecs:DescribeTaskDefinition", arn);
        let out = match r {
            Ok(out) => out,
            Err(e) if task_definition_gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out
            .task_definition()
            .map(|td| (td.clone(), out.tags().to_vec())))
    }

    fn observe(td: &EcsTaskDefinition, tags: &[Tag]) -> Observed {
        let platform = td.runtime_platform().map(|r| {
            let mut m = Map::new();
            put(
                &mut m,
                "CpuArchitecture",
                r.cpu_architecture().map(|x| x.as_str()),
            );
            put(
                &mut m,
                "OperatingSystemFamily",
                r.operating_system_family().map(|x| x.as_str()),
            );
            Value::Object(m)
        });
        let compatibilities: Vec<&str> = td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect();
        Obs::new()
            .prop("Family", td.family())
            .prop(
                "ContainerDefinitions",
                Some(Value::Array(
                    td.container_definitions()
                        .iter()
                        .map(container_json)
                        .collect(),
                )),
            )
            .prop("Cpu", td.cpu())
            .prop("Memory", td.memory())
            .prop("NetworkMode", td.network_mode().map(|m| m.as_str()))
            .prop(
                "RequiresCompatibilities",
                Some(Value::from(compatibilities)),
            )
            .prop("ExecutionRoleArn", td.execution_role_arn())
            .prop("TaskRoleArn", td.task_role_arn())
            .prop("RuntimePlatform", platform)
            .prop(
                "EphemeralStorage",
                td.ephemeral_storage()
                    .map(|e| json!({"SizeInGiB": e.size_in_gib()})),
            )
            .prop("Tags", Some(tags_of(tags)))
            .attr("TaskDefinitionArn", td.task_definition_arn())
            .done()
    }
}

#[async_trait]
impl Driver for TaskDefinition {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // DescribeTaskDefinition takes one revision: ECS has no batch
        // describe for task definitions, so this is one call per revision.
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(match self.describe(&h.physical_id).await? {
                Some((td, tags)) if !retired(&td) => {
                    let mut o = Self::observe(&td, &tags);
                    if let (Some(seen), Some(given)) = (
                        o.properties.get_mut("ContainerDefinitions"),
                        h.properties.get("ContainerDefinitions"),
                    ) {
                        in_given_order(seen, given);
                    }
                    Some(o)
                }
                _ => None,
            });
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:RegisterTaskDefinition";
        let family = need_str(p, "Family", op)?;
        let containers = match given(p, "ContainerDefinitions") {
            Some(Value::Array(defs)) if !defs.is_empty() => defs
                .iter()
                .map(|d| container_definition(d, op))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(invalid(
                    op,
                    "ContainerDefinitions must be a non-empty list of container objects",
                ))
            }
        };
        let compatibilities: Option<Vec<Compatibility>> =
            given(p, "RequiresCompatibilities").map(|_| {
                strs_of(p, "RequiresCompatibilities")
                    .iter()
                    .map(|c| Compatibility::from(c.as_str()))
                    .collect()
            });
        self.c.pace("ECS").await;
        let out = self
            .c
            .ecs
            .register_task_definition()
            .family(family)
            .set_container_definitions(Some(containers))
            .set_cpu(given(p, "Cpu").and_then(scalar))
            .set_memory(given(p, "Memory").and_then(scalar))
            .set_network_mode(str_of(p, "NetworkMode").map(NetworkMode::from))
            .set_requires_compatibilities(compatibilities)
            .set_execution_role_arn(str_of(p, "ExecutionRoleArn").map(String::from))
            .set_task_role_arn(str_of(p, "TaskRoleArn").map(String::from))
            .set_runtime_platform(runtime_platform_of(p, op)?)
            .set_ephemeral_storage(ephemeral_storage_of(p, op)?)
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .send()
            .await
            .op(op, family)?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{family}: the answer names no task definition ARN"),
                )
            })?
            .to_string();
        let mut attributes = Map::new();
        attributes.insert("TaskDefinitionArn".into(), Value::String(arn.clone()));
        Ok(Created {
            physical_id: arn,
            attributes,
        })
    }

    /// Everything but the tags is create-only: a change to it registers a new
    /// revision (a replacement).
    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        sync_tags(
            &self.c,
            arn,
            &all_tags(req.properties, req.tags),
            &removed_tags(req.previous, req.properties, req.tags),
        )
        .await?;
        let mut attributes = Map::new();
        attributes.insert("TaskDefinitionArn".into(), Value::String(arn.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        let Some((td, _)) = self.describe(arn).await? else {
            return Ok(());
        };
        match td.status() {
            Some(TaskDefinitionStatus::DeleteInProgress) => return Ok(()),
            Some(TaskDefinitionStatus::Inactive) => {}
            _ => {
                self.c.pace("ECS").await;
                let r = self
                    .c
                    .ecs
                    .deregister_task_definition()
                    .task_definition(arn)
                    .send()
                    .await
                    .op("ecs:DeregisterTaskDefinition", arn);
                match r {
                    Err(e) if task_definition_gone(&e) => return Ok(()),
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
            }
        }
        // Deregistered is where CloudFormation stops, and the revision reads
        // as gone from here on. Deleting it for good is a courtesy: if that
        // fails (say, no permission for it), the delete still succeeded.
        self.c.pace("ECS").await;
        let _ = self
            .c
            .ecs
            .delete_task_definitions()
            .task_definitions(arn)
            .send()
            .await;
        Ok(())
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &TASK_DEFINITION_TAGGED).await
    }
}

// ---------------------------------------------------------------------------
// AWS::ECS::Service

pub struct Service {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// The cluster a service is in: from its ARN (`…:service/<cluster>/<name>`,
/// the long format), else from its `Cluster` property, else the default
/// cluster.
fn cluster_for(arn: &str, props: &Obj) -> String {
    if let Some((_, rest)) = arn.split_once(":service/") {
        if let Some((cluster, _)) = rest.split_once('/') {
            return cluster.to_string();
        }
    }
    match str_of(props, "Cluster") {
        Some(c) => name_of(c).to_string(),
        None => "default".to_string(),
    }
}

/// The service name in an ARN (or a name).
/// A task definition ARN in the form the stack gave it: an ARN, a
/// `family:revision`, or a bare family (which means the latest revision).
fn task_definition_in_form(applied: Option<&str>, arn: &str) -> String {
    match applied {
        None => arn.to_string(),
        Some(a) if a.starts_with("arn:") => arn.to_string(),
        Some(a) => {
            let family_rev = arn
                .split_once("task-definition/")
                .map(|(_, r)| r)
                .unwrap_or(arn);
            if a.contains(':') {
                family_rev.to_string()
            } else {
                family_rev
                    .split(':')
                    .next()
                    .unwrap_or(family_rev)
                    .to_string()
            }
        }
    }
}

fn network_of(p: &Obj, op: &str) -> Result<Option<NetworkConfiguration>, DriverError> {
    let Some(v) = given(p, "NetworkConfiguration") else {
        return Ok(None);
    };
    let w = "NetworkConfiguration";
    let o = obj(v, w, op)?;
    only_keys(o, &["AwsvpcConfiguration"], w, op)?;
    let Some(a) = given(o, "AwsvpcConfiguration") else {
        return Ok(Some(NetworkConfiguration::builder().build()));
    };
    let w = "NetworkConfiguration.AwsvpcConfiguration";
    let a = obj(a, w, op)?;
    only_keys(a, &["Subnets", "SecurityGroups", "AssignPublicIp"], w, op)?;
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(texts(a, "Subnets", w, op)?)
        .set_security_groups(texts(a, "SecurityGroups", w, op)?)
        .set_assign_public_ip(text(a, "AssignPublicIp", w, op)?.map(AssignPublicIp::from))
        .build()
        .map_err(|e| invalid(op, format!("{w}: {e}")))?;
    Ok(Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    ))
}

fn network_json(n: &NetworkConfiguration) -> Value {
    let mut o = Map::new();
    if let Some(a) = n.awsvpc_configuration() {
        let mut m = Map::new();
        m.insert("Subnets".into(), Value::from(a.subnets().to_vec()));
        m.insert(
            "SecurityGroups".into(),
            Value::from(a.security_groups().to_vec()),
        );
        put(
            &mut m,
            "AssignPublicIp",
            a.assign_public_ip().map(|x| x.as_str()),
        );
        o.insert("AwsvpcConfiguration".into(), Value::Object(m));
    }
    Value::Object(o)
}

fn deployment_of(p: &Obj, op: &str) -> Result<Option<DeploymentConfiguration>, DriverError> {
    let Some(v) = given(p, "DeploymentConfiguration") else {
        return Ok(None);
    };
    let w = "DeploymentConfiguration";
    let o = obj(v, w, op)?;
    only_keys(
        o,
        &[
            "MaximumPercent",
            "MinimumHealthyPercent",
            "DeploymentCircuitBreaker",
        ],
        w,
        op,
    )?;
    let breaker = match given(o, "DeploymentCircuitBreaker") {
        None => None,
        Some(b) => {
            let w = "DeploymentConfiguration.DeploymentCircuitBreaker";
            let b = obj(b, w, op)?;
            only_keys(b, &["Enable", "Rollback"], w, op)?;
            Some(
                DeploymentCircuitBreaker::builder()
                    .set_enable(flag(b, "Enable", w, op)?)
                    .set_rollback(flag(b, "Rollback", w, op)?)
                    .build(),
            )
        }
    };
    Ok(Some(
        DeploymentConfiguration::builder()
            .set_maximum_percent(num(o, "MaximumPercent", w, op)?)
            .set_minimum_healthy_percent(num(o, "MinimumHealthyPercent", w, op)?)
            .set_deployment_circuit_breaker(breaker)
            .build(),
    ))
}

fn deployment_json(d: &DeploymentConfiguration) -> Value {
    let mut o = Map::new();
    put(&mut o, "MaximumPercent", d.maximum_percent());
    put(&mut o, "MinimumHealthyPercent", d.minimum_healthy_percent());
    if let Some(b) = d.deployment_circuit_breaker() {
        o.insert(
            "DeploymentCircuitBreaker".into(),
            json!({"Enable": b.enable(), "Rollback": b.rollback()}),
        );
    }
    Value::Object(o)
}

/// Whether a service has reached a steady state, as ECS's own
/// `services-stable` waiter judges it and more: ACTIVE, one deployment, the
/// PRIMARY one, its rollout COMPLETED (or not reported, as for deployment
/// controllers without rollouts), and as many tasks running as desired.
/// A FAILED rollout is an error.
fn settled(s: &EcsService, op: &str) -> Result<bool, DriverError> {
    let name = s.service_name().unwrap_or_default();
    match s.status() {
        Some("ACTIVE") => {}
        Some("DRAINING" | "INACTIVE") => {
            return Err(DriverError::new(
                ErrorKind::Other,
                op,
                format!("{name}: the service was deleted while waiting for it to settle"),
            ))
        }
        _ => return Ok(false),
    }
    if let Some(d) = s
        .deployments()
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        return Err(DriverError::new(
            ErrorKind::Other,
            op,
            format!(
                "{name}: deployment {} failed: {}",
                d.id().unwrap_or_default(),
                d.rollout_state_reason().unwrap_or("no reason given")
            ),
        ));
    }
    let rolled_out = match s.deployments() {
        // EXTERNAL and CODE_DEPLOY controllers report task sets instead.
        [] => true,
        [d] => {
            d.status() == Some("PRIMARY")
                && d.rollout_state()
                    .is_none_or(|r| *r == DeploymentRolloutState::Completed)
        }
        _ => false,
    };
    Ok(rolled_out && s.running_count() == s.desired_count())
}

impl Service {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::Service")
            .required("ServiceName")
            .fixed_name("ServiceName")
            .create_only("Cluster")
            .prop("TaskDefinition")
            .prop("DesiredCount")
            // Updatable in AWS's schema only through a capacity provider
            // strategy, which fastcart does not offer: create-only here.
            .create_only("LaunchType")
            .prop("NetworkConfiguration")
            .prop("PlatformVersion")
            .prop("DeploymentConfiguration")
            .prop("EnableExecuteCommand")
            .prop("PropagateTags")
            .kind("Tags", ValueKind::Tags)
            .attribute("ServiceArn")
            .attribute("Name")
            .typical_duration(Duration::from_secs(120))
            .deadlines(Duration::from_secs(900), Duration::from_secs(900));
        Service { c, schema }
    }

    /// Services of one cluster by name (given by name or ARN), with tags: one
    /// call per 10. A cluster that does not exist has no services.
    async fn describe(
        &self,
        cluster: &str,
        ids: &[String],
    ) -> Result<HashMap<String, EcsService>, DriverError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(10) {
            let r = self
                .c
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(ServiceField::Tags)
                .send()
                .await
                .op("ecs:DescribeServices", &chunk.join(","));
            let out = match r {
                Ok(out) => out,
                Err(e) if is_gone(&e) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            for s in out.services() {
                if let Some(name) = s.service_name() {
                    found.insert(name.to_string(), s.clone());
                }
            }
        }
        Ok(found)
    }

    async fn describe_one(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<Option<EcsService>, DriverError> {
        Ok(self
            .describe(cluster, &[id.to_string()])
            .await?
            .remove(name_of(id)))
    }

    /// Waits (up to the type's ready deadline, 15 minutes, as a Fargate
    /// rollout can take) until the service has settled.
    async fn settle(&self, cluster: &str, arn: &str) -> Result<(), DriverError> {
        let name = name_of(arn);
        let waited = wait::until(
            "ecs:DescribeServices",
            &format!("service {name} to reach a steady state"),
            self.schema.deadlines.ready,
            || async {
                match self.describe_one(cluster, arn).await? {
                    Some(s) => Ok(settled(&s, "ecs:DescribeServices")?.then_some(())),
                    None => Ok(None),
                }
            },
        )
        .await;
        match waited {
            // Say why, in ECS's own words: most often the tasks cannot pull
            // their image (an empty repository) or cannot be placed.
            Err(mut e) => {
                if let Ok(Some(s)) = self.describe_one(cluster, arn).await {
                    let events: Vec<&str> = s
                        .events()
                        .iter()
                        .take(3)
                        .filter_map(|ev| ev.message())
                        .collect();
                    e.message = format!(
                        "{}; {} of {} tasks running{}{}",
                        e.message,
                        s.running_count(),
                        s.desired_count(),
                        if events.is_empty() {
                            ""
                        } else {
                            "; latest service events: "
                        },
                        events.join(" | ")
                    );
                }
                Err(e)
            }
            ok => ok,
        }
    }

    /// Waits until the service is INACTIVE or gone (draining stops its tasks).
    async fn wait_gone(&self, cluster: &str, id: &str) -> Result<(), DriverError> {
        let name = name_of(id);
        wait::until(
            "ecs:DescribeServices",
            &format!("service {name} to drain and become INACTIVE"),
            self.schema.deadlines.gone,
            || async {
                Ok(match self.describe_one(cluster, id).await? {
                    Some(s) if s.status() != Some("INACTIVE") => None,
                    _ => Some(()),
                })
            },
        )
        .await
    }

    fn attributes(arn: &str) -> Map<String, Value> {
        let mut a = Map::new();
        a.insert("ServiceArn".into(), Value::String(arn.to_string()));
        a.insert("Name".into(), Value::String(name_of(arn).to_string()));
        a
    }

    fn observe(h: &ResourceHandle, s: &EcsService) -> Observed {
        let applied = |k: &str| h.properties.get(k).and_then(Value::as_str);
        // Cluster and TaskDefinition come back as ARNs; the stack may have
        // given a name (a cluster's Ref is its name): answer in its form.
        let cluster = match s.cluster_arn() {
            Some(arn) if applied("Cluster").is_some_and(|c| c.starts_with("arn:")) => {
                arn.to_string()
            }
            Some(arn) => name_of(arn).to_string(),
            None => cluster_for(&h.physical_id, &h.properties),
        };
        let task_definition = s
            .task_definition()
            .map(|arn| task_definition_in_form(applied("TaskDefinition"), arn));
        Obs::new()
            .prop("ServiceName", s.service_name())
            .prop("Cluster", Some(cluster))
            .prop("TaskDefinition", task_definition)
            .prop("DesiredCount", Some(s.desired_count()))
            .prop("LaunchType", s.launch_type().map(|l| l.as_str()))
            .prop(
                "NetworkConfiguration",
                s.network_configuration().map(network_json),
            )
            .prop("PlatformVersion", s.platform_version())
            .prop(
                "DeploymentConfiguration",
                s.deployment_configuration().map(deployment_json),
            )
            .prop("EnableExecuteCommand", Some(s.enable_execute_command()))
            .prop("PropagateTags", s.propagate_tags().map(|t| t.as_str()))
            .prop("Tags", Some(tags_of(s.tags())))
            .attr("ServiceArn", s.service_arn())
            .attr("Name", s.service_name())
            .done()
    }
}

#[async_trait]
impl Driver for Service {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // DescribeServices asks one cluster at a time: group by cluster.
        let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in handles {
            let ids = by_cluster
                .entry(cluster_for(&h.physical_id, &h.properties))
                .or_default();
            if !ids.contains(&h.physical_id) {
                ids.push(h.physical_id.clone());
            }
        }
        let mut found: HashMap<(String, String), EcsService> = HashMap::new();
        for (cluster, ids) in &by_cluster {
            for (name, s) in self.describe(cluster, ids).await? {
                found.insert((cluster.clone(), name), s);
            }
        }
        Ok(handles
            .iter()
            .map(|h| {
                let key = (
                    cluster_for(&h.physical_id, &h.properties),
                    name_of(&h.physical_id).to_string(),
                );
                // DRAINING and INACTIVE services are deleted ones.
                let s = found.get(&key).filter(|s| s.status() == Some("ACTIVE"))?;
                Some(Self::observe(h, s))
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:CreateService";
        let name = need_str(p, "ServiceName", op)?.to_string();
        let cluster = str_of(p, "Cluster").unwrap_or("default").to_string();
        let network = network_of(p, op)?;
        let deployment = deployment_of(p, op)?;
        // Look before creating: a CreateService with a taken name overwrites
        // the service on moto (which also ignores the client token).
        if let Some(s) = self.describe_one(&cluster, &name).await? {
            match s.status() {
                Some("ACTIVE") if same_owner(s.tags(), req.tags) => {
                    // An earlier attempt of this very create made it.
                    let arn = s.service_arn().unwrap_or_default().to_string();
                    self.settle(&cluster, &arn).await?;
                    return Ok(Created {
                        attributes: Self::attributes(&arn),
                        physical_id: arn,
                    });
                }
                Some("ACTIVE") => {
                    return Err(DriverError::new(
                        ErrorKind::InvalidRequest,
                        op,
                        format!(
                            "{name}: a service with this name already exists in cluster \
                             {cluster} and was not made by this resource (its ownership tags \
                             differ)"
                        ),
                    ))
                }
                // A service of this name still draining blocks the name.
                Some("DRAINING") => self.wait_gone(&cluster, &name).await?,
                _ => {}
            }
        }
        self.c.pace("ECS").await;
        let out = self
            .c
            .ecs
            .create_service()
            .cluster(&cluster)
            .service_name(&name)
            .set_task_definition(str_of(p, "TaskDefinition").map(String::from))
            .set_desired_count(i32_of(p, "DesiredCount"))
            .set_launch_type(str_of(p, "LaunchType").map(LaunchType::from))
            .set_network_configuration(network)
            .set_platform_version(str_of(p, "PlatformVersion").map(String::from))
            .set_deployment_configuration(deployment)
            .set_enable_execute_command(bool_of(p, "EnableExecuteCommand"))
            .set_propagate_tags(str_of(p, "PropagateTags").map(PropagateTags::from))
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .client_token(req.idempotency_token)
            .send()
            .await
            .op(op, &name)?;
        let arn = out
            .service()
            .and_then(|s| s.service_arn())
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{name}: the answer names no service ARN"),
                )
            })?
            .to_string();
        self.settle(&cluster, &arn).await?;
        Ok(Created {
            attributes: Self::attributes(&arn),
            physical_id: arn,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        let op = "ecs:UpdateService";
        let cluster = cluster_for(arn, p);
        let changed = |name: &str| crate::props::changed(&req, name);
        let updatable = [
            "TaskDefinition",
            "DesiredCount",
            "NetworkConfiguration",
            "PlatformVersion",
            "DeploymentConfiguration",
            "EnableExecuteCommand",
            "PropagateTags",
        ];
        if updatable.iter().any(|&k| changed(k)) {
            let mut call = self.c.ecs.update_service().cluster(&cluster).service(arn);
            if changed("TaskDefinition") {
                call = call.set_task_definition(str_of(p, "TaskDefinition").map(String::from));
            }
            if changed("DesiredCount") {
                call = call.set_desired_count(i32_of(p, "DesiredCount"));
            }
            if changed("NetworkConfiguration") {
                call = call.set_network_configuration(network_of(p, op)?);
            }
            if changed("PlatformVersion") {
                call = call.set_platform_version(str_of(p, "PlatformVersion").map(String::from));
            }
            if changed("DeploymentConfiguration") {
                call = call.set_deployment_configuration(deployment_of(p, op)?);
            }
            if changed("EnableExecuteCommand") {
                call = call.set_enable_execute_command(bool_of(p, "EnableExecuteCommand"));
            }
            if changed("PropagateTags") {
                call = call.set_propagate_tags(str_of(p, "PropagateTags").map(PropagateTags::from));
            }
            self.c.pace("ECS").await;
            call.send().await.op(op, arn)?;
            self.settle(&cluster, arn).await?;
        }
        sync_tags(
            &self.c,
            arn,
            &all_tags(p, req.tags),
            &removed_tags(req.previous, p, req.tags),
        )
        .await?;
        Ok(Self::attributes(arn))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        let cluster = cluster_for(arn, &h.properties);
        let Some(s) = self.describe_one(&cluster, arn).await? else {
            return Ok(());
        };
        // Already draining: another delete is under way; wait for it.
        let not_active = |e: &DriverError| is_gone(e) || e.is_code("ServiceNotActiveException");
        if s.status() == Some("ACTIVE") {
            if s.desired_count() > 0 {
                self.c.pace("ECS").await;
                let r = self
                    .c
                    .ecs
                    .update_service()
                    .cluster(&cluster)
                    .service(arn)
                    .desired_count(0)
                    .send()
                    .await
                    .op("ecs:UpdateService", arn);
                match r {
                    Err(e) if !not_active(&e) => return Err(e),
                    _ => {}
                }
            }
            self.c.pace("ECS").await;
            let r = self
                .c
                .ecs
                .delete_service()
                .cluster(&cluster)
                .service(arn)
                .force(true)
                .send()
                .await
                .op("ecs:DeleteService", arn);
            match r {
                Err(e) if !not_active(&e) => return Err(e),
                _ => {}
            }
        }
        self.wait_gone(&cluster, arn).await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &SERVICE_TAGGED).await
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn environment_reads_back_in_the_order_given() {
        let given = json!([{"Name": "app", "Environment": [
            {"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}],
            "Secrets": [{"Name": "S", "ValueFrom": "arn"}]}]);
        let mut seen = json!([{"Name": "app", "Cpu": 0, "Environment": [
            {"Name": "X", "Value": "9"}, {"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}],
            "Secrets": [{"Name": "S", "ValueFrom": "arn"}]}]);
        in_given_order(&mut seen, &given);
        let names: Vec<&str> = seen[0]["Environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["B", "A", "X"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_definitions_round_trip_in_cloudformation_shape() {
        let asked = json!({
            "Name": "app",
            "Image": "busybox",
            "Essential": true,
            "Cpu": 256,
            "PortMappings": [{"ContainerPort": 8080, "Protocol": "tcp"}],
            "Environment": [{"Name": "A", "Value": "1"}],
            "Secrets": [{"Name": "S", "ValueFrom": "arn:aws:secretsmanager:r:1:secret:s"}],
            "LogConfiguration": {"LogDriver": "awslogs", "Options": {"awslogs-group": "g"}},
            "HealthCheck": {"Command": ["CMD", "true"], "Interval": 30}
        });
        let c = container_definition(&asked, "ecs:RegisterTaskDefinition").unwrap();
        let back = container_json(&c);
        for key in asked.as_object().unwrap().keys() {
            assert_eq!(back[key], asked[key], "{key}");
        }
        let bad = json!({"Name": "app", "Image": "busybox", "Memroy": 512});
        let e = container_definition(&bad, "ecs:RegisterTaskDefinition").unwrap_err();
        assert!(e.message.contains("Memroy"), "{e}");
    }

    #[test]
    fn services_are_found_in_their_cluster() {
        let none = Map::new();
        assert_eq!(
            cluster_for("arn:aws:ecs:r:1:service/orders/api", &none),
            "orders"
        );
        let mut p = Map::new();
        p.insert("Cluster".into(), json!("arn:aws:ecs:r:1:cluster/shop"));
        assert_eq!(cluster_for("arn:aws:ecs:r:1:service/api", &p), "shop");
        assert_eq!(cluster_for("arn:aws:ecs:r:1:service/api", &none), "default");
        assert_eq!(name_of("arn:aws:ecs:r:1:service/orders/api"), "api");
    }

    #[test]
    fn task_definitions_answer_in_the_stack_form() {
        let arn = "arn:aws:ecs:r:1:task-definition/web:3";
        assert_eq!(task_definition_in_form(Some(arn), arn), arn);
        assert_eq!(task_definition_in_form(Some("web:3"), arn), "web:3");
        assert_eq!(task_definition_in_form(Some("web"), arn), "web");
        assert_eq!(task_definition_in_form(None, arn), arn);
    }
}
