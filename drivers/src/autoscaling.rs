//! Application Auto Scaling: `AWS::ApplicationAutoScaling::ScalableTarget`
//! and `::ScalingPolicy`, for an ECS service's task count.
//!
//! A scalable target is known by what it scales: its service namespace,
//! resource id and dimension, joined as CloudFormation's `Ref` gives them
//! (`service/c/s|ecs:service:DesiredCount|ecs`). There is at most one per
//! triple, so a second register is an update and a twin cannot exist:
//! neither type carries ownership tags (the emulator also answers tag calls
//! on them with errors). A policy is known by its ARN and found again by
//! its name on its target (`PutScalingPolicy` again is an update too). Reads
//! are one describe per namespace for up to 50 resource ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension,
    ScalableTarget as AwsTarget, ScalingPolicy as AwsPolicy, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, KeyQuery, Observed, ResourceHandle,
    TypeSchema, UpdateRequest,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::invalid;
use crate::props::{bool_of, float_of, i32_of, need_str, str_of, Obs, Props};
use crate::sdk::Clients;

/// The most resource ids one describe takes.
const IDS_PER_CALL: usize = 50;

/// What a target scales: namespace, resource id, dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scaled {
    namespace: String,
    resource: String,
    dimension: String,
}

impl Scaled {
    fn of(p: &Props, op: &str) -> Result<Scaled, DriverError> {
        if let Some(id) = str_of(p, "ScalingTargetId") {
            return Scaled::parse(id).ok_or_else(|| {
                invalid(
                    op,
                    format!("ScalingTargetId {id} is not resource|dimension|namespace"),
                )
            });
        }
        Ok(Scaled {
            namespace: need_str(p, "ServiceNamespace", op)?.to_string(),
            resource: need_str(p, "ResourceId", op)?.to_string(),
            dimension: need_str(p, "ScalableDimension", op)?.to_string(),
        })
    }

    /// From CloudFormation's `Ref` of a target.
    fn parse(id: &str) -> Option<Scaled> {
        let mut parts = id.split('|');
        let (resource, dimension, namespace) = (parts.next()?, parts.next()?, parts.next()?);
        (parts.next().is_none() && !resource.is_empty()).then(|| Scaled {
            namespace: namespace.into(),
            resource: resource.into(),
            dimension: dimension.into(),
        })
    }

    fn id(&self) -> String {
        format!("{}|{}|{}", self.resource, self.dimension, self.namespace)
    }
}

fn scaled_of_target(t: &AwsTarget) -> Scaled {
    Scaled {
        namespace: t.service_namespace().as_str().to_string(),
        resource: t.resource_id().to_string(),
        dimension: t.scalable_dimension().as_str().to_string(),
    }
}

/// The namespaces AWS's schemas accept for a scalable target and a scaling
/// policy alike, and the dimensions of each (a policy's schema lists one
/// fewer: EC2 capacity reservations; the conformance test tells them apart).
const SCALABLE_DIMENSIONS: &[&str] = &[
    "appstream:fleet:DesiredCapacity",
    "cassandra:table:ReadCapacityUnits",
    "cassandra:table:WriteCapacityUnits",
    "comprehend:document-classifier-endpoint:DesiredInferenceUnits",
    "comprehend:entity-recognizer-endpoint:DesiredInferenceUnits",
    "custom-resource:ResourceType:Property",
    "dynamodb:index:ReadCapacityUnits",
    "dynamodb:index:WriteCapacityUnits",
    "dynamodb:table:ReadCapacityUnits",
    "dynamodb:table:WriteCapacityUnits",
    "ec2:capacity-reservation:AvailableInstances",
    "ec2:spot-fleet-request:TargetCapacity",
    "ecs:service:DesiredCount",
    "elasticache:cache-cluster:Nodes",
    "elasticache:replication-group:NodeGroups",
    "elasticache:replication-group:Replicas",
    "elasticmapreduce:instancegroup:InstanceCount",
    "kafka:broker-storage:VolumeSize",
    "lambda:function:ProvisionedConcurrency",
    "neptune:cluster:ReadReplicaCount",
    "rds:cluster:ReadReplicaCount",
    "sagemaker:inference-component:DesiredCopyCount",
    "sagemaker:variant:DesiredInstanceCount",
    "sagemaker:variant:DesiredProvisionedConcurrency",
    "workspaces:workspacespool:DesiredUserSessions",
];
/// A scaling policy's dimensions: a scalable target's but EC2 capacity
/// reservations.
fn policy_dimensions() -> Vec<&'static str> {
    SCALABLE_DIMENSIONS
        .iter()
        .copied()
        .filter(|d| *d != "ec2:capacity-reservation:AvailableInstances")
        .collect()
}

