//! ECS: `AWS::ECS::Cluster` (`cluster.rs`), `AWS::ECS::TaskDefinition`
//! (`task_definition.rs`, with the container definitions in `container.rs`)
//! and `AWS::ECS::Service` (`service.rs`); this file holds what they share:
//! tags and strict readers of nested CloudFormation objects.
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
//!   tagging API; reads answer `None` for them, and the engine reads every
//!   candidate a tag search finds before it acts on it.
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
    HealthCheck, KeyValuePair, LaunchType, LoadBalancer as EcsLoadBalancer, LogConfiguration,
    LogDriver, NetworkConfiguration, NetworkMode, OsFamily, PortMapping, PropagateTags,
    RuntimePlatform, Secret, Service as EcsService, ServiceField, Tag,
    TaskDefinition as EcsTaskDefinition, TaskDefinitionField, TaskDefinitionStatus,
    TransportProtocol,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind, TAG_ENV, TAG_LOGICAL_ID,
    TAG_STACK,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone};
use crate::props::{all_tags, bool_of, i32_of, need_str, str_of, strs_of, tags_value, Obs};
use crate::sdk::Clients;
use crate::{tagging, wait};

pub(super) type Obj = Map<String, Value>;

mod cluster;
mod container;
mod service;
mod task_definition;

pub use cluster::{Cluster, CLUSTER_TAGGED};
pub use service::{Service, SERVICE_TAGGED};
pub use task_definition::{TaskDefinition, TASK_DEFINITION_TAGGED};
// Each type's file sees the others' helpers through `use super::*` (the
// service reads a cluster's name, the task definition the containers).
use self::{cluster::*, container::*};

pub(super) const NOTHING: &[Value] = &[];

// ---------------------------------------------------------------------------
// Shared helpers: tags, and reading nested CloudFormation objects strictly.

pub(super) fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// ECS tags as a CloudFormation tag list.
pub(super) fn tags_of(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Whether a resource's tags carry the same ownership tags as `want`: it is
/// what an earlier attempt of this very create made.
pub(super) fn same_owner(tags: &[Tag], want: &BTreeMap<String, String>) -> bool {
    [TAG_STACK, TAG_ENV, TAG_LOGICAL_ID].iter().all(|k| {
        let have = tags
            .iter()
            .find(|t| t.key() == Some(*k))
            .and_then(|t| t.value());
        have.is_some() && have == want.get(*k).map(String::as_str)
    })
}

/// Sets `tags` on the resource `arn` and removes `removed`.
/// ECS's tag calls, by ARN. Every ECS describe carries tags (when asked
/// to include them), so `list` is there for the frame only.
pub(super) struct EcsTags<'a>(pub(super) &'a Clients);

impl crate::tags::TagApi for EcsTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .ecs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
        self.0
            .ecs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecs_tags(&tags)))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .ecs
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

pub(super) fn put(o: &mut Obj, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        o.insert(key.to_string(), v.into());
    }
}

pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn given<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub(super) fn obj<'a>(v: &'a Value, what: &str, op: &str) -> Result<&'a Obj, DriverError> {
    v.as_object()
        .ok_or_else(|| invalid(op, format!("{what} must be an object")))
}

pub(super) fn list<'a>(
    o: &'a Obj,
    key: &str,
    what: &str,
    op: &str,
) -> Result<&'a [Value], DriverError> {
    match given(o, key) {
        None => Ok(NOTHING),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(invalid(op, format!("{what}.{key} must be a list"))),
    }
}

/// Rejects keys fastcart does not handle, rather than ignoring them.
pub(super) fn only_keys(
    o: &Obj,
    allowed: &[&str],
    what: &str,
    op: &str,
) -> Result<(), DriverError> {
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

pub(super) fn need<'a>(
    o: &'a Obj,
    key: &str,
    what: &str,
    op: &str,
) -> Result<&'a str, DriverError> {
    str_of(o, key).ok_or_else(|| invalid(op, format!("{what}.{key} must be a string")))
}

pub(super) fn text<'a>(
    o: &'a Obj,
    key: &str,
    what: &str,
    op: &str,
) -> Result<Option<&'a str>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(op, format!("{what}.{key} must be a string"))),
    }
}

pub(super) fn num(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<i32>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(_) => i32_of(o, key)
            .map(Some)
            .ok_or_else(|| invalid(op, format!("{what}.{key} must be a number"))),
    }
}

pub(super) fn flag(o: &Obj, key: &str, what: &str, op: &str) -> Result<Option<bool>, DriverError> {
    match given(o, key) {
        None => Ok(None),
        Some(_) => bool_of(o, key)
            .map(Some)
            .ok_or_else(|| invalid(op, format!("{what}.{key} must be true or false"))),
    }
}

pub(super) fn texts(
    o: &Obj,
    key: &str,
    what: &str,
    op: &str,
) -> Result<Option<Vec<String>>, DriverError> {
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
pub(super) fn pairs(
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

pub(super) fn secrets(
    o: &Obj,
    key: &str,
    what: &str,
    op: &str,
) -> Result<Option<Vec<Secret>>, DriverError> {
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
    use super::service::*;
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
