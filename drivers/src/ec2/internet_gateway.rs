//! `AWS::EC2::InternetGateway`.
//!
//! The gateway alone: attaching it to a VPC is
//! `AWS::EC2::VPCGatewayAttachment` (`gateway_attachment.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as Igw, ResourceType};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, Found, KeyQuery, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::{filter, owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{all_tags, Obs};
use crate::sdk::Clients;
use crate::tags::{self, Limited};
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:internet-gateway",
    arn: "ec2:internet-gateway/",
    id: crate::tagging::after_slash,
};

pub struct InternetGateway {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl InternetGateway {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::InternetGateway")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::Limits {
                value_min: None,
                ..tags::LIMITS
            })
            .id_attribute("InternetGatewayId")
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::from_secs(60), Duration::from_secs(300));
        InternetGateway { c, schema }
    }

    /// The gateways among `ids` that exist: one `DescribeInternetGateways`
    /// per page (and per 200 ids, the most one filter takes).
    pub(crate) async fn describe(
        c: &Arc<Clients>,
        ids: &[&str],
    ) -> Result<HashMap<String, Igw>, DriverError> {
        // Shared with the attachments' read, which asks at the same time.
        let c2 = c.clone();
        c.internet_gateways
            .load(ids, move |ids| async move {
                let mut found = HashMap::new();
                for chunk in ids.chunks(200) {
                    let target = chunk.join(",");
                    let mut pages = c2
                        .ec2
                        .describe_internet_gateways()
                        .filters(filter("internet-gateway-id", chunk.iter().cloned()))
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        for g in page.op(&target)?.internet_gateways() {
                            if let Some(id) = g.internet_gateway_id() {
                                found.insert(id.to_string(), g.clone());
                            }
                        }
                    }
                }
                Ok(found)
            })
            .await
    }
}

#[async_trait]
impl Driver for InternetGateway {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let igws = Self::describe(&self.c, &ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                igws.get(&h.physical_id).map(|g| {
                    Obs::new()
                        .prop("Tags", Some(tags_of(g.tags())))
                        .attr("InternetGatewayId", g.internet_gateway_id())
                        .done()
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let out = self
            .c
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(
                ResourceType::InternetGateway,
                &all_tags(req.properties, req.tags),
            ))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default()
            .to_string();
        // A new gateway is usable at once, but reads are eventually
        // consistent: wait until a describe sees it.
        wait::until(
            "ec2:DescribeInternetGateways",
            &format!("{id} to become visible"),
            self.schema.deadlines.ready,
            || async {
                let found = Self::describe(&self.c, &[id.as_str()]).await?;
                Ok(found.contains_key(&id).then_some(()))
            },
        )
        .await?;
        let mut attributes = Map::new();
        attributes.insert("InternetGatewayId".into(), Value::String(id.clone()));
        Ok(Created {
            physical_id: id,
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        sync_tags(&self.c, &req).await?;
        let mut attributes = Map::new();
        attributes.insert("InternetGatewayId".into(), Value::String(id.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // Still attached (the attachment's detach not yet settled): retry.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .call(&self.c, id)
                .await
        })
        .await
    }

    /// By the stack's `Name` tag; without one, through the attachment that
    /// names it.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(name) = crate::key::name_tag(q) else {
            return Ok(None);
        };
        let ids = super::matching!(
            self.c,
            describe_internet_gateways(set_filters),
            super::name_filters(Some(&name)),
            internet_gateways,
            internet_gateway_id,
            "internet gateways by key",
            |g: &aws_sdk_ec2::types::InternetGateway| super::has_tag(g.tags(), "Name", Some(&name))
        );
        let key = super::key_text(&[("Name", Some(&name))]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let mut found = Vec::new();
        let mut pages = self
            .c
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(owner_filters(owner)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.op("internet gateways by tag")?;
            found.extend(super::found(
                page.internet_gateways(),
                owner,
                aws_sdk_ec2::types::InternetGateway::tags,
                aws_sdk_ec2::types::InternetGateway::internet_gateway_id,
            ));
        }
        Ok(found)
    }
}
