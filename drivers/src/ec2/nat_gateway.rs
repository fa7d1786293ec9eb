//! `AWS::EC2::NatGateway` (zonal: in one subnet, public with an Elastic IP
//! or private).
//!
//! A NAT gateway takes minutes to become available and to be deleted, and a
//! deleted one stays visible for about an hour in state `deleted`: read
//! treats `deleting`, `deleted` and `failed` as gone.
//!
//! `DescribeNatGateways` calls its filter parameter `Filter` (singular).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ConnectivityType, NatGateway as Ec2Nat, ResourceType};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::{filter, owned, owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{all_tags, need_str, str_of, Obs};
use crate::sdk::Clients;
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:natgateway",
    arn: "ec2:natgateway/",
    id: crate::tagging::after_slash,
};

pub struct NatGateway {
    c: Arc<Clients>,
    schema: TypeSchema,
}

fn state_of(n: &Ec2Nat) -> &str {
    n.state().map(|s| s.as_str()).unwrap_or_default()
}

/// Whether AWS still counts the gateway as existing.
fn live(n: &Ec2Nat) -> bool {
    !matches!(state_of(n), "deleting" | "deleted" | "failed")
}

/// The allocation id of the gateway's primary public address.
fn allocation_of(n: &Ec2Nat) -> Option<&str> {
    let addresses = n.nat_gateway_addresses();
    addresses
        .iter()
        .find(|a| a.is_primary() == Some(true) && a.allocation_id().is_some())
        .or_else(|| addresses.iter().find(|a| a.allocation_id().is_some()))
        .and_then(|a| a.allocation_id())
}

impl NatGateway {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::NatGateway")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of("ConnectivityType", &["private", "public"])
            .required("SubnetId")
            .create_only("SubnetId")
            .create_only("AllocationId")
            .create_only("ConnectivityType")
            .kind("Tags", ValueKind::Tags)
            .attribute("NatGatewayId")
            .typical_duration(Duration::from_secs(120))
            .deadlines(Duration::from_secs(600), Duration::from_secs(600));
        NatGateway { c, schema }
    }

    /// The gateways among `ids`, in any state: one `DescribeNatGateways` per
    /// page (and per 200 ids, the most one filter takes).
    async fn describe(&self, ids: &[&str]) -> Result<HashMap<String, Ec2Nat>, DriverError> {
        super::by_ids!(
            self.c,
            ids,
            describe_nat_gateways,
            filter("nat-gateway-id"),
            nat_gateways,
            nat_gateway_id
        )
        .await
    }

    /// Waits until the gateway is available; fails at once when AWS says
    /// it failed.
    async fn wait_available(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        wait::until(
            "ec2:DescribeNatGateways",
            &format!("{id} to become available"),
            self.schema.deadlines.ready,
            || async {
                let found = self.describe(&[id.as_str()]).await?;
                match found.get(&id) {
                    Some(n) if state_of(n) == "available" => Ok(Some(())),
                    Some(n) if matches!(state_of(n), "failed" | "deleting" | "deleted") => {
                        Err(DriverError::new(
                            ErrorKind::Other,
                            "ec2:CreateNatGateway",
                            format!(
                                "{id} is {}: {}",
                                state_of(n),
                                n.failure_message()
                                    .or(n.failure_code())
                                    .unwrap_or("no reason given")
                            ),
                        ))
                    }
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    /// Waits until the gateway is gone or `deleted` (about a minute on AWS).
    async fn wait_deleted(&self, id: &str) -> Result<(), DriverError> {
        wait::until(
            "ec2:DescribeNatGateways",
            &format!("{id} to be deleted"),
            self.schema.deadlines.gone,
            || async {
                let found = self.describe(&[id]).await?;
                Ok(found
                    .get(id)
                    .is_none_or(|n| matches!(state_of(n), "deleted" | "failed"))
                    .then_some(()))
            },
        )
        .await
    }
}

#[async_trait]
impl Driver for NatGateway {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let gateways = self.describe(&ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                gateways.get(&h.physical_id).filter(|n| live(n)).map(|n| {
                    Obs::new()
                        .prop("SubnetId", n.subnet_id())
                        .prop("AllocationId", allocation_of(n))
                        .prop(
                            "ConnectivityType",
                            n.connectivity_type().map(|t| t.as_str()),
                        )
                        .prop("Tags", Some(tags_of(n.tags())))
                        .attr("NatGatewayId", n.nat_gateway_id())
                        .done()
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let subnet = need_str(p, "SubnetId", "ec2:CreateNatGateway")?;
        let out = self
            .c
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet)
            .set_allocation_id(str_of(p, "AllocationId").map(String::from))
            .set_connectivity_type(str_of(p, "ConnectivityType").map(ConnectivityType::from))
            .client_token(req.idempotency_token)
            .tag_specifications(tag_spec(ResourceType::Natgateway, &all_tags(p, req.tags)))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out
            .nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .unwrap_or_default()
            .to_string();
        self.wait_available(&id).await?;
        let mut attributes = Map::new();
        attributes.insert("NatGatewayId".into(), Value::String(id.clone()));
        Ok(Created {
            physical_id: id,
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        sync_tags(&self.c, &req).await?;
        let mut attributes = Map::new();
        attributes.insert("NatGatewayId".into(), Value::String(id.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // Look first: deleting a gateway that is already deleted or deleting
        // needs only the wait (and moto answers an unknown id with a 500).
        let found = self.describe(&[id]).await?;
        let Some(n) = found.get(id) else {
            return Ok(());
        };
        match state_of(n) {
            "deleted" | "failed" => return Ok(()),
            "deleting" => {}
            _ => {
                let r = self
                    .c
                    .ec2
                    .delete_nat_gateway()
                    .nat_gateway_id(id)
                    .send()
                    .call(&self.c, id)
                    .await;
                match r {
                    Err(e) if crate::error::is_gone(&e) => return Ok(()),
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
            }
        }
        self.wait_deleted(id).await
    }

    /// `DescribeNatGateways` by tag, in the states that count as existing.
    /// The tags are checked here too: moto ignores tag filters on this call.
    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        self.wait_available(&h.physical_id).await?;
        Ok(None)
    }

    /// By its subnet, among the live ones, and the stack's `Name` tag
    /// (checked here: moto ignores tag filters on this call).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(subnet) = crate::key::given(q, "SubnetId") else {
            return Ok(None);
        };
        let name = crate::key::name_tag(q);
        let ids = super::matching!(
            self.c,
            describe_nat_gateways(set_filter),
            vec![
                filter("subnet-id", [subnet]),
                filter("state", ["pending", "available"]),
            ],
            nat_gateways,
            nat_gateway_id,
            "NAT gateways by key",
            |n: &Ec2Nat| live(n) && super::has_tag(n.tags(), "Name", name.as_deref())
        );
        let key = super::key_text(&[("SubnetId", Some(subnet)), ("Name", name.as_deref())]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let mut filters = owner_filters(owner);
        filters.push(filter("state", ["pending", "available"]));
        let mut found = Vec::new();
        let mut pages = self
            .c
            .ec2
            .describe_nat_gateways()
            .set_filter(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for n in page.op("NAT gateways by tag")?.nat_gateways() {
                if !live(n) {
                    continue;
                }
                if let (Some(logical_id), Some(id)) = (owned(n.tags(), owner), n.nat_gateway_id()) {
                    found.push(Found {
                        logical_id,
                        physical_id: id.to_string(),
                    });
                }
            }
        }
        Ok(found)
    }
}
