//! `AWS::EC2::VPC`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Tenancy, VpcAttributeName};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, Found, KeyQuery, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest,
};
use serde_json::{Map, Value};

use super::{filter, owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::props::{all_tags, bool_of, need_str, str_of, Obs};
use crate::sdk::Clients;
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:vpc",
    arn: "ec2:vpc/",
    id: crate::tagging::after_slash,
};

/// The attributes AWS fixes when it makes a VPC.
const DEFAULTS: [&str; 2] = ["DefaultSecurityGroup", "DefaultNetworkAcl"];

pub struct Vpc {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Vpc {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::VPC")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of("InstanceTenancy", &["dedicated", "default", "host"])
            .required("CidrBlock")
            .create_only("CidrBlock")
            .prop("EnableDnsSupport")
            .prop("EnableDnsHostnames")
            .prop("InstanceTenancy")
            .kind("Tags", fastcart_engine::ValueKind::Tags)
            .id_attribute("VpcId")
            .attribute("CidrBlock")
            .attribute("DefaultSecurityGroup")
            .attribute("DefaultNetworkAcl")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(120), Duration::from_secs(300));
        Vpc { c, schema }
    }

    async fn set_attribute(&self, id: &str, name: &str, on: bool) -> Result<(), DriverError> {
        let value = AttributeBooleanValue::builder().value(on).build();
        let call = self.c.ec2.modify_vpc_attribute().vpc_id(id);
        let call = if name == "EnableDnsSupport" {
            call.enable_dns_support(value)
        } else {
            call.enable_dns_hostnames(value)
        };
        call.send().call(&self.c, id).await?;
        Ok(())
    }

    /// The DNS attributes the stack sets, one call each: `DescribeVpcAttribute`
    /// takes one VPC and one attribute.
    async fn attribute(
        &self,
        id: &str,
        name: VpcAttributeName,
    ) -> Result<Option<bool>, DriverError> {
        let out = self
            .c
            .ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(name.clone())
            .send()
            .call(&self.c, id)
            .await?;
        Ok(match name {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support().and_then(|v| v.value()),
            _ => out.enable_dns_hostnames().and_then(|v| v.value()),
        })
    }
}

#[async_trait]
impl Driver for Vpc {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let vpcs =
            super::by_ids!(self.c, &ids, describe_vpcs, filters("vpc-id"), vpcs, vpc_id).await?;
        // The default security group and network ACL are made with the VPC
        // and never change: asked for only where the state lacks them.
        let unknown: Vec<&str> = handles
            .iter()
            .filter(|h| {
                vpcs.contains_key(&h.physical_id)
                    && DEFAULTS.iter().any(|a| !h.attributes.contains_key(*a))
            })
            .map(|h| h.physical_id.as_str())
            .collect();
        let defaults = self.defaults(&unknown).await?;
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let Some(v) = vpcs.get(&h.physical_id) else {
                out.push(None);
                continue;
            };
            let mut o = Obs::new()
                .prop("CidrBlock", v.cidr_block())
                .prop("InstanceTenancy", v.instance_tenancy().map(|t| t.as_str()))
                .prop("Tags", Some(tags_of(v.tags())))
                .attr("VpcId", v.vpc_id())
                .attr("CidrBlock", v.cidr_block());
            if h.properties.contains_key("EnableDnsSupport") {
                o = o.prop(
                    "EnableDnsSupport",
                    self.attribute(&h.physical_id, VpcAttributeName::EnableDnsSupport)
                        .await?,
                );
            }
            if h.properties.contains_key("EnableDnsHostnames") {
                o = o.prop(
                    "EnableDnsHostnames",
                    self.attribute(&h.physical_id, VpcAttributeName::EnableDnsHostnames)
                        .await?,
                );
            }
            let mut o = o.done();
            match defaults.get(&h.physical_id) {
                Some(d) => o.attributes.extend(d.clone()),
                None => o.attributes.extend(
                    DEFAULTS
                        .iter()
                        .filter_map(|a| Some((a.to_string(), h.attributes.get(*a)?.clone()))),
                ),
            }
            out.push(Some(o));
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let cidr = need_str(p, "CidrBlock", "ec2:CreateVpc")?;
        let out = self
            .c
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .set_instance_tenancy(str_of(p, "InstanceTenancy").map(Tenancy::from))
            .tag_specifications(tag_spec(ResourceType::Vpc, &all_tags(p, req.tags)))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_string();
        wait::until(
            "ec2:DescribeVpcs",
            &format!("{id} to become available"),
            self.schema.deadlines.ready,
            || async {
                let out = self
                    .c
                    .ec2
                    .describe_vpcs()
                    .filters(filter("vpc-id", [id.as_str()]))
                    .send()
                    .call(&self.c, &id)
                    .await?;
                Ok(out
                    .vpcs()
                    .first()
                    .filter(|v| v.state().is_some_and(|s| s.as_str() == "available"))
                    .map(|_| ()))
            },
        )
        .await?;
        for name in ["EnableDnsSupport", "EnableDnsHostnames"] {
            if let Some(on) = bool_of(p, name) {
                self.set_attribute(&id, name, on).await?;
            }
        }
        let mut attributes = Map::new();
        attributes.insert("VpcId".into(), Value::String(id.clone()));
        attributes.insert("CidrBlock".into(), Value::String(cidr.to_string()));
        attributes.extend(self.defaults(&[&id]).await?.remove(&id).unwrap_or_default());
        Ok(Created {
            physical_id: id,
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        for name in ["EnableDnsSupport", "EnableDnsHostnames"] {
            if req.changed.iter().any(|c| c == name) {
                if let Some(on) = bool_of(req.properties, name) {
                    self.set_attribute(id, name, on).await?;
                }
            }
        }
        if req.changed.iter().any(|c| c == "InstanceTenancy") {
            if let Some(t) = str_of(req.properties, "InstanceTenancy") {
                self.c
                    .ec2
                    .modify_vpc_tenancy()
                    .vpc_id(id)
                    .instance_tenancy(aws_sdk_ec2::types::VpcTenancy::from(t))
                    .send()
                    .call(&self.c, id)
                    .await?;
            }
        }
        sync_tags(&self.c, &req).await?;
        let mut attributes = Map::new();
        attributes.insert("VpcId".into(), Value::String(id.to_string()));
        if let Some(cidr) = str_of(req.properties, "CidrBlock") {
            attributes.insert("CidrBlock".into(), Value::String(cidr.to_string()));
        }
        attributes.extend(self.defaults(&[id]).await?.remove(id).unwrap_or_default());
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        wait::deleted_naming(
            self.schema.deadlines.gone,
            || async {
                self.c
                    .ec2
                    .delete_vpc()
                    .vpc_id(id)
                    .send()
                    .call(&self.c, id)
                    .await
            },
            || self.contents(id),
        )
        .await
    }

    /// By its CIDR block and the stack's `Name` tag.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(cidr) = crate::key::given(q, "CidrBlock") else {
            return Ok(None);
        };
        let name = crate::key::name_tag(q);
        let ids = super::matching!(
            self.c,
            describe_vpcs(set_filters),
            super::name_filters(name.as_deref()),
            vpcs,
            vpc_id,
            "VPCs by key",
            |v: &aws_sdk_ec2::types::Vpc| v.cidr_block() == Some(cidr)
        );
        let key = super::key_text(&[("CidrBlock", Some(cidr)), ("Name", name.as_deref())]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let out = self
            .c
            .ec2
            .describe_vpcs()
            .set_filters(Some(owner_filters(owner)))
            .send()
            .call(&self.c, "vpcs by tag")
            .await?;
        Ok(super::found(
            out.vpcs(),
            owner,
            aws_sdk_ec2::types::Vpc::tags,
            aws_sdk_ec2::types::Vpc::vpc_id,
        ))
    }
}

