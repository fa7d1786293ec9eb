//! `AWS::ElasticLoadBalancingV2::TargetGroup`.
//!
//! Its name, protocol, port, VPC and target type are fixed at creation; the
//! health check is changed in place (`ModifyTargetGroup`). A group a
//! listener still forwards to cannot be deleted (`ResourceInUse`): the delete
//! retries that until its deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroup as AwsTargetGroup, TargetTypeEnum,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{json, Map, Value};

use super::{elb_tags, ElbTags};
use crate::call::Call;
use crate::props::{all_tags, bool_of, i32_of, need_str, str_of, tags_value, Obs, Props};
use crate::sdk::Clients;
use crate::tagging;
use crate::tags::{self, Limited};

/// Target groups in the tagging API, by ARN.
pub const TARGET_GROUP_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "elasticloadbalancing",
    arn: "elasticloadbalancing:targetgroup/",
    id: tagging::whole,
};

/// Health-check properties, changed in place.
const HEALTH: &[&str] = &[
    "HealthCheckEnabled",
    "HealthCheckPath",
    "HealthCheckPort",
    "HealthCheckProtocol",
    "HealthCheckIntervalSeconds",
    "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",
    "UnhealthyThresholdCount",
    "Matcher",
];

/// Tag reads in flight at once, where the stack-wide search did not see them.
const READS_IN_FLIGHT: usize = 4;

pub struct TargetGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl TargetGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let mut schema = TypeSchema::new("AWS::ElasticLoadBalancingV2::TargetGroup")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .range("HealthCheckIntervalSeconds", Some(5.0), Some(300.0))
            .length("HealthCheckPath", 1, 1024)
            .one_of(
                "HealthCheckProtocol",
                &[
                    "GENEVE", "HTTP", "HTTPS", "QUIC", "TCP", "TCP_QUIC", "TCP_UDP", "TLS", "UDP",
                ],
            )
            .range("HealthCheckTimeoutSeconds", Some(2.0), Some(120.0))
            .range("HealthyThresholdCount", Some(2.0), Some(10.0))
            .range("Port", Some(1.0), Some(65535.0))
            .one_of(
                "Protocol",
                &[
                    "GENEVE", "HTTP", "HTTPS", "QUIC", "TCP", "TCP_QUIC", "TCP_UDP", "TLS", "UDP",
                ],
            )
            .one_of("TargetType", &["alb", "instance", "ip", "lambda"])
            .range("UnhealthyThresholdCount", Some(2.0), Some(10.0))
            // Required here (AWS's API needs one): the name finds the group
            // again and orders a replacement.
            .required("Name")
            .fixed_name("Name")
            // ELBv2's API reference: at most 32 characters (the resource
            // schema does not say so, the API refuses longer).
            .max_length("Name", super::NAME_MAX)
            .create_only("Name")
            .create_only("Protocol")
            .create_only("Port")
            .create_only("VpcId")
            .create_only("TargetType")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS_PATTERNED)
            .attribute("TargetGroupArn")
            .attribute("TargetGroupName")
            .attribute("TargetGroupFullName")
            .attribute("LoadBalancerArns")
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::ZERO, Duration::from_secs(300));
        for p in HEALTH {
            schema = schema.prop(p);
        }
        TargetGroup { c, schema }
    }

    async fn describe(
        &self,
        arns: &[&str],
    ) -> Result<HashMap<String, AwsTargetGroup>, DriverError> {
        super::describe!(
            self.c,
            arns,
            describe_target_groups,
            set_target_group_arns,
            target_groups,
            AwsTargetGroup::target_group_arn
        )
        .await
    }

    async fn observe(
        &self,
        h: &ResourceHandle,
        g: &AwsTargetGroup,
    ) -> Result<Observed, DriverError> {
        let arn = h.physical_id.as_str();
        let tags = crate::tags::read(&self.c, &ElbTags(&self.c), arn, arn).await?;
        let mut o = Obs::new()
            .prop("Name", g.target_group_name())
            .prop("Protocol", g.protocol().map(|p| p.as_str()))
            .prop("Port", g.port())
            .prop("VpcId", g.vpc_id())
            .prop("TargetType", g.target_type().map(|t| t.as_str()))
            .prop("HealthCheckEnabled", g.health_check_enabled())
            .prop("HealthCheckPath", g.health_check_path())
            .prop("HealthCheckPort", g.health_check_port())
            .prop(
                "HealthCheckProtocol",
                g.health_check_protocol().map(|p| p.as_str()),
            )
            .prop(
                "HealthCheckIntervalSeconds",
                g.health_check_interval_seconds(),
            )
            .prop(
                "HealthCheckTimeoutSeconds",
                g.health_check_timeout_seconds(),
            )
            .prop("HealthyThresholdCount", g.healthy_threshold_count())
            .prop("UnhealthyThresholdCount", g.unhealthy_threshold_count())
            .prop("Matcher", g.matcher().map(matcher_value))
            .prop("Tags", Some(tags_value(tags)))
            .done();
        o.attributes = attributes_of(g);
        Ok(o)
    }
}

