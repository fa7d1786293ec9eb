//! Finding resources by ownership tags through the Resource Groups Tagging
//! API. Per type, one paginated `GetResources` answers for a whole resource
//! type ([`find`]); for a whole stack, [`Inventory`] answers for every type
//! the API covers with one paginated call, and keeps the tags it saw so that
//! reads of services whose Describe carries no tags need not ask per
//! resource ([`Clients::snapshot_tags`], read through `tags::read`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_resourcegroupstagging::types::TagFilter;
use fastcart_engine::{
    BatchFinder, DriverError, Found, Ownership, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK,
};

use crate::call::Call;
use crate::sdk::Clients;

/// How a resource type appears in the tagging API.
pub struct Tagged {
    /// The API's resource type filter for this type alone (`ec2:vpc`; the
    /// service alone where moto knows no finer filter).
    pub filter: &'static str,
    /// How the type's ARNs read from the service on, with the region and
    /// account left out: `ec2:vpc/` for `arn:aws:ec2:r:a:vpc/vpc-1`.
    pub arn: &'static str,
    /// The physical id the driver uses, from such an ARN.
    pub id: fn(&str) -> Option<String>,
}

impl Tagged {
    /// Whether `arn` names a resource of this type.
    pub fn matches(&self, arn: &str) -> bool {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            [_, _, service, _, _, rest] => self
                .arn
                .strip_prefix(service)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|kind| rest.starts_with(kind)),
            _ => false,
        }
    }

    /// The physical id of `arn` when it names a resource of this type.
    pub fn id_of(&self, arn: &str) -> Option<String> {
        self.matches(arn).then(|| (self.id)(arn)).flatten()
    }
}

/// The ownership tag filters of a `GetResources` call.
fn owner_filters(owner: &Ownership) -> Vec<TagFilter> {
    vec![
        TagFilter::builder()
            .key(TAG_STACK)
            .values(&owner.stack)
            .build(),
        TagFilter::builder().key(TAG_ENV).values(&owner.env).build(),
    ]
}

/// Most resources and tags one `GetResources` page may hold (AWS's limits).
const RESOURCES_PER_PAGE: i32 = 100;
const TAGS_PER_PAGE: i32 = 500;

/// Every resource carrying the owner's tags, of the types `filters` name
/// (all types when empty), as `(ARN, tags)`: one call per page.
async fn tagged(
    c: &Clients,
    owner: &Ownership,
    filters: &[&str],
) -> Result<Vec<(String, BTreeMap<String, String>)>, DriverError> {
    let target = if filters.is_empty() {
        "resources of this stack".to_string()
    } else {
        filters.join(",")
    };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .tagging
            .get_resources()
            .set_tag_filters(Some(owner_filters(owner)))
            .set_resource_type_filters(
                (!filters.is_empty()).then(|| filters.iter().map(|f| f.to_string()).collect()),
            )
            .resources_per_page(RESOURCES_PER_PAGE)
            .tags_per_page(TAGS_PER_PAGE)
            .set_pagination_token(token.clone())
            .send()
            .call(c, &target)
            .await?;
        for r in page.resource_tag_mapping_list() {
            let tags = r
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            out.push((r.resource_arn().unwrap_or_default().to_string(), tags));
        }
        token = page
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Resources of one type carrying the owner's tags.
pub async fn find(
    c: &Clients,
    owner: &Ownership,
    kind: &Tagged,
) -> Result<Vec<Found>, DriverError> {
    Ok(tagged(c, owner, &[kind.filter])
        .await?
        .into_iter()
        .filter_map(|(arn, tags)| {
            Some(Found {
                logical_id: tags.get(TAG_LOGICAL_ID)?.clone(),
                physical_id: kind.id_of(&arn)?,
            })
        })
        .collect())
}

/// The stack-wide search: one paginated `GetResources` for every type the
/// tagging API covers (those registered with [`Inventory::cover`]). The tags
/// it saw are kept in [`Clients`] for reads, until the next mutation.
pub struct Inventory {
    c: Arc<Clients>,
    kinds: BTreeMap<String, &'static Tagged>,
}

impl Inventory {
    pub fn new(c: Arc<Clients>) -> Self {
        Inventory {
            c,
            kinds: BTreeMap::new(),
        }
    }

    /// Answers for `type_name` (`AWS::EC2::VPC`) through the tagging API.
    pub fn cover(&mut self, type_name: &str, kind: &'static Tagged) -> &mut Self {
        self.kinds.insert(type_name.to_string(), kind);
        self
    }
}

#[async_trait]
impl BatchFinder for Inventory {
    fn covers(&self, type_name: &str) -> bool {
        self.kinds.contains_key(type_name)
    }

    async fn find(
        &self,
        owner: &Ownership,
        types: &[String],
    ) -> Result<Vec<(String, Found)>, DriverError> {
        let generation = self.c.mutations();
        // No type filter: the whole stack's tags, which reads then use.
        let all = tagged(&self.c, owner, &[]).await?;
        let mut found = Vec::new();
        for (arn, tags) in &all {
            let Some(logical_id) = tags.get(TAG_LOGICAL_ID) else {
                continue;
            };
            for t in types {
                if let Some(physical_id) = self.kinds.get(t).and_then(|k| k.id_of(arn)) {
                    found.push((
                        t.clone(),
                        Found {
                            logical_id: logical_id.clone(),
                            physical_id,
                        },
                    ));
                }
            }
        }
        self.c.keep_tags(generation, all);
        Ok(found)
    }
}

/// The ARN as the tagging API writes it: a log group's without its `:*`.
pub(crate) fn arn_key(arn: &str) -> &str {
    arn.trim_end_matches(":*")
}

/// The whole ARN, for types known by it.
pub fn whole(arn: &str) -> Option<String> {
    Some(arn.to_string())
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
