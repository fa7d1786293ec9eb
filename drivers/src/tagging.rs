//! Finding resources by ownership tags through the Resource Groups Tagging
//! API: one paginated `GetResources` call answers for a whole resource type.

use fastcart_engine::{
    Driver, DriverError, Found, Ownership, ResourceHandle, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK,
};
use serde_json::Map;

use crate::error::SdkResultExt;
use crate::sdk::Clients;

/// Resources of `resource_type` (`ec2:vpc`, `kms:key`, ...) carrying the
/// owner's tags; `physical_id` turns an ARN into the id the driver uses.
pub async fn find(
    c: &Clients,
    owner: &Ownership,
    resource_type: &str,
    physical_id: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Found>, DriverError> {
    use aws_sdk_resourcegroupstagging::types::TagFilter;
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .tagging
            .get_resources()
            .tag_filters(
                TagFilter::builder()
                    .key(TAG_STACK)
                    .values(&owner.stack)
                    .build(),
            )
            .tag_filters(TagFilter::builder().key(TAG_ENV).values(&owner.env).build())
            .resource_type_filters(resource_type)
            .set_pagination_token(token.clone())
            .send()
            .await
            .op("tag:GetResources", resource_type)?;
        for r in page.resource_tag_mapping_list() {
            let logical = r
                .tags()
                .iter()
                .find(|t| t.key() == TAG_LOGICAL_ID)
                .map(|t| t.value().to_string());
            let arn = r.resource_arn().unwrap_or_default();
            if let (Some(logical_id), Some(physical_id)) = (logical, physical_id(arn)) {
                found.push(Found {
                    logical_id,
                    physical_id,
                });
            }
        }
        token = page
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            return Ok(found);
        }
    }
}

/// Of what the tagging API found, what the driver still reads as live: the
/// API keeps listing some resources for a while after they were deleted.
pub async fn live<D: Driver + ?Sized>(
    driver: &D,
    found: Vec<Found>,
) -> Result<Vec<Found>, DriverError> {
    let handles: Vec<ResourceHandle> = found
        .iter()
        .map(|f| ResourceHandle {
            logical_id: f.logical_id.clone(),
            physical_id: f.physical_id.clone(),
            properties: Map::new(),
        })
        .collect();
    let seen = driver.read(&handles).await?;
    Ok(found
        .into_iter()
        .zip(seen)
        .filter_map(|(f, o)| o.map(|_| f))
        .collect())
}

/// The part of an ARN after the last `/` (`…:vpc/vpc-123` → `vpc-123`).
pub fn after_slash(arn: &str) -> Option<String> {
    arn.rsplit_once('/').map(|(_, id)| id.to_string())
}

/// The part of an ARN after the resource type's `:` (`…:db:name` → `name`).
pub fn after_colon(arn: &str, kind: &str) -> Option<String> {
    arn.split_once(&format!(":{kind}:"))
        .map(|(_, id)| id.to_string())
}

/// Whether ownership tags in a list of `(key, value)` pairs name the owner;
/// returns the logical id.
pub fn owned_by<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    owner: &Ownership,
) -> Option<String> {
    let (mut stack, mut env, mut logical) = (false, false, None);
    for (k, v) in tags {
        match k {
            TAG_STACK => stack = v == owner.stack,
            TAG_ENV => env = v == owner.env,
            TAG_LOGICAL_ID => logical = Some(v.to_string()),
            _ => {}
        }
    }
    if stack && env {
        logical
    } else {
        None
    }
}
