//! RDS: `AWS::RDS::DBSubnetGroup` here, `AWS::RDS::DBInstance` in
//! [`instance`] and `AWS::RDS::DBCluster` (Aurora) in [`cluster`].
//!
//! AWS stores subnet group names and instance identifiers lowercased: the
//! drivers create them lowercased (the physical id is the lowercase name) and
//! read them back in the stack's spelling when it names the same thing.
//!
//! A few helpers here are shared with the ElastiCache drivers: generated
//! names, names and KMS keys "as the stack gave them".

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{
    CloudwatchLogsExportConfiguration, DbSubnetGroup as SubnetGroup, MasterUserSecret, Tag,
};
use fastcart_engine::{
    Candidate, CloudContext, CreateRequest, Created, Driver, DriverError, Found, KeyQuery,
    Observed, Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use crate::call::Call;
use crate::dynamic;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{all_tags, bool_of, changed, need_str, str_of, strs_of, tags_value, Obs, Props};
use crate::sdk::Clients;
use crate::tagging::owned_by;
use crate::tags::{self, Limited};
use crate::wait;

/// A describe of RDS objects by identifier, `per_call` at a time through
/// the named filter (it leaves out an id that no longer exists, where the
/// identifier parameter would fail the call), keyed by identifier.
macro_rules! by_ids {
    ($c:expr, $ids:expr, $call:ident, $filter:literal, $items:ident, $id:ident) => {
        crate::batch::describe(
            $ids,
            100,
            |chunk| {
                $c.rds
                    .$call()
                    .filters(
                        aws_sdk_rds::types::Filter::builder()
                            .name($filter)
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .into_paginator()
                    .send()
            },
            |page| page.$items(),
            |item| item.$id(),
        )
    };
}

pub mod cluster;
pub mod instance;

pub use cluster::{DbCluster, DB_CLUSTER_TAGGED};
pub use instance::{DbInstance, DB_INSTANCE_TAGGED};

// ---------------------------------------------------------------------------
// Helpers shared with the ElastiCache drivers.

/// A name for a resource whose stack gives none, made as CloudFormation
/// makes one: the logical id lowercased, and a suffix from the create's
/// idempotency token (stable across retries of one create, new for a
/// replacement, so a replacement can be created before the old one goes). At
/// most `max` characters, starting with a letter, without double hyphens.
pub(crate) fn generated_name(logical_id: &str, token: &str, max: usize) -> String {
    let suffix: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut base: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert(0, 'r');
    }
    base.truncate(max.saturating_sub(suffix.len() + 1).max(1));
    if suffix.is_empty() {
        base
    } else {
        format!("{base}-{suffix}")
    }
}

/// A name AWS reports lowercased, in the stack's spelling when the stack
/// names the same thing (`MyGroup` for `mygroup`).
pub(crate) fn as_given(given: Option<&str>, actual: &str) -> String {
    match given {
        Some(g) if g.eq_ignore_ascii_case(actual) => g.to_string(),
        _ => actual.to_string(),
    }
}

/// An engine version AWS reports in full (`16.3`) where the stack may give a
/// prefix (`16`): the stack's when it is a prefix at a dot.
pub(crate) fn version_as_given(given: Option<&str>, actual: &str) -> String {
    match given {
        Some(g) if actual == g || actual.starts_with(&format!("{g}.")) => g.to_string(),
        _ => actual.to_string(),
    }
}

/// A KMS key AWS reports as its ARN, in the stack's spelling (key id, ARN or
/// alias) when the stack names the same key. An alias names a key only
/// through KMS: one `DescribeKey` for it, and only then.
pub(crate) async fn key_as_given(
    c: &Clients,
    given: Option<&str>,
    reported: Option<&str>,
) -> Option<String> {
    let reported = reported?;
    let Some(given) = given else {
        return Some(reported.to_string());
    };
    if given == reported
        || reported.ends_with(&format!(":key/{given}"))
        || given.ends_with(&format!(":key/{reported}"))
    {
        return Some(given.to_string());
    }
    if given.starts_with("alias/") || given.contains(":alias/") {
        let arn = c
            .kms
            .describe_key()
            .key_id(given)
            .send()
            .await
            .ok()
            .and_then(|out| out.key_metadata().and_then(|m| m.arn()).map(String::from));
        if arn.as_deref() == Some(reported) {
            return Some(given.to_string());
        }
    }
    Some(reported.to_string())
}

/// A list property as the SDK takes it, `None` when the stack leaves it out.
pub(crate) fn list_if_set(p: &Props, key: &str) -> Option<Vec<String>> {
    p.contains_key(key).then(|| strs_of(p, key))
}

pub(crate) fn owned_str(p: &Props, key: &str) -> Option<String> {
    str_of(p, key).map(String::from)
}

pub(crate) fn string_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

// ---------------------------------------------------------------------------
// Helpers shared by instances and clusters: the master password, the log
// exports, the master user secret as read back.

/// The KMS key the stack gives a managed master user secret.
pub(crate) fn secret_kms_key(p: &Props) -> Option<String> {
    p.get("MasterUserSecret")
        .and_then(|s| s.get("KmsKeyId"))
        .and_then(Value::as_str)
        .map(String::from)
}

/// A master user secret as the schema holds it (`SecretArn`, and `KmsKeyId`
/// in the stack's spelling).
pub(crate) async fn master_secret_value(
    c: &Clients,
    given: &Props,
    s: Option<&MasterUserSecret>,
) -> Option<Value> {
    let s = s?;
    let mut m = Map::new();
    if let Some(arn) = s.secret_arn() {
        m.insert("SecretArn".into(), Value::String(arn.into()));
    }
    if let Some(key) = key_as_given(c, secret_kms_key(given).as_deref(), s.kms_key_id()).await {
        m.insert("KmsKeyId".into(), Value::String(key));
    }
    Some(Value::Object(m))
}

/// What a modify call must say about the master password: whether RDS
/// manages it from now on (and with which key), or the password to use.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PasswordChange {
    pub manage: Option<bool>,
    pub secret_key: Option<String>,
    pub password: Option<String>,
}