const SERVICE_NAMESPACES: &[&str] = &[
    "appstream",
    "cassandra",
    "comprehend",
    "custom-resource",
    "dynamodb",
    "ec2",
    "ecs",
    "elasticache",
    "elasticmapreduce",
    "kafka",
    "lambda",
    "neptune",
    "rds",
    "sagemaker",
    "workspaces",
];

pub struct ScalableTarget {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl ScalableTarget {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ApplicationAutoScaling::ScalableTarget")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("ResourceId", 1, 1600)
            .length("RoleARN", 1, 1600)
            .one_of("ScalableDimension", SCALABLE_DIMENSIONS)
            .one_of("ServiceNamespace", SERVICE_NAMESPACES)
            .required("ServiceNamespace")
            .create_only("ServiceNamespace")
            .required("ResourceId")
            .create_only("ResourceId")
            .required("ScalableDimension")
            .create_only("ScalableDimension")
            .required("MinCapacity")
            .required("MaxCapacity")
            // AWS reports the service-linked role it uses instead.
            .write_only("RoleARN")
            .attribute("Id")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        ScalableTarget { c, schema }
    }

    /// The targets among `wanted` that exist, by id: one describe per
    /// namespace and 50 resource ids.
    async fn describe(&self, wanted: &[Scaled]) -> Result<HashMap<String, AwsTarget>, DriverError> {
        let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in wanted {
            by_namespace
                .entry(&s.namespace)
                .or_default()
                .push(&s.resource);
        }
        let mut found = HashMap::new();
        for (namespace, resources) in by_namespace {
            for chunk in resources.chunks(IDS_PER_CALL) {
                let out = self
                    .c
                    .autoscaling
                    .describe_scalable_targets()
                    .service_namespace(ServiceNamespace::from(namespace))
                    .set_resource_ids(Some(chunk.iter().map(|r| r.to_string()).collect()))
                    .send()
                    .call(&self.c, &chunk.join(","))
                    .await?;
                for t in out.scalable_targets() {
                    found.insert(scaled_of_target(t).id(), t.clone());
                }
            }
        }
        Ok(found)
    }

    async fn register(&self, s: &Scaled, p: &Props) -> Result<(), DriverError> {
        self.c
            .autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::from(s.namespace.as_str()))
            .resource_id(&s.resource)
            .scalable_dimension(ScalableDimension::from(s.dimension.as_str()))
            .set_min_capacity(i32_of(p, "MinCapacity"))
            .set_max_capacity(i32_of(p, "MaxCapacity"))
            .set_role_arn(str_of(p, "RoleARN").map(String::from))
            .send()
            .call(&self.c, &s.id())
            .await?;
        Ok(())
    }
}

fn id_attribute(id: &str) -> Map<String, Value> {
    Obs::new().attr("Id", Some(id)).done().attributes
}

