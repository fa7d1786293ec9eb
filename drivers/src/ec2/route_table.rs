//! `AWS::EC2::RouteTable`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, RouteTable as Table};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, Found, KeyQuery, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::{filter, owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{all_tags, need_str, Obs};
use crate::sdk::Clients;
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:route-table",
    arn: "ec2:route-table/",
    id: crate::tagging::after_slash,
};

pub struct RouteTable {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl RouteTable {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::RouteTable")
            .required("VpcId")
            .create_only("VpcId")
            .kind("Tags", ValueKind::Tags)
            .id_attribute("RouteTableId")
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::from_secs(120), Duration::from_secs(300));
        RouteTable { c, schema }
    }

    /// One route table, or `None` while EC2 does not show it yet (or any
    /// more).
    async fn describe(&self, id: &str) -> Result<Option<Table>, DriverError> {
        let out = self
            .c
            .ec2
            .describe_route_tables()
            .filters(filter("route-table-id", [id]))
            .send()
            .call(&self.c, id)
            .await?;
        Ok(out.route_tables().first().cloned())
    }
}

fn attributes(id: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("RouteTableId".into(), Value::String(id.to_string()));
    a
}

#[async_trait]
impl Driver for RouteTable {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let tables = super::route_tables(&self.c, &ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                tables.get(&h.physical_id).map(|t| {
                    Obs::new()
                        .prop("VpcId", t.vpc_id())
                        .prop("Tags", Some(tags_of(t.tags())))
                        .attr("RouteTableId", t.route_table_id())
                        .done()
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let vpc = need_str(p, "VpcId", "ec2:CreateRouteTable")?;
        let out = self
            .c
            .ec2
            .create_route_table()
            .vpc_id(vpc)
            .client_token(req.idempotency_token)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &all_tags(p, req.tags)))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .unwrap_or_default()
            .to_string();
        // EC2 is eventually consistent: routes and associations made right
        // after the table may not find it yet.
        wait::until(
            "ec2:DescribeRouteTables",
            &format!("{id} to be visible"),
            self.schema.deadlines.ready,
            || async { Ok(self.describe(&id).await?.map(|_| ())) },
        )
        .await?;
        Ok(Created {
            attributes: attributes(&id),
            physical_id: id,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        // VpcId is create-only: only the tags change in place.
        sync_tags(&self.c, &req).await?;
        Ok(attributes(req.physical_id))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // Subnets still associated with the table (their associations are
        // deleted alongside) make it a dependency violation for a while.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
                .call(&self.c, id)
                .await
        })
        .await
    }

    /// By its VPC and the stack's `Name` tag (without one, a table is no
    /// different from its VPC's others, so there is no key).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let (Some(vpc), Some(name)) = (crate::key::given(q, "VpcId"), crate::key::name_tag(q))
        else {
            return Ok(None);
        };
        let mut filters = super::name_filters(Some(&name));
        filters.push(super::filter("vpc-id", [vpc]));
        let ids = super::matching!(
            self.c,
            describe_route_tables(set_filters),
            filters,
            route_tables,
            route_table_id,
            "route tables by key",
            |t: &aws_sdk_ec2::types::RouteTable| super::has_tag(t.tags(), "Name", Some(&name))
        );
        let key = super::key_text(&[("VpcId", Some(vpc)), ("Name", Some(&name))]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let mut found = Vec::new();
        let mut pages = self
            .c
            .ec2
            .describe_route_tables()
            .set_filters(Some(owner_filters(owner)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.op("route tables by tag")?;
            found.extend(super::found(
                page.route_tables(),
                owner,
                aws_sdk_ec2::types::RouteTable::tags,
                aws_sdk_ec2::types::RouteTable::route_table_id,
            ));
        }
        Ok(found)
    }
}