impl PasswordChange {
    pub(crate) fn is_empty(&self) -> bool {
        *self == PasswordChange::default()
    }
}

/// The password part of an update, for an object whose master password RDS
/// manages now (`managed_now`) or not. `what` names the object in errors.
pub(crate) async fn password_change(
    c: &Clients,
    req: &UpdateRequest<'_>,
    managed_now: bool,
    op: &str,
    what: &str,
) -> Result<PasswordChange, DriverError> {
    let p = req.properties;
    let mut out = PasswordChange::default();
    let manage = bool_of(p, "ManageMasterUserPassword").unwrap_or(false);
    if changed(req, "ManageMasterUserPassword") && manage != managed_now {
        out.manage = Some(manage);
        if manage {
            out.secret_key = secret_kms_key(p);
        }
    } else if changed(req, "MasterUserSecret") && managed_now {
        return Err(invalid(
            op,
            format!(
                "{}: AWS cannot change the KMS key of a master user secret it already \
                 manages; turn ManageMasterUserPassword off and on again in two applies, \
                 or replace the {what}",
                req.physical_id
            ),
        ));
    }
    // Turning management off needs the password to use from then on.
    let turning_off = changed(req, "ManageMasterUserPassword") && !manage && managed_now;
    if !manage && (changed(req, "MasterUserPassword") || turning_off) {
        if let Some(v) = str_of(p, "MasterUserPassword") {
            out.password = Some(dynamic::resolve(c, v, op).await?);
        }
    }
    Ok(out)
}

/// The log exports to turn on and off, as AWS takes the change, when the
/// stack wants `want` and the object exports `have`; `None` when they agree.
pub(crate) fn logs_export_change(
    want: &[String],
    have: &[String],
) -> Option<CloudwatchLogsExportConfiguration> {
    let enable: Vec<String> = want.iter().filter(|w| !have.contains(w)).cloned().collect();
    let disable: Vec<String> = have.iter().filter(|h| !want.contains(h)).cloned().collect();
    if enable.is_empty() && disable.is_empty() {
        return None;
    }
    Some(
        CloudwatchLogsExportConfiguration::builder()
            .set_enable_log_types((!enable.is_empty()).then_some(enable))
            .set_disable_log_types((!disable.is_empty()).then_some(disable))
            .build(),
    )
}

// ---------------------------------------------------------------------------
// Waits shared by instances and clusters.