#[async_trait]
impl Driver for ScalableTarget {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let wanted: Vec<Scaled> = handles
            .iter()
            .filter_map(|h| Scaled::parse(&h.physical_id))
            .collect();
        if wanted.is_empty() {
            return Ok(vec![None; handles.len()]);
        }
        let found = self.describe(&wanted).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let t = found.get(&h.physical_id)?;
                let mut o = Obs::new()
                    .prop("ServiceNamespace", Some(t.service_namespace().as_str()))
                    .prop("ResourceId", Some(t.resource_id()))
                    .prop("ScalableDimension", Some(t.scalable_dimension().as_str()))
                    .prop("MinCapacity", Some(t.min_capacity()))
                    .prop("MaxCapacity", Some(t.max_capacity()))
                    .done();
                o.attributes = id_attribute(&h.physical_id);
                Some(o)
            })
            .collect())
    }

    /// A target's id is what it scales (namespace, resource, dimension),
    /// so the stack's properties name it.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Ok(s) = Scaled::of(q.properties, "import") else {
            return Ok(None);
        };
        let key = format!(
            "ResourceId={}, ScalableDimension={}",
            s.resource, s.dimension
        );
        crate::key::candidates(self, q, [s.id()], &key)
            .await
            .map(Some)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let s = Scaled::of(
            req.properties,
            "application-autoscaling:RegisterScalableTarget",
        )?;
        self.register(&s, req.properties).await?;
        let id = s.id();
        Ok(Created {
            attributes: id_attribute(&id),
            physical_id: id,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let op = "application-autoscaling:RegisterScalableTarget";
        let s = Scaled::parse(req.physical_id).ok_or_else(|| {
            invalid(
                op,
                format!("{} is not a scalable target id", req.physical_id),
            )
        })?;
        self.register(&s, req.properties).await?;
        Ok(id_attribute(req.physical_id))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let Some(s) = Scaled::parse(&h.physical_id) else {
            return Ok(());
        };
        let r = self
            .c
            .autoscaling
            .deregister_scalable_target()
            .service_namespace(ServiceNamespace::from(s.namespace.as_str()))
            .resource_id(&s.resource)
            .scalable_dimension(ScalableDimension::from(s.dimension.as_str()))
            .send()
            .call(&self.c, &h.physical_id)
            .await;
        crate::error::done_if_gone(r)
    }
}

/// The metrics a target-tracking policy may follow without a custom
/// specification (AWS's schema's `PredefinedMetricType`).
const PREDEFINED_METRICS: &[&str] = &[
    "ALBRequestCountPerTarget",
    "AppStreamAverageCapacityUtilization",
    "CassandraReadCapacityUtilization",
    "CassandraWriteCapacityUtilization",
    "ComprehendInferenceUtilization",
    "DynamoDBReadCapacityUtilization",
    "DynamoDBWriteCapacityUtilization",
    "EC2SpotFleetRequestAverageCPUUtilization",
    "EC2SpotFleetRequestAverageNetworkIn",
    "EC2SpotFleetRequestAverageNetworkOut",
    "ECSServiceAverageCPUUtilization",
    "ECSServiceAverageCPUUtilizationHighResolution",
    "ECSServiceAverageMemoryUtilization",
    "ECSServiceAverageMemoryUtilizationHighResolution",
    "ElastiCacheDatabaseCapacityUsageCountedForEvictPercentage",
    "ElastiCacheDatabaseMemoryUsageCountedForEvictPercentage",
    "ElastiCacheDatabaseMemoryUsagePercentage",
    "ElastiCacheEngineCPUUtilization",
    "ElastiCachePrimaryEngineCPUUtilization",
    "ElastiCacheReplicaEngineCPUUtilization",
    "KafkaBrokerStorageUtilization",
    "LambdaProvisionedConcurrencyUtilization",
    "NeptuneReaderAverageCPUUtilization",
    "RDSReaderAverageCPUUtilization",
    "RDSReaderAverageDatabaseConnections",
    "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
    "SageMakerInferenceComponentInvocationsPerCopy",
    "SageMakerVariantConcurrentRequestsPerModelHighResolution",
    "SageMakerVariantInvocationsPerInstance",
    "SageMakerVariantProvisionedConcurrencyUtilization",
    "WorkSpacesAverageUserSessionsCapacityUtilization",
];

pub struct ScalingPolicy {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl ScalingPolicy {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ApplicationAutoScaling::ScalingPolicy")
            .one_of(
                "TargetTrackingScalingPolicyConfiguration/PredefinedMetricSpecification/PredefinedMetricType",
                PREDEFINED_METRICS,
            )
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("PolicyName", 1, 256)
            .pattern("PolicyName", r#"^\p{Print}+$"#)
            .one_of(
                "PolicyType",
                &["PredictiveScaling", "StepScaling", "TargetTrackingScaling"],
            )
            .length("ResourceId", 1, 1600)
            .one_of("ScalableDimension", &policy_dimensions())
            .one_of("ServiceNamespace", SERVICE_NAMESPACES)
            .required("PolicyName")
            .create_only("PolicyName")
            .required("PolicyType")
            .create_only("ServiceNamespace")
            .create_only("ResourceId")
            .create_only("ScalableDimension")
            .create_only("ScalingTargetId")
            .write_only("ScalingTargetId")
            .prop("TargetTrackingScalingPolicyConfiguration")
            .attribute("Arn")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        ScalingPolicy { c, schema }
    }

