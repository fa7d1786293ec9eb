//! `AWS::EC2::Route`.
//!
//! A route has no id and no tags of its own: it is the destination in a route
//! table, so its physical id is `rtb-…|0.0.0.0/0`, as CloudFormation's `Ref`
//! gives, and it is found again through its route table. As nothing can find
//! it by tags after a crash, creating is idempotent: a route already there for
//! the destination is adopted (and pointed at the wanted target if needed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::Route as AwsRoute;
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, KeyQuery, Observed, ResourceHandle,
    TypeSchema, UpdateRequest,
};
use serde_json::{Map, Value};

use crate::call::Call;
use crate::error::invalid;
use crate::props::{need_str, str_of, Obs, Props};
use crate::sdk::Clients;

/// The targets a route may have, by CloudFormation property name.
const TARGETS: [&str; 6] = [
    "GatewayId",
    "NatGatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "NetworkInterfaceId",
    "EgressOnlyInternetGatewayId",
];

/// Sets the target `$name` = `$id` on a CreateRoute or ReplaceRoute call.
macro_rules! with_target {
    ($call:ident, $name:expr, $id:expr) => {
        match $name {
            "GatewayId" => $call.gateway_id($id),
            "NatGatewayId" => $call.nat_gateway_id($id),
            "TransitGatewayId" => $call.transit_gateway_id($id),
            "VpcPeeringConnectionId" => $call.vpc_peering_connection_id($id),
            "NetworkInterfaceId" => $call.network_interface_id($id),
            _ => $call.egress_only_internet_gateway_id($id),
        }
    };
}

/// Sets the destination (IPv4 or IPv6 CIDR) on a route call.
macro_rules! with_destination {
    ($call:ident, $dest:expr) => {
        if $dest.contains(':') {
            $call.destination_ipv6_cidr_block($dest)
        } else {
            $call.destination_cidr_block($dest)
        }
    };
}

pub struct Route {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Route {
    pub fn new(c: Arc<Clients>) -> Self {
        let mut schema = TypeSchema::new("AWS::EC2::Route")
            .required("RouteTableId")
            .create_only("RouteTableId")
            .create_only("DestinationCidrBlock")
            .create_only("DestinationIpv6CidrBlock")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        for t in TARGETS {
            schema = schema.prop(t);
        }
        Route { c, schema }
    }

    /// The routes of some route tables, by table id: one call for all
    /// (shared with the route tables' own read).
    async fn routes(&self, tables: &[&str]) -> Result<HashMap<String, Vec<AwsRoute>>, DriverError> {
        Ok(super::route_tables(&self.c, tables)
            .await?
            .into_iter()
            .map(|(id, t)| (id, t.routes().to_vec()))
            .collect())
    }

    async fn replace(
        &self,
        table: &str,
        dest: &str,
        target: (&str, &str),
    ) -> Result<(), DriverError> {
        let call = self.c.ec2.replace_route().route_table_id(table);
        let call = with_destination!(call, dest);
        let call = with_target!(call, target.0, target.1);
        call.send().call(&self.c, &physical_id(table, dest)).await?;
        Ok(())
    }
}

fn physical_id(table: &str, dest: &str) -> String {
    format!("{table}|{dest}")
}

/// `rtb-…|0.0.0.0/0` as the table and the destination.
fn split(id: &str) -> Option<(&str, &str)> {
    id.split_once('|')
        .filter(|(t, d)| !t.is_empty() && !d.is_empty())
}

/// The destination the stack asks for: exactly one of the two CIDR blocks.
fn destination_of<'a>(p: &'a Props, op: &str) -> Result<&'a str, DriverError> {
    match (
        str_of(p, "DestinationCidrBlock"),
        str_of(p, "DestinationIpv6CidrBlock"),
    ) {
        (Some(d), None) | (None, Some(d)) => Ok(d),
        _ => Err(invalid(
            op,
            "a route needs exactly one of DestinationCidrBlock and DestinationIpv6CidrBlock",
        )),
    }
}