impl Vpc {
    /// What is still in a VPC that will not delete, for the error: subnets,
    /// attached internet gateways, security groups other than the default,
    /// and network interfaces (with what they belong to). One call each.
    async fn contents(&self, id: &str) -> Option<String> {
        let in_vpc = || filter("vpc-id", [id]);
        let mut found: Vec<String> = Vec::new();
        if let Ok(out) = self.c.ec2.describe_subnets().filters(in_vpc()).send().await {
            found.extend(
                out.subnets()
                    .iter()
                    .filter_map(|s| s.subnet_id())
                    .map(|s| format!("subnet {s}")),
            );
        }
        if let Ok(out) = self
            .c
            .ec2
            .describe_internet_gateways()
            .filters(filter("attachment.vpc-id", [id]))
            .send()
            .await
        {
            found.extend(
                out.internet_gateways()
                    .iter()
                    .filter_map(|g| g.internet_gateway_id())
                    .map(|g| format!("internet gateway {g} (attached)")),
            );
        }
        if let Ok(out) = self
            .c
            .ec2
            .describe_security_groups()
            .filters(in_vpc())
            .send()
            .await
        {
            found.extend(
                out.security_groups()
                    .iter()
                    .filter(|g| g.group_name() != Some("default"))
                    .filter_map(|g| g.group_id())
                    .map(|g| format!("security group {g}")),
            );
        }
        if let Ok(out) = self
            .c
            .ec2
            .describe_network_interfaces()
            .filters(in_vpc())
            .send()
            .await
        {
            found.extend(out.network_interfaces().iter().map(|n| {
                format!(
                    "network interface {} ({})",
                    n.network_interface_id().unwrap_or("?"),
                    n.description()
                        .filter(|d| !d.is_empty())
                        .unwrap_or("no description")
                )
            }));
        }
        (!found.is_empty()).then(|| found.join(", "))
    }

    /// The default security group and network ACL AWS made with each VPC:
    /// one call each for all the VPCs.
    async fn defaults(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Map<String, Value>>, DriverError> {
        let mut out: HashMap<String, Map<String, Value>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sgs = self
            .c
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", ids.iter().copied()))
            .filters(filter("group-name", ["default"]))
            .send()
            .call(&self.c, "default security groups")
            .await?;
        for g in sgs.security_groups() {
            if let (Some(vpc), Some(id)) = (g.vpc_id(), g.group_id()) {
                out.entry(vpc.to_string())
                    .or_default()
                    .insert("DefaultSecurityGroup".into(), Value::String(id.into()));
            }
        }
        let acls = self
            .c
            .ec2
            .describe_network_acls()
            .filters(filter("vpc-id", ids.iter().copied()))
            .filters(filter("default", ["true"]))
            .send()
            .call(&self.c, "default network ACLs")
            .await?;
        for a in acls.network_acls() {
            if let (Some(vpc), Some(id)) = (a.vpc_id(), a.network_acl_id()) {
                out.entry(vpc.to_string())
                    .or_default()
                    .insert("DefaultNetworkAcl".into(), Value::String(id.into()));
            }
        }
        Ok(out)
    }
}