    /// The policies named `names` on one resource of `namespace`.
    async fn on(
        &self,
        (namespace, resource): &(String, String),
        names: &[String],
    ) -> Result<Vec<AwsPolicy>, DriverError> {
        let out = self
            .c
            .autoscaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::from(namespace.as_str()))
            .resource_id(resource)
            .set_policy_names(Some(names.to_vec()))
            .send()
            .call(&self.c, resource)
            .await?;
        Ok(out.scaling_policies().to_vec())
    }

    async fn put(&self, s: &Scaled, p: &Props, op: &str) -> Result<String, DriverError> {
        let name = need_str(p, "PolicyName", op)?;
        let kind = need_str(p, "PolicyType", op)?;
        if kind != "TargetTrackingScaling" {
            return Err(invalid(
                op,
                format!("{name}: only TargetTrackingScaling policies are supported, not {kind}"),
            ));
        }
        let out = self
            .c
            .autoscaling
            .put_scaling_policy()
            .policy_name(name)
            .service_namespace(ServiceNamespace::from(s.namespace.as_str()))
            .resource_id(&s.resource)
            .scalable_dimension(ScalableDimension::from(s.dimension.as_str()))
            .policy_type(PolicyType::from(kind))
            .set_target_tracking_scaling_policy_configuration(tracking_of(p, op)?)
            .send()
            .call(&self.c, name)
            .await?;
        Ok(out.policy_arn().to_string())
    }
}

/// The namespace, resource id and name a policy's ARN carries:
/// `...:scalingPolicy:<id>:resource/ecs/service/c/s:policyName/<name>`.
fn policy_of_arn(arn: &str) -> Option<(String, String, String)> {
    let (_, rest) = arn.split_once(":resource/")?;
    let (scaled, name) = rest.rsplit_once(":policyName/")?;
    let (namespace, resource) = scaled.split_once('/')?;
    Some((namespace.into(), resource.into(), name.into()))
}

const TRACKING: &str = "TargetTrackingScalingPolicyConfiguration";

fn tracking_of(
    p: &Props,
    op: &str,
) -> Result<Option<TargetTrackingScalingPolicyConfiguration>, DriverError> {
    let Some(t) = p.get(TRACKING).and_then(Value::as_object) else {
        return Ok(None);
    };
    let metric = t
        .get("PredefinedMetricSpecification")
        .and_then(|m| m.get("PredefinedMetricType"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                op,
                format!(
                    "{TRACKING}.PredefinedMetricSpecification.PredefinedMetricType is required"
                ),
            )
        })?;
    let spec = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::from(metric))
        .build()
        .map_err(|e| invalid(op, format!("{TRACKING}: {e}")))?;
    let target = float_of(t, "TargetValue")
        .ok_or_else(|| invalid(op, format!("{TRACKING}.TargetValue is required")))?;
    TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(target)
        .predefined_metric_specification(spec)
        .set_scale_in_cooldown(i32_of(t, "ScaleInCooldown"))
        .set_scale_out_cooldown(i32_of(t, "ScaleOutCooldown"))
        .set_disable_scale_in(bool_of(t, "DisableScaleIn"))
        .build()
        .map(Some)
        .map_err(|e| invalid(op, format!("{TRACKING}: {e}")))
}

fn tracking_value(t: &TargetTrackingScalingPolicyConfiguration) -> Value {
    let mut v = Map::new();
    v.insert("TargetValue".into(), json!(t.target_value()));
    if let Some(m) = t.predefined_metric_specification() {
        v.insert(
            "PredefinedMetricSpecification".into(),
            json!({"PredefinedMetricType": m.predefined_metric_type().as_str()}),
        );
    }
    if let Some(c) = t.scale_in_cooldown() {
        v.insert("ScaleInCooldown".into(), json!(c));
    }
    if let Some(c) = t.scale_out_cooldown() {
        v.insert("ScaleOutCooldown".into(), json!(c));
    }
    if let Some(d) = t.disable_scale_in() {
        v.insert("DisableScaleIn".into(), json!(d));
    }
    Value::Object(v)
}

fn arn_attribute(arn: &str) -> Map<String, Value> {
    Obs::new().attr("Arn", Some(arn)).done().attributes
}