/// What the waits need to know of an RDS object they watch.
pub(crate) trait Watched: Sized {
    /// "DB instance", "DB cluster".
    const KIND: &'static str;
    /// The call that reads it, for messages and deadlines.
    const DESCRIBE: &'static str;
    /// Statuses it does not leave by waiting.
    const FAILED: &'static [&'static str];
    fn status(&self) -> &str;
    /// Available, with nothing left to apply.
    fn settled(&self) -> bool;
}

/// Waits until `one` reports the object settled; a failed status ends the
/// wait at once, naming it.
pub(crate) async fn wait_settled<T, F, Fut>(
    deadline: Duration,
    id: &str,
    what: &str,
    one: F,
) -> Result<T, DriverError>
where
    T: Watched,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DriverError>>,
{
    wait::until(
        T::DESCRIBE,
        &format!("{} {id} to {what}", T::KIND),
        deadline,
        || async {
            let Some(o) = one().await? else {
                return Ok(None);
            };
            let status = o.status();
            if T::FAILED.contains(&status) {
                return Err(DriverError::new(
                    fastcart_engine::ErrorKind::Other,
                    T::DESCRIBE,
                    format!("{id}: the {} is {status}", T::KIND),
                ));
            }
            Ok(o.settled().then_some(o))
        },
    )
    .await
}

/// Sends `delete` (again while the object is in use: still creating,
/// backing up, or a cluster whose members are still going), then waits until
/// `one` no longer finds it. Already gone is done.
pub(crate) async fn delete_and_wait<T, O, D, DFut, F, Fut>(
    deadline: Duration,
    id: &str,
    delete: D,
    one: F,
) -> Result<(), DriverError>
where
    T: Watched,
    D: Fn() -> DFut,
    DFut: std::future::Future<Output = Result<O, DriverError>>,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DriverError>>,
{
    let deadline = wait::Deadline::after(deadline);
    match wait::while_in_use(deadline.left(), delete).await {
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    wait::until(
        T::DESCRIBE,
        &format!("{} {id} to be deleted", T::KIND),
        deadline.left(),
        || async { Ok(one().await?.is_none().then_some(())) },
    )
    .await
}

// ---------------------------------------------------------------------------
// RDS tags.

pub(crate) fn rds_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
}

/// RDS's tag calls, by ARN.
pub(crate) struct RdsTags<'a>(pub &'a Clients);

impl crate::tags::TagApi for RdsTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(tag_pairs(out.tag_list())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// AWS::RDS::DBSubnetGroup

pub struct DbSubnetGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

fn subnet_group_arn(ctx: &CloudContext, name: &str) -> String {
    format!(
        "arn:{}:rds:{}:{}:subgrp:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

fn subnet_group_attributes(arn: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("DBSubnetGroupArn".into(), Value::String(arn.into()));
    m
}

impl DbSubnetGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::RDS::DBSubnetGroup")
            .fixed_name("DBSubnetGroupName")
            .required("DBSubnetGroupDescription")
            .required("SubnetIds")
            .kind("SubnetIds", ValueKind::UnorderedList)
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS)
            .attribute("DBSubnetGroupArn")
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::ZERO, Duration::from_secs(600));
        DbSubnetGroup { c, schema }
    }

    /// Every DB subnet group of the region by lowercase name, one
    /// `DescribeDBSubnetGroups` per page. The API takes one name or none (and
    /// fails the call for a missing name), and RDS rejects filters on it, so
    /// one listing answers for any number of groups where per-name calls
    /// would cost one each.
    async fn all(&self) -> Result<HashMap<String, SubnetGroup>, DriverError> {
        let mut groups = HashMap::new();
        let mut pages = self
            .c
            .rds
            .describe_db_subnet_groups()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for g in page.op("DB subnet groups")?.db_subnet_groups() {
                if let Some(name) = g.db_subnet_group_name() {
                    groups.insert(name.to_ascii_lowercase(), g.clone());
                }
            }
        }
        Ok(groups)
    }
}