fn matcher_value(m: &Matcher) -> Value {
    let mut v = Map::new();
    if let Some(c) = m.http_code() {
        v.insert("HttpCode".into(), json!(c));
    }
    if let Some(c) = m.grpc_code() {
        v.insert("GrpcCode".into(), json!(c));
    }
    Value::Object(v)
}

fn matcher_of(p: &Props) -> Option<Matcher> {
    let m = p.get("Matcher")?;
    Some(
        Matcher::builder()
            .set_http_code(m.get("HttpCode").and_then(Value::as_str).map(String::from))
            .set_grpc_code(m.get("GrpcCode").and_then(Value::as_str).map(String::from))
            .build(),
    )
}

fn attributes_of(g: &AwsTargetGroup) -> Map<String, Value> {
    let arn = g.target_group_arn().unwrap_or_default();
    Obs::new()
        .attr("TargetGroupArn", Some(arn))
        .attr("TargetGroupName", g.target_group_name())
        // `targetgroup/<name>/<id>`: what CloudWatch metrics take.
        .attr("TargetGroupFullName", arn.rsplit(':').next())
        .attr("LoadBalancerArns", Some(json!(g.load_balancer_arns())))
        .done()
        .attributes
}

#[async_trait]
impl Driver for TargetGroup {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let arns: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let groups = self.describe(&arns).await?;
        crate::each::observed(handles, &groups, READS_IN_FLIGHT, |h, x| self.observe(h, x)).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "elasticloadbalancing:CreateTargetGroup";
        let name = need_str(p, "Name", op)?;
        let out = self
            .c
            .elbv2
            .create_target_group()
            .name(name)
            .set_protocol(str_of(p, "Protocol").map(ProtocolEnum::from))
            .set_port(i32_of(p, "Port"))
            .set_vpc_id(str_of(p, "VpcId").map(String::from))
            .set_target_type(str_of(p, "TargetType").map(TargetTypeEnum::from))
            .set_health_check_enabled(bool_of(p, "HealthCheckEnabled"))
            .set_health_check_path(str_of(p, "HealthCheckPath").map(String::from))
            .set_health_check_port(str_of(p, "HealthCheckPort").map(String::from))
            .set_health_check_protocol(str_of(p, "HealthCheckProtocol").map(ProtocolEnum::from))
            .set_health_check_interval_seconds(i32_of(p, "HealthCheckIntervalSeconds"))
            .set_health_check_timeout_seconds(i32_of(p, "HealthCheckTimeoutSeconds"))
            .set_healthy_threshold_count(i32_of(p, "HealthyThresholdCount"))
            .set_unhealthy_threshold_count(i32_of(p, "UnhealthyThresholdCount"))
            .set_matcher(matcher_of(p))
            .set_tags(Some(elb_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, name)
            .await?;
        let g = out.target_groups().first().ok_or_else(|| {
            DriverError::new(
                ErrorKind::Other,
                op,
                format!("{name}: AWS returned no target group"),
            )
        })?;
        Ok(Created {
            physical_id: g.target_group_arn().unwrap_or_default().to_string(),
            attributes: attributes_of(g),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        if HEALTH.iter().any(|h| crate::props::changed(&req, h)) {
            self.c
                .elbv2
                .modify_target_group()
                .target_group_arn(arn)
                .set_health_check_enabled(bool_of(p, "HealthCheckEnabled"))
                .set_health_check_path(str_of(p, "HealthCheckPath").map(String::from))
                .set_health_check_port(str_of(p, "HealthCheckPort").map(String::from))
                .set_health_check_protocol(str_of(p, "HealthCheckProtocol").map(ProtocolEnum::from))
                .set_health_check_interval_seconds(i32_of(p, "HealthCheckIntervalSeconds"))
                .set_health_check_timeout_seconds(i32_of(p, "HealthCheckTimeoutSeconds"))
                .set_healthy_threshold_count(i32_of(p, "HealthyThresholdCount"))
                .set_unhealthy_threshold_count(i32_of(p, "UnhealthyThresholdCount"))
                .set_matcher(matcher_of(p))
                .send()
                .call(&self.c, arn)
                .await?;
        }
        crate::tags::sync_update(&ElbTags(&self.c), arn, &req).await?;
        let groups = self.describe(&[arn]).await?;
        Ok(groups.get(arn).map(attributes_of).unwrap_or_default())
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        // A listener still forwarding to it (being deleted with it): retry.
        crate::wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .elbv2
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .call(&self.c, arn)
                .await
        })
        .await
    }

    /// By its name; the physical id is the ARN.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::looked_up(self, q, "Name", |name| async move {
            let found = self
                .c
                .elbv2
                .describe_target_groups()
                .names(&name)
                .send()
                .await;
            let out = crate::error::SdkResultExt::op(found, &name)?;
            Ok(out
                .target_groups()
                .iter()
                .filter_map(|x| x.target_group_arn().map(String::from))
                .collect())
        })
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        tagging::find(&self.c, owner, &TARGET_GROUP_TAGGED).await
    }
}
