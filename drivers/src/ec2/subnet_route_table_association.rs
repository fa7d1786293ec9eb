//! `AWS::EC2::SubnetRouteTableAssociation`.
//!
//! The physical id is the association id (`rtbassoc-…`). Associations take no
//! tags, so creating is idempotent instead: a subnet already associated with
//! the table keeps that association, and a subnet associated with another
//! table is moved over (`ReplaceRouteTableAssociation`), which is also how a
//! replacement (a new `RouteTableId`) comes about before the old association
//! is deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, RouteTableAssociation};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, KeyQuery, Observed,
    ResourceHandle, TypeSchema, UpdateRequest,
};
use serde_json::{Map, Value};

use super::filter;
use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{need_str, str_of, Obs};
use crate::sdk::Clients;
use crate::wait;

pub struct SubnetRouteTableAssociation {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// Whether an association is there (or on its way), not on its way out.
fn live(a: &RouteTableAssociation) -> bool {
    a.association_state()
        .and_then(|s| s.state())
        .is_none_or(|s| matches!(s.as_str(), "associated" | "associating"))
}

impl SubnetRouteTableAssociation {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::SubnetRouteTableAssociation")
            .required("SubnetId")
            .required("RouteTableId")
            .create_only("SubnetId")
            .create_only("RouteTableId")
            .id_attribute("Id")
            .untaggable()
            .typical_duration(Duration::from_secs(1))
            .deadlines(Duration::from_secs(120), Duration::from_secs(120));
        SubnetRouteTableAssociation { c, schema }
    }

    /// Every association of the route tables matching `f`, by association
    /// id, paginated.
    async fn associations(
        &self,
        f: Filter,
        out: &mut HashMap<String, RouteTableAssociation>,
    ) -> Result<(), DriverError> {
        let what = f.values().join(",");
        let mut pages = self
            .c
            .ec2
            .describe_route_tables()
            .filters(f)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for t in page.op(&what)?.route_tables() {
                for a in t.associations() {
                    if let Some(id) = a.route_table_association_id() {
                        out.insert(id.to_string(), a.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// One association by its id.
    async fn association(&self, id: &str) -> Result<Option<RouteTableAssociation>, DriverError> {
        let mut found = HashMap::new();
        self.associations(
            filter("association.route-table-association-id", [id]),
            &mut found,
        )
        .await?;
        Ok(found.remove(id))
    }

    /// The subnet's explicit association, if it has one: (association id,
    /// route table id).
    async fn of_subnet(&self, subnet: &str) -> Result<Option<(String, String)>, DriverError> {
        let mut found = HashMap::new();
        self.associations(filter("association.subnet-id", [subnet]), &mut found)
            .await?;
        Ok(found.into_values().find_map(|a| {
            if a.subnet_id() == Some(subnet) && live(&a) {
                Some((
                    a.route_table_association_id()?.to_string(),
                    a.route_table_id()?.to_string(),
                ))
            } else {
                None
            }
        }))
    }
}

fn attributes(id: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("Id".into(), Value::String(id.to_string()));
    a
}

#[async_trait]
impl Driver for SubnetRouteTableAssociation {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // One call for all: through the route tables the associations were
        // made with (which the last applied properties name), else by
        // association id. Moto 5.2.5 matches a multi-valued
        // `association.route-table-association-id` filter only when a table's
        // associations are all (or none but) the values asked for, so the
        // route table filter is the one to rely on.
        let mut tables: Vec<&str> = Vec::new();
        let mut loose: Vec<&str> = Vec::new();
        for h in handles {
            match str_of(&h.properties, "RouteTableId") {
                Some(t) => tables.push(t),
                None => loose.push(&h.physical_id),
            }
        }
        tables.sort_unstable();
        tables.dedup();
        let mut found = HashMap::new();
        for t in super::route_tables(&self.c, &tables).await?.values() {
            for a in t.associations() {
                if let Some(id) = a.route_table_association_id() {
                    found.insert(id.to_string(), a.clone());
                }
            }
        }
        if !loose.is_empty() {
            self.associations(
                filter("association.route-table-association-id", loose),
                &mut found,
            )
            .await?;
        }
        Ok(handles
            .iter()
            .map(|h| {
                let a = found.get(&h.physical_id).filter(|a| live(a))?;
                Some(
                    Obs::new()
                        .prop("SubnetId", a.subnet_id())
                        .prop("RouteTableId", a.route_table_id())
                        .attr("Id", a.route_table_association_id())
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let subnet = need_str(p, "SubnetId", "ec2:AssociateRouteTable")?;
        let table = need_str(p, "RouteTableId", "ec2:AssociateRouteTable")?;
        let id = match self.of_subnet(subnet).await? {
            // Made by an earlier attempt, or by hand: adopt it.
            Some((assoc, t)) if t == table => assoc,
            // A subnet has one explicit association: move it to this table.
            Some((assoc, _)) => self
                .c
                .ec2
                .replace_route_table_association()
                .association_id(&assoc)
                .route_table_id(table)
                .send()
                .call(&self.c, &assoc)
                .await?
                .new_association_id()
                .unwrap_or_default()
                .to_string(),
            None => self
                .c
                .ec2
                .associate_route_table()
                .subnet_id(subnet)
                .route_table_id(table)
                .send()
                .call(&self.c, req.logical_id)
                .await?
                .association_id()
                .unwrap_or_default()
                .to_string(),
        };
        wait::until(
            "ec2:DescribeRouteTables",
            &format!("{id} to be associated"),
            self.schema.deadlines.ready,
            || async {
                let Some(a) = self.association(&id).await? else {
                    return Ok(None);
                };
                let state = a.association_state();
                match state.and_then(|s| s.state()).map(|s| s.as_str()) {
                    Some("associating") => Ok(None),
                    Some("failed") | Some("disassociated") | Some("disassociating") => {
                        Err(DriverError::new(
                            ErrorKind::Other,
                            "ec2:AssociateRouteTable",
                            format!(
                                "{id}: association of {subnet} with {table} is {}",
                                state
                                    .and_then(|s| s.status_message())
                                    .unwrap_or("not associated")
                            ),
                        ))
                    }
                    _ => Ok(Some(())),
                }
            },
        )
        .await?;
        Ok(Created {
            attributes: attributes(&id),
            physical_id: id,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        // Both properties are create-only: nothing changes in place.
        Ok(attributes(req.physical_id))
    }

    /// By its subnet: the subnet's explicit association (a subnet has at
    /// most one), whichever table it is on (another table is an update).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(subnet) = crate::key::given(q, "SubnetId") else {
            return Ok(None);
        };
        let ids = self.of_subnet(subnet).await?.map(|(id, _)| id);
        let key = super::key_text(&[("SubnetId", Some(subnet))]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        let r = self
            .c
            .ec2
            .disassociate_route_table()
            .association_id(id)
            .send()
            .call(&self.c, id)
            .await;
        match r {
            Err(e) if crate::error::is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        wait::until(
            "ec2:DescribeRouteTables",
            &format!("{id} to be disassociated"),
            self.schema.deadlines.gone,
            || async {
                Ok(self
                    .association(id)
                    .await?
                    .filter(live)
                    .map_or(Some(()), |_| None))
            },
        )
        .await
    }
}