#[async_trait]
impl Driver for DbSubnetGroup {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.all().await?;
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let Some(g) = groups.get(&h.physical_id.to_ascii_lowercase()) else {
                out.push(None);
                continue;
            };
            let name = g.db_subnet_group_name().unwrap_or_default();
            let mut o = Obs::new()
                .prop(
                    "DBSubnetGroupName",
                    Some(as_given(str_of(&h.properties, "DBSubnetGroupName"), name)),
                )
                .prop("DBSubnetGroupDescription", g.db_subnet_group_description())
                .prop(
                    "SubnetIds",
                    Some(string_list(
                        g.subnets().iter().filter_map(|s| s.subnet_identifier()),
                    )),
                )
                .attr("DBSubnetGroupArn", g.db_subnet_group_arn());
            // Tags cost one ListTagsForResource per group: read them for the
            // groups whose stack sets Tags, the only ones compared.
            if let (true, Some(arn)) = (h.properties.contains_key("Tags"), g.db_subnet_group_arn())
            {
                match crate::tags::read(&self.c, &RdsTags(&self.c), arn, arn).await {
                    Ok(tags) => o = o.prop("Tags", Some(tags_value(tags))),
                    Err(e) if is_gone(&e) => {
                        out.push(None);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            out.push(Some(o.done()));
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        const OP: &str = "rds:CreateDBSubnetGroup";
        let p = req.properties;
        let name = match str_of(p, "DBSubnetGroupName") {
            Some(n) => n.to_ascii_lowercase(),
            None => generated_name(req.logical_id, req.idempotency_token, 255),
        };
        let description = need_str(p, "DBSubnetGroupDescription", OP)?;
        let out = self
            .c
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(description)
            .set_subnet_ids(Some(strs_of(p, "SubnetIds")))
            .set_tags(Some(rds_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &name)
            .await?;
        let arn = out
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
            .map(String::from)
            .unwrap_or_else(|| subnet_group_arn(req.context, &name));
        Ok(Created {
            physical_id: name,
            attributes: subnet_group_attributes(&arn),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        if changed(&req, "DBSubnetGroupDescription") || changed(&req, "SubnetIds") {
            // ModifyDBSubnetGroup always takes the whole subnet list.
            self.c
                .rds
                .modify_db_subnet_group()
                .db_subnet_group_name(name)
                .set_db_subnet_group_description(owned_str(p, "DBSubnetGroupDescription"))
                .set_subnet_ids(Some(strs_of(p, "SubnetIds")))
                .send()
                .call(&self.c, name)
                .await?;
        }
        let arn = subnet_group_arn(req.context, name);
        crate::tags::sync_update(&RdsTags(&self.c), &arn, &req).await?;
        Ok(subnet_group_attributes(&arn))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        // In use until the DB instances in it are gone.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .rds
                .delete_db_subnet_group()
                .db_subnet_group_name(name)
                .send()
                .call(&self.c, name)
                .await
        })
        .await
    }

    /// By its name (a name AWS picked is no key: the group is then found through the database that uses it), which RDS keeps in lower case.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::by_name(self, q, "DBSubnetGroupName", |n| n.to_ascii_lowercase()).await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        // The tagging API does not return DB subnet groups (moto), and RDS
        // rejects tag filters: list the groups, then one ListTagsForResource
        // per group.
        let mut found = Vec::new();
        for (name, g) in self.all().await? {
            let Some(arn) = g.db_subnet_group_arn() else {
                continue;
            };
            let tags = match crate::tags::read(&self.c, &RdsTags(&self.c), arn, arn).await {
                Ok(tags) => tags,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            let pairs = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            if let Some(logical_id) = owned_by(pairs, owner) {
                found.push(Found {
                    logical_id,
                    physical_id: name,
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_fit_the_rules() {
        let n = generated_name("Database", "0123456789abcdef0123", 63);
        assert_eq!(n, "database-0123456789ab");
        let n = generated_name("9Lives", "ABCDEF", 63);
        assert_eq!(n, "r9lives-abcdef");
        let long = "X".repeat(80);
        let n = generated_name(&long, "0123456789abcdef", 40);
        assert_eq!(n.len(), 40);
        assert!(n.starts_with('x') && !n.contains("--"), "{n}");
    }

    #[test]
    fn names_versions_as_given() {
        assert_eq!(as_given(Some("MyGroup"), "mygroup"), "MyGroup");
        assert_eq!(as_given(Some("other"), "mygroup"), "mygroup");
        assert_eq!(as_given(None, "mygroup"), "mygroup");
        assert_eq!(version_as_given(Some("16"), "16.3"), "16");
        assert_eq!(version_as_given(Some("16.3"), "16.3"), "16.3");
        assert_eq!(version_as_given(Some("1"), "16.3"), "16.3");
        assert_eq!(version_as_given(None, "16.3"), "16.3");
    }
}
