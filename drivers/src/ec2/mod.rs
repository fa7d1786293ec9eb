//! EC2: the network of a stack. Shared helpers for tags and filters; one
//! module per resource type.
//!
//! Reads use `Describe*` with a filter on the id (`vpc-id`, `subnet-id`, ...)
//! rather than an id list: an id list fails the whole call when one id is
//! gone, a filter just leaves it out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, ResourceType, RouteTable, Tag, TagSpecification};
use fastcart_engine::{DriverError, Found, Ownership, UpdateRequest, TAG_ENV, TAG_STACK};
use serde_json::Value;

use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::tags_value;
use crate::sdk::Clients;

pub mod eip;
pub mod gateway_attachment;
pub mod internet_gateway;
pub mod nat_gateway;
pub mod route;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod subnet_route_table_association;
pub mod vpc;

/// The EC2 objects among `ids` that exist, by id: `DescribeX` through the
/// `x-id` filter, which takes 200 values, so one call per 200 ids and page
/// ([`crate::batch::describe`]). `by_ids!(clients, ids, describe_vpcs,
/// filters("vpc-id"), vpcs, vpc_id)`: the call, its filter parameter and
/// name, the list a page carries, and an item's id.
macro_rules! by_ids {
    ($c:expr, $ids:expr, $call:ident, $param:ident($name:literal), $items:ident, $id:ident) => {
        crate::batch::describe(
            $ids,
            200,
            |chunk| {
                $c.ec2
                    .$call()
                    .$param(crate::ec2::filter($name, chunk.iter().copied()))
                    .into_paginator()
                    .send()
            },
            |page| page.$items(),
            |item| item.$id(),
        )
    };
}
pub(crate) use by_ids;

/// The ids of the EC2 objects a paginated `Describe*` lists for `filters`
/// and `keep` accepts, for a natural-key search:
/// `matching!(clients, describe_subnets(set_filters), filters, subnets,
/// subnet_id, "subnets by key", |s: &Subnet| ...)`.
macro_rules! matching {
    ($c:expr, $call:ident($param:ident), $filters:expr, $items:ident, $id:ident, $what:expr, $keep:expr) => {{
        let mut ids: Vec<String> = Vec::new();
        let mut pages = $c
            .ec2
            .$call()
            .$param(Some($filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for item in crate::error::SdkResultExt::op(page, $what)?.$items() {
                if ($keep)(item) {
                    ids.extend(item.$id().map(String::from));
                }
            }
        }
        ids
    }};
}
pub(crate) use matching;

/// A filter on the stack's `Name` tag, when it gives one.
pub(crate) fn name_filters(name: Option<&str>) -> Vec<Filter> {
    name.map(|n| filter("tag:Name", [n])).into_iter().collect()
}

/// Whether `tags` carry `key` = `value` (any value when `value` is `None`).
pub(crate) fn has_tag(tags: &[Tag], key: &str, value: Option<&str>) -> bool {
    value.is_none_or(|v| {
        tags.iter()
            .any(|t| t.key() == Some(key) && t.value() == Some(v))
    })
}

/// A key as people read it: `VpcId=vpc-1, Name=web`, leaving out parts the
/// stack does not give.
pub(crate) fn key_text(parts: &[(&str, Option<&str>)]) -> String {
    parts
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// The route tables among `ids` that exist, by id. Route tables, routes and
/// associations all read them: reads at once share one call (per page and
/// per 200 ids, the most one filter takes).
pub(crate) async fn route_tables(
    c: &Arc<Clients>,
    ids: &[&str],
) -> Result<HashMap<String, RouteTable>, DriverError> {
    let c2 = c.clone();
    c.route_tables
        .load(ids, move |ids| async move {
            let mut found = HashMap::new();
            for chunk in ids.chunks(200) {
                let target = chunk.join(",");
                let mut pages = c2
                    .ec2
                    .describe_route_tables()
                    .filters(filter("route-table-id", chunk.iter().cloned()))
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    for t in page.op(&target)?.route_tables() {
                        if let Some(id) = t.route_table_id() {
                            found.insert(id.to_string(), t.clone());
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
}

/// Filters matching the owner's tags.
pub(crate) fn owner_filters(owner: &Ownership) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_STACK}"), [owner.stack.as_str()]),
        filter(&format!("tag:{TAG_ENV}"), [owner.env.as_str()]),
    ]
}

pub(crate) fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

pub(crate) fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// EC2 tags as a CloudFormation tag list.
pub(crate) fn tags_of(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// The owner's resources among `items`, as the engine's `Found`: the
/// logical id from their ownership tags, the physical id from `id`.
pub(crate) fn found<'a, T: 'a>(
    items: impl IntoIterator<Item = &'a T>,
    owner: &Ownership,
    tags: impl Fn(&T) -> &[Tag],
    id: impl Fn(&T) -> Option<&str>,
) -> Vec<Found> {
    items
        .into_iter()
        .filter_map(|item| {
            Some(Found {
                logical_id: owned(tags(item), owner)?,
                physical_id: id(item)?.to_string(),
            })
        })
        .collect()
}

/// The logical id, when the tags say the owner owns it.
pub(crate) fn owned(tags: &[Tag], owner: &Ownership) -> Option<String> {
    crate::tagging::owned_by(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        owner,
    )
}

/// EC2's tag calls, by resource id. Every EC2 describe carries tags, so
/// `list` is there for the frame only.
pub(crate) struct Ec2Tags<'a>(pub(crate) &'a Clients);

impl crate::tags::TagApi for Ec2Tags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, id: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .ec2
            .describe_tags()
            .filters(filter("resource-id", [id]))
            .send()
            .call(self.0, id)
            .await?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect())
    }

    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .call(self.0, id)
            .await?;
        Ok(())
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .ec2
            .delete_tags()
            .resources(id)
            .set_tags(Some(
                keys.iter().map(|k| Tag::builder().key(k).build()).collect(),
            ))
            .send()
            .call(self.0, id)
            .await?;
        Ok(())
    }
}

/// Reconciles an updated resource's tags: sets every tag it should carry and
/// removes those its `Tags` property no longer gives.
pub(crate) async fn sync_tags(c: &Clients, req: &UpdateRequest<'_>) -> Result<(), DriverError> {
    crate::tags::sync_update(&Ec2Tags(c), req.physical_id, req).await
}
