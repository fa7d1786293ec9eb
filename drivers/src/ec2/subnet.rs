//! `AWS::EC2::Subnet` (IPv4, by CIDR block).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet as Ec2Subnet};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, Found, KeyQuery, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::{owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{all_tags, bool_of, need_str, str_of, Obs};
use crate::sdk::Clients;
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:subnet",
    arn: "ec2:subnet/",
    id: crate::tagging::after_slash,
};

pub struct Subnet {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// The `Fn::GetAtt` attributes of a subnet.
fn attributes_of(s: &Ec2Subnet) -> Map<String, Value> {
    Obs::new()
        .attr("SubnetId", s.subnet_id())
        .attr("VpcId", s.vpc_id())
        .attr("AvailabilityZone", s.availability_zone())
        .attr("CidrBlock", s.cidr_block())
        .done()
        .attributes
}

impl Subnet {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::Subnet")
            .guard("MapPublicIpOnLaunch", fastcart_engine::Guard::Exposure)
            .required("VpcId")
            .create_only("VpcId")
            .required("CidrBlock")
            .create_only("CidrBlock")
            .create_only("AvailabilityZone")
            .prop("MapPublicIpOnLaunch")
            .kind("Tags", ValueKind::Tags)
            .id_attribute("SubnetId")
            .attribute("VpcId")
            .attribute("AvailabilityZone")
            .attribute("CidrBlock")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(120), Duration::from_secs(600));
        Subnet { c, schema }
    }

    /// The subnets among `ids` that exist: one `DescribeSubnets` per page
    /// (and per 200 ids, the most one filter takes).
    async fn describe(&self, ids: &[&str]) -> Result<HashMap<String, Ec2Subnet>, DriverError> {
        super::by_ids!(
            self.c,
            ids,
            describe_subnets,
            filters("subnet-id"),
            subnets,
            subnet_id
        )
        .await
    }

    async fn map_public_ip(&self, id: &str, on: bool) -> Result<(), DriverError> {
        self.c
            .ec2
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
            .send()
            .call(&self.c, id)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Driver for Subnet {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let subnets = self.describe(&ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                subnets.get(&h.physical_id).map(|s| {
                    let mut o = Obs::new()
                        .prop("VpcId", s.vpc_id())
                        .prop("CidrBlock", s.cidr_block())
                        .prop("AvailabilityZone", s.availability_zone())
                        .prop("MapPublicIpOnLaunch", s.map_public_ip_on_launch())
                        .prop("Tags", Some(tags_of(s.tags())))
                        .done();
                    o.attributes = attributes_of(s);
                    o
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let vpc = need_str(p, "VpcId", "ec2:CreateSubnet")?;
        let cidr = need_str(p, "CidrBlock", "ec2:CreateSubnet")?;
        let out = self
            .c
            .ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .set_availability_zone(str_of(p, "AvailabilityZone").map(String::from))
            .tag_specifications(tag_spec(ResourceType::Subnet, &all_tags(p, req.tags)))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .unwrap_or_default()
            .to_string();
        let subnet = wait::until(
            "ec2:DescribeSubnets",
            &format!("{id} to become available"),
            self.schema.deadlines.ready,
            || async {
                let mut found = self.describe(&[id.as_str()]).await?;
                Ok(found
                    .remove(&id)
                    .filter(|s| s.state().is_some_and(|st| st.as_str() == "available")))
            },
        )
        .await?;
        // A new subnet does not map public addresses: set it only when asked.
        let mut attributes = attributes_of(&subnet);
        if bool_of(p, "MapPublicIpOnLaunch") == Some(true) {
            self.map_public_ip(&id, true).await?;
        }
        attributes.insert("SubnetId".into(), Value::String(id.clone()));
        Ok(Created {
            physical_id: id,
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        if req.changed.iter().any(|c| c == "MapPublicIpOnLaunch") {
            // Absent means the AWS default, off.
            let on = bool_of(req.properties, "MapPublicIpOnLaunch").unwrap_or(false);
            self.map_public_ip(id, on).await?;
        }
        sync_tags(&self.c, &req).await?;
        let mut found = self.describe(&[id]).await?;
        let mut attributes = found
            .remove(id)
            .map(|s| attributes_of(&s))
            .unwrap_or_default();
        attributes.insert("SubnetId".into(), Value::String(id.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // Network interfaces of a NAT gateway or load balancer just deleted
        // linger for a while and hold the subnet.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .call(&self.c, id)
                .await
        })
        .await
    }

    /// By its VPC and CIDR block (a VPC holds one subnet of a block).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let (Some(vpc), Some(cidr)) = (
            crate::key::given(q, "VpcId"),
            crate::key::given(q, "CidrBlock"),
        ) else {
            return Ok(None);
        };
        let ids = super::matching!(
            self.c,
            describe_subnets(set_filters),
            vec![super::filter("vpc-id", [vpc])],
            subnets,
            subnet_id,
            "subnets by key",
            |s: &aws_sdk_ec2::types::Subnet| s.cidr_block() == Some(cidr)
        );
        let key = super::key_text(&[("VpcId", Some(vpc)), ("CidrBlock", Some(cidr))]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let mut found = Vec::new();
        let mut pages = self
            .c
            .ec2
            .describe_subnets()
            .set_filters(Some(owner_filters(owner)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.op("subnets by tag")?;
            found.extend(super::found(
                page.subnets(),
                owner,
                aws_sdk_ec2::types::Subnet::tags,
                aws_sdk_ec2::types::Subnet::subnet_id,
            ));
        }
        Ok(found)
    }
}