/// The target the stack asks for: exactly one, as (property, id).
fn target_of<'a>(p: &'a Props, op: &str) -> Result<(&'static str, &'a str), DriverError> {
    let given: Vec<(&'static str, &str)> = TARGETS
        .iter()
        .filter_map(|&k| str_of(p, k).map(|v| (k, v)))
        .collect();
    match given.as_slice() {
        [one] => Ok(*one),
        _ => Err(invalid(
            op,
            format!(
                "a route needs exactly one target, one of {}",
                TARGETS.join(", ")
            ),
        )),
    }
}

/// The targets AWS reports for a route, as (property, id).
fn targets(r: &AwsRoute) -> Vec<(&'static str, &str)> {
    [
        ("GatewayId", r.gateway_id().filter(|g| *g != "local")),
        ("NatGatewayId", r.nat_gateway_id()),
        ("TransitGatewayId", r.transit_gateway_id()),
        ("VpcPeeringConnectionId", r.vpc_peering_connection_id()),
        ("NetworkInterfaceId", r.network_interface_id()),
        (
            "EgressOnlyInternetGatewayId",
            r.egress_only_internet_gateway_id(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
    .collect()
}

fn destination(r: &AwsRoute) -> Option<&str> {
    r.destination_cidr_block()
        .or_else(|| r.destination_ipv6_cidr_block())
}

#[async_trait]
impl Driver for Route {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let mut tables: Vec<&str> = handles
            .iter()
            .filter_map(|h| split(&h.physical_id).map(|(t, _)| t))
            .collect();
        tables.sort_unstable();
        tables.dedup();
        let routes = self.routes(&tables).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let (table, dest) = split(&h.physical_id)?;
                let r = routes
                    .get(table)?
                    .iter()
                    .find(|r| destination(r) == Some(dest))?;
                let key = if dest.contains(':') {
                    "DestinationIpv6CidrBlock"
                } else {
                    "DestinationCidrBlock"
                };
                let mut o = Obs::new()
                    .prop("RouteTableId", Some(table))
                    .prop(key, Some(dest));
                for (k, v) in targets(r) {
                    o = o.prop(k, Some(v));
                }
                Some(o.done())
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let op = "ec2:CreateRoute";
        let p = req.properties;
        let table = need_str(p, "RouteTableId", op)?;
        let dest = destination_of(p, op)?;
        let target = target_of(p, op)?;
        let id = physical_id(table, dest);
        let existing = self
            .routes(&[table])
            .await?
            .remove(table)
            .unwrap_or_default()
            .into_iter()
            .find(|r| destination(r) == Some(dest));
        match existing {
            // Made by an earlier attempt, or by hand: adopt it.
            Some(r) if targets(&r).contains(&target) => {}
            // There, but elsewhere bound (or a blackhole): point it here.
            Some(_) => self.replace(table, dest, target).await?,
            None => {
                let call = self.c.ec2.create_route().route_table_id(table);
                let call = with_destination!(call, dest);
                let call = with_target!(call, target.0, target.1);
                match call.send().call(&self.c, &id).await {
                    // Made meanwhile (an earlier attempt's answer was lost):
                    // done if it is the same route, else say what differs.
                    Err(e) if e.is_code("RouteAlreadyExists") => {
                        let now = self
                            .routes(&[table])
                            .await?
                            .remove(table)
                            .unwrap_or_default();
                        match now.iter().find(|r| destination(r) == Some(dest)) {
                            Some(r) if targets(r).contains(&target) => {}
                            Some(r) => {
                                return Err(DriverError {
                                    message: format!(
                                        "{}; it points at {:?}, not {}: remove it or point the stack at it",
                                        e.message,
                                        targets(r),
                                        target.1
                                    ),
                                    ..e
                                })
                            }
                            None => return Err(e),
                        }
                    }
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(Created {
            physical_id: id,
            attributes: Map::new(),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let op = "ec2:ReplaceRoute";
        if req.changed.iter().any(|c| TARGETS.contains(&c.as_str())) {
            let (table, dest) = split(req.physical_id)
                .ok_or_else(|| invalid(op, format!("{}: not a route id", req.physical_id)))?;
            let target = target_of(req.properties, op)?;
            self.replace(table, dest, target).await?;
        }
        Ok(Map::new())
    }

    /// By its table and destination: the route there, whatever its target
    /// (a different target is an update).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let table = crate::key::given(q, "RouteTableId");
        let dest = crate::key::given(q, "DestinationCidrBlock")
            .or_else(|| crate::key::given(q, "DestinationIpv6CidrBlock"));
        let (Some(table), Some(dest)) = (table, dest) else {
            return Ok(None);
        };
        let key = super::key_text(&[("RouteTableId", Some(table)), ("Destination", Some(dest))]);
        crate::key::candidates(self, q, [physical_id(table, dest)], &key)
            .await
            .map(Some)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let op = "ec2:DeleteRoute";
        let (table, dest) = split(&h.physical_id)
            .ok_or_else(|| invalid(op, format!("{}: not a route id", h.physical_id)))?;
        let call = self.c.ec2.delete_route().route_table_id(table);
        let call = with_destination!(call, dest);
        match call.send().call(&self.c, &h.physical_id).await {
            // The route, or its whole table, is gone already.
            Err(e) if !crate::error::is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }
}