#[async_trait]
impl Driver for ScalingPolicy {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // One describe per resource the handles' policies are on, which
        // their ARNs name.
        let mut by_target: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for h in handles {
            if let Some((namespace, resource, name)) = policy_of_arn(&h.physical_id) {
                by_target
                    .entry((namespace, resource))
                    .or_default()
                    .push(name);
            }
        }
        // By what names a policy, not by ARN: AWS keeps a policy's ARN
        // when it is put again, the emulator makes a new one.
        let mut found: HashMap<(String, String, String), AwsPolicy> = HashMap::new();
        for (s, names) in &by_target {
            for p in self.on(s, names).await? {
                let key = (
                    p.service_namespace().as_str().to_string(),
                    p.resource_id().to_string(),
                    p.policy_name().to_string(),
                );
                found.insert(key, p);
            }
        }
        Ok(handles
            .iter()
            .map(|h| {
                let p = found.get(&policy_of_arn(&h.physical_id)?)?;
                let mut o = Obs::new()
                    .prop("PolicyName", Some(p.policy_name()))
                    .prop("PolicyType", Some(p.policy_type().as_str()))
                    .prop("ServiceNamespace", Some(p.service_namespace().as_str()))
                    .prop("ResourceId", Some(p.resource_id()))
                    .prop("ScalableDimension", Some(p.scalable_dimension().as_str()))
                    .prop(
                        TRACKING,
                        p.target_tracking_scaling_policy_configuration()
                            .map(tracking_value),
                    )
                    .done();
                o.attributes = arn_attribute(p.policy_arn());
                Some(o)
            })
            .collect())
    }

    /// A policy is named within its target: its name and the target's id.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let (Ok(s), Some(name)) = (
            Scaled::of(q.properties, "import"),
            crate::key::given(q, "PolicyName"),
        ) else {
            return Ok(None);
        };
        let target = (s.namespace.clone(), s.resource.clone());
        let arns = self
            .on(&target, &[name.to_string()])
            .await?
            .into_iter()
            .filter(|p| p.scalable_dimension().as_str() == s.dimension)
            .map(|p| p.policy_arn().to_string());
        let key = format!("PolicyName={name}, ScalingTargetId={}", s.id());
        crate::key::candidates(self, q, arns, &key).await.map(Some)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let op = "application-autoscaling:PutScalingPolicy";
        let s = Scaled::of(req.properties, op)?;
        let arn = self.put(&s, req.properties, op).await?;
        Ok(Created {
            attributes: arn_attribute(&arn),
            physical_id: arn,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let op = "application-autoscaling:PutScalingPolicy";
        let s = Scaled::of(req.properties, op)?;
        let arn = self.put(&s, req.properties, op).await?;
        Ok(arn_attribute(&arn))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let op = "application-autoscaling:DeleteScalingPolicy";
        let s = Scaled::of(&h.properties, op)?;
        let name = need_str(&h.properties, "PolicyName", op)?;
        let r = self
            .c
            .autoscaling
            .delete_scaling_policy()
            .policy_name(name)
            .service_namespace(ServiceNamespace::from(s.namespace.as_str()))
            .resource_id(&s.resource)
            .scalable_dimension(ScalableDimension::from(s.dimension.as_str()))
            .send()
            .call(&self.c, name)
            .await;
        crate::error::done_if_gone(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_id_is_resource_dimension_namespace() {
        let s = Scaled::parse("service/c/s|ecs:service:DesiredCount|ecs").unwrap();
        assert_eq!(s.namespace, "ecs");
        assert_eq!(s.resource, "service/c/s");
        assert_eq!(s.dimension, "ecs:service:DesiredCount");
        assert_eq!(s.id(), "service/c/s|ecs:service:DesiredCount|ecs");
        assert!(Scaled::parse("service/c/s|ecs").is_none());
        assert!(Scaled::parse("a|b|c|d").is_none());
    }

    #[test]
    fn a_policy_arn_names_its_resource_and_name() {
        let arn = "arn:aws:autoscaling:eu-central-1:1:scalingPolicy:5c1e:\
                   resource/ecs/service/c/s:policyName/cpu";
        assert_eq!(
            policy_of_arn(arn),
            Some(("ecs".into(), "service/c/s".into(), "cpu".into()))
        );
        assert_eq!(policy_of_arn("arn:aws:autoscaling:r:1:other"), None);
    }
}
