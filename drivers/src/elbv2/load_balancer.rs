//! `AWS::ElasticLoadBalancingV2::LoadBalancer`.
//!
//! Its name, scheme and type are fixed at creation; subnets, security groups
//! and the address type change in place. A new load balancer is
//! `provisioning` for a few minutes: the create waits until it is `active`,
//! as CloudFormation does, and so does an adopted one (`ready`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancer as AwsLoadBalancer, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{json, Map, Value};

use super::{elb_tags, ElbTags};
use crate::call::Call;
use crate::props::{all_tags, need_str, str_of, strs_of, tags_value, Obs};
use crate::sdk::Clients;
use crate::tags::{self, Limited};
use crate::{tagging, wait};

/// Load balancers in the tagging API, by ARN.
pub const LOAD_BALANCER_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "elasticloadbalancing",
    arn: "elasticloadbalancing:loadbalancer/",
    id: tagging::whole,
};

const READS_IN_FLIGHT: usize = 4;

pub struct LoadBalancer {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl LoadBalancer {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ElasticLoadBalancingV2::LoadBalancer")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of(
                "IpAddressType",
                &["dualstack", "dualstack-without-public-ipv4", "ipv4"],
            )
            .one_of("Scheme", &["internal", "internet-facing"])
            .one_of("Type", &["application", "gateway", "network"])
            .required("Name")
            .fixed_name("Name")
            .create_only("Name")
            // ELBv2's API reference: at most 32 characters (the resource
            // schema does not say so, the API refuses longer).
            .max_length("Name", super::NAME_MAX)
            .create_only("Scheme")
            .create_only("Type")
            .kind("Subnets", ValueKind::UnorderedList)
            .kind("SecurityGroups", ValueKind::UnorderedList)
            .prop("IpAddressType")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS_PATTERNED)
            .attribute("LoadBalancerArn")
            .attribute("DNSName")
            .attribute("CanonicalHostedZoneID")
            .attribute("LoadBalancerFullName")
            .attribute("LoadBalancerName")
            .typical_duration(Duration::from_secs(180))
            .deadlines(Duration::from_secs(900), Duration::from_secs(600));
        LoadBalancer { c, schema }
    }

    async fn describe(
        &self,
        arns: &[&str],
    ) -> Result<HashMap<String, AwsLoadBalancer>, DriverError> {
        super::describe!(
            self.c,
            arns,
            describe_load_balancers,
            set_load_balancer_arns,
            load_balancers,
            AwsLoadBalancer::load_balancer_arn
        )
        .await
    }

    /// Waits until the load balancer is `active`; fails at once when AWS
    /// says it failed.
    async fn wait_active(&self, arn: &str) -> Result<AwsLoadBalancer, DriverError> {
        wait::until(
            "elasticloadbalancing:DescribeLoadBalancers",
            &format!("{arn} to become active"),
            self.schema.deadlines.ready,
            || async {
                let found = self.describe(&[arn]).await?;
                let Some(lb) = found.get(arn) else {
                    return Ok(None);
                };
                let state = lb.state().and_then(|s| s.code());
                match state {
                    Some(LoadBalancerStateEnum::Active) => Ok(Some(lb.clone())),
                    Some(LoadBalancerStateEnum::Failed) => Err(DriverError::new(
                        ErrorKind::Other,
                        "elasticloadbalancing:CreateLoadBalancer",
                        format!(
                            "{arn} failed: {}",
                            lb.state()
                                .and_then(|s| s.reason())
                                .unwrap_or("no reason given")
                        ),
                    )),
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    async fn observe(
        &self,
        h: &ResourceHandle,
        lb: &AwsLoadBalancer,
    ) -> Result<Observed, DriverError> {
        let arn = h.physical_id.as_str();
        let tags = crate::tags::read(&self.c, &ElbTags(&self.c), arn, arn).await?;
        let subnets: Vec<&str> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id())
            .collect();
        let mut o = Obs::new()
            .prop("Name", lb.load_balancer_name())
            .prop("Scheme", lb.scheme().map(|s| s.as_str()))
            .prop("Type", lb.r#type().map(|t| t.as_str()))
            .prop("Subnets", Some(json!(subnets)))
            .prop("SecurityGroups", Some(json!(lb.security_groups())))
            .prop("IpAddressType", lb.ip_address_type().map(|t| t.as_str()))
            .prop("Tags", Some(tags_value(tags)))
            .done();
        o.attributes = attributes_of(lb);
        Ok(o)
    }
}

fn attributes_of(lb: &AwsLoadBalancer) -> Map<String, Value> {
    let arn = lb.load_balancer_arn().unwrap_or_default();
    Obs::new()
        .attr("LoadBalancerArn", Some(arn))
        .attr("DNSName", lb.dns_name())
        .attr("CanonicalHostedZoneID", lb.canonical_hosted_zone_id())
        // `app/<name>/<id>`: what CloudWatch metrics take.
        .attr(
            "LoadBalancerFullName",
            arn.split_once(":loadbalancer/").map(|(_, full)| full),
        )
        .attr("LoadBalancerName", lb.load_balancer_name())
        .done()
        .attributes
}

#[async_trait]
impl Driver for LoadBalancer {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let arns: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let found = self.describe(&arns).await?;
        crate::each::observed(handles, &found, READS_IN_FLIGHT, |h, x| self.observe(h, x)).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "elasticloadbalancing:CreateLoadBalancer";
        let name = need_str(p, "Name", op)?;
        let out = self
            .c
            .elbv2
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(strs_of(p, "Subnets")).filter(|s| !s.is_empty()))
            .set_security_groups(Some(strs_of(p, "SecurityGroups")).filter(|s| !s.is_empty()))
            .set_scheme(str_of(p, "Scheme").map(LoadBalancerSchemeEnum::from))
            .set_type(str_of(p, "Type").map(LoadBalancerTypeEnum::from))
            .set_ip_address_type(str_of(p, "IpAddressType").map(IpAddressType::from))
            .set_tags(Some(elb_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, name)
            .await?;
        let arn = out
            .load_balancers()
            .first()
            .and_then(|lb| lb.load_balancer_arn())
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{name}: AWS returned no load balancer"),
                )
            })?
            .to_string();
        let lb = self.wait_active(&arn).await?;
        Ok(Created {
            physical_id: arn,
            attributes: attributes_of(&lb),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("Subnets") {
            self.c
                .elbv2
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(strs_of(p, "Subnets")))
                .send()
                .call(&self.c, arn)
                .await?;
        }
        if changed("SecurityGroups") {
            self.c
                .elbv2
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(strs_of(p, "SecurityGroups")))
                .send()
                .call(&self.c, arn)
                .await?;
        }
        if changed("IpAddressType") {
            if let Some(t) = str_of(p, "IpAddressType") {
                self.c
                    .elbv2
                    .set_ip_address_type()
                    .load_balancer_arn(arn)
                    .ip_address_type(IpAddressType::from(t))
                    .send()
                    .call(&self.c, arn)
                    .await?;
            }
        }
        crate::tags::sync_update(&ElbTags(&self.c), arn, &req).await?;
        let found = self.describe(&[arn]).await?;
        Ok(found.get(arn).map(attributes_of).unwrap_or_default())
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        // Its listeners go with it. AWS releases its network interfaces over
        // the next minutes; the subnets' and groups' own deletes wait for
        // that.
        let r = self
            .c
            .elbv2
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .call(&self.c, arn)
            .await;
        crate::error::done_if_gone(r)
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        Ok(Some(attributes_of(
            &self.wait_active(&h.physical_id).await?,
        )))
    }

    /// By its name; the physical id is the ARN.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::looked_up(self, q, "Name", |name| async move {
            let found = self
                .c
                .elbv2
                .describe_load_balancers()
                .names(&name)
                .send()
                .await;
            let out = crate::error::SdkResultExt::op(found, &name)?;
            Ok(out
                .load_balancers()
                .iter()
                .filter_map(|x| x.load_balancer_arn().map(String::from))
                .collect())
        })
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        tagging::find(&self.c, owner, &LOAD_BALANCER_TAGGED).await
    }
}
