//! `AWS::EC2::EIP`, in a VPC.
//!
//! The physical id is the allocation id, not the public address
//! CloudFormation's `Ref` gives: the allocation id is what every API that
//! manages the address takes. Both are attributes (`AllocationId`,
//! `PublicIp`); a NAT gateway takes `Fn::GetAtt [Eip, AllocationId]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use fastcart_engine::{
    CreateRequest, Created, Driver, DriverError, ErrorKind, Found, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::{filter, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::invalid;
use crate::props::{all_tags, str_of, Obs};
use crate::sdk::Clients;
use crate::wait;

fn by_allocation_id<'a>(all: impl Iterator<Item = &'a Address>) -> HashMap<String, Address> {
    all.filter_map(|a| Some((a.allocation_id()?.to_string(), a.clone())))
        .collect()
}

pub struct Eip {
    c: Arc<Clients>,
    schema: TypeSchema,
}

fn attributes_of(a: &Address) -> Map<String, Value> {
    Obs::new()
        .attr("AllocationId", a.allocation_id())
        .attr("PublicIp", a.public_ip())
        .done()
        .attributes
}

impl Eip {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::EIP")
            // Only "vpc": EC2-Classic ("standard") addresses are gone.
            .create_only("Domain")
            // A specific address to allocate (recovering a released one,
            // or from a BYOIP pool); AWS never reports what was asked.
            .create_only("Address")
            .write_only("Address")
            .kind("Tags", ValueKind::Tags)
            .id_attribute("AllocationId")
            .attribute("PublicIp")
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::ZERO, Duration::from_secs(600));
        Eip { c, schema }
    }

    /// The addresses among the allocation ids that exist. `DescribeAddresses`
    /// is not paginated: one call per 200 ids (the most one filter takes).
    async fn describe(&self, ids: &[&str]) -> Result<HashMap<String, Address>, DriverError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(200) {
            let out = self
                .c
                .ec2
                .describe_addresses()
                .filters(filter("allocation-id", chunk.iter().copied()))
                .send()
                .call(&self.c, &chunk.join(","))
                .await?;
            found.extend(by_allocation_id(out.addresses().iter()));
        }
        Ok(found)
    }
}

#[async_trait]
impl Driver for Eip {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        // The twin search of this refresh listed every address: unless
        // fastcart changed something since, that answers the read too.
        let addresses = match self.c.addresses.get(self.c.mutations()) {
            Some(all) => by_allocation_id(all.iter()),
            None => {
                let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
                self.describe(&ids).await?
            }
        };
        Ok(handles
            .iter()
            .map(|h| {
                addresses.get(&h.physical_id).map(|a| {
                    let mut o = Obs::new()
                        .prop("Domain", a.domain().map(|d| d.as_str()))
                        .prop("Tags", Some(tags_of(a.tags())))
                        .done();
                    o.attributes = attributes_of(a);
                    o
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        if let Some(d) = str_of(p, "Domain") {
            if d != "vpc" {
                return Err(invalid(
                    "ec2:AllocateAddress",
                    format!("{}: Domain must be \"vpc\", not {d:?}", req.logical_id),
                ));
            }
        }
        // AllocateAddress takes no client token; the tags let the engine find
        // an address a lost create allocated.
        let out = self
            .c
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .set_address(str_of(p, "Address").map(String::from))
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &all_tags(p, req.tags)))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let id = out.allocation_id().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(invalid(
                "ec2:AllocateAddress",
                format!("{}: AWS returned no allocation id", req.logical_id),
            ));
        }
        let mut attributes = Map::new();
        attributes.insert("AllocationId".into(), Value::String(id.clone()));
        if let Some(ip) = out.public_ip() {
            attributes.insert("PublicIp".into(), Value::String(ip.to_string()));
        }
        Ok(Created {
            physical_id: id,
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        sync_tags(&self.c, &req).await?;
        let mut found = self.describe(&[id]).await?;
        let mut attributes = found
            .remove(id)
            .map(|a| attributes_of(&a))
            .unwrap_or_default();
        attributes.insert("AllocationId".into(), Value::String(id.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // An address still held by a NAT gateway being deleted cannot be
        // released ("InvalidIPAddress.InUse"): retry that for a while.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .ec2
                .release_address()
                .allocation_id(id)
                .send()
                .call(&self.c, id)
                .await
                .map_err(|mut e| {
                    if e.is_code("InvalidIPAddress.InUse") || e.is_code("AuthFailure.InUse") {
                        e.kind = ErrorKind::DependencyViolation;
                    }
                    e
                })
        })
        .await
    }

    /// Every address of the region, picked by tag here: the tagging API does
    /// not list addresses everywhere (moto leaves them out), and an account
    /// holds few (five by default). The answer is kept for the reads that
    /// follow ([`Kept`](crate::batch::Kept)), so a refresh costs one call.
    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let generation = self.c.mutations();
        let out = self
            .c
            .ec2
            .describe_addresses()
            .send()
            .call(&self.c, "every address")
            .await?;
        let all = out.addresses().to_vec();
        let found = super::found(
            &all,
            owner,
            aws_sdk_ec2::types::Address::tags,
            aws_sdk_ec2::types::Address::allocation_id,
        );
        self.c.addresses.keep(generation, all);
        Ok(found)
    }
}
