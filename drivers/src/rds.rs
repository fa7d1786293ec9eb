//! RDS: `AWS::RDS::DBSubnetGroup` and `AWS::RDS::DBInstance`.
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
    CloudwatchLogsExportConfiguration, DbInstance as Instance, DbSubnetGroup as SubnetGroup,
    Filter, PendingModifiedValues, Tag,
};
use fastcart_engine::{
    CloudContext, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use crate::call::Call;
use crate::dynamic;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{
    all_tags, bool_of, changed, i32_of, need_str, str_of, strs_of, tags_value, Obs, Props,
};
use crate::sdk::Clients;
use crate::tagging::{after_colon, owned_by};
use crate::wait;

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
// RDS tags.

fn rds_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
}

/// RDS's tag calls, by ARN.
struct RdsTags<'a>(&'a Clients);

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

/// DB instances in the tagging API (it does not list DB subnet groups in
/// moto, so their driver lists them itself).
pub const DB_INSTANCE_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "rds:db",
    arn: "rds:db:",
    id: db_name,
};

fn db_name(arn: &str) -> Option<String> {
    after_colon(arn, "db")
}

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

// ---------------------------------------------------------------------------
// AWS::RDS::DBInstance

/// Statuses an instance does not leave by waiting.
const FAILED: &[&str] = &[
    "failed",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "storage-full",
];

pub struct DbInstance {
    c: Arc<Clients>,
    schema: TypeSchema,
}

fn secret_kms_key(p: &Props) -> Option<String> {
    p.get("MasterUserSecret")
        .and_then(|s| s.get("KmsKeyId"))
        .and_then(Value::as_str)
        .map(String::from)
}

/// `Fn::GetAtt` values of an instance.
fn instance_attributes(i: &Instance) -> Map<String, Value> {
    let endpoint = i.endpoint();
    Obs::new()
        .attr("Endpoint.Address", endpoint.and_then(|e| e.address()))
        .attr(
            "Endpoint.Port",
            endpoint.and_then(|e| e.port()).map(|p| p.to_string()),
        )
        .attr("DBInstanceArn", i.db_instance_arn())
        .attr("DbiResourceId", i.dbi_resource_id())
        .attr(
            "MasterUserSecret.SecretArn",
            i.master_user_secret().and_then(|s| s.secret_arn()),
        )
        .done()
        .attributes
}

/// Whether an available instance has nothing left to apply.
fn settled(i: &Instance) -> bool {
    // After a storage change RDS spends hours in storage-optimization while
    // the database serves normally: that counts as done.
    matches!(
        i.db_instance_status(),
        Some("available" | "storage-optimization")
    ) && i
        .pending_modified_values()
        .is_none_or(|p| *p == PendingModifiedValues::builder().build())
        && i.vpc_security_groups()
            .iter()
            .all(|g| g.status().is_none_or(|s| s == "active"))
}

impl DbInstance {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::RDS::DBInstance")
            .guard("PubliclyAccessible", fastcart_engine::Guard::Exposure)
            .guard("StorageEncrypted", fastcart_engine::Guard::Protection)
            .guard("DeletionProtection", fastcart_engine::Guard::Protection)
            .fixed_name("DBInstanceIdentifier")
            .prop("DBInstanceClass")
            .create_only("Engine")
            .prop("EngineVersion")
            .write_only("AllowMajorVersionUpgrade")
            .prop("AllocatedStorage")
            .prop("StorageType")
            .create_only("StorageEncrypted")
            .create_only("KmsKeyId")
            .create_only("DBName")
            .create_only("MasterUsername")
            .secret("MasterUserPassword")
            .prop("ManageMasterUserPassword")
            .prop("MasterUserSecret")
            .create_only("DBSubnetGroupName")
            .kind("VPCSecurityGroups", ValueKind::UnorderedList)
            .prop("PubliclyAccessible")
            .prop("MultiAZ")
            .prop("BackupRetentionPeriod")
            .prop("PreferredBackupWindow")
            .prop("PreferredMaintenanceWindow")
            .kind("EnableCloudwatchLogsExports", ValueKind::UnorderedList)
            .prop("DeletionProtection")
            .prop("Port")
            .prop("CopyTagsToSnapshot")
            .prop("AutoMinorVersionUpgrade")
            .write_only("DeleteAutomatedBackups")
            .kind("Tags", ValueKind::Tags)
            .attribute("Endpoint.Address")
            .attribute("Endpoint.Port")
            .attribute("DBInstanceArn")
            .attribute("DbiResourceId")
            .attribute("MasterUserSecret.SecretArn")
            .typical_duration(Duration::from_secs(600))
            .deadlines(Duration::from_secs(3600), Duration::from_secs(3600));
        DbInstance { c, schema }
    }

    /// The instances among `ids`, by lowercase identifier: one
    /// `DescribeDBInstances` per page for up to 100 ids, through the
    /// `db-instance-id` filter (moto supports it), which leaves out an id
    /// that no longer exists where `DBInstanceIdentifier` would fail the call.
    async fn describe(&self, ids: &[String]) -> Result<HashMap<String, Instance>, DriverError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(100) {
            let mut pages = self
                .c
                .rds
                .describe_db_instances()
                .filters(
                    Filter::builder()
                        .name("db-instance-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for i in page.op(&chunk.join(","))?.db_instances() {
                    if let Some(id) = i.db_instance_identifier() {
                        found.insert(id.to_ascii_lowercase(), i.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    async fn one(&self, id: &str) -> Result<Option<Instance>, DriverError> {
        let id = id.to_ascii_lowercase();
        Ok(self.describe(std::slice::from_ref(&id)).await?.remove(&id))
    }

    /// Waits until the instance is available with nothing pending.
    async fn wait_settled(&self, id: &str, what: &str) -> Result<Instance, DriverError> {
        wait::until(
            "rds:DescribeDBInstances",
            &format!("DB instance {id} to {what}"),
            self.schema.deadlines.ready,
            || async {
                let Some(i) = self.one(id).await? else {
                    return Ok(None);
                };
                let status = i.db_instance_status().unwrap_or_default();
                if FAILED.contains(&status) {
                    return Err(DriverError::new(
                        ErrorKind::Other,
                        "rds:DescribeDBInstances",
                        format!("{id}: the DB instance is {status}"),
                    ));
                }
                Ok(settled(&i).then_some(i))
            },
        )
        .await
    }

    /// An instance in the schema's shape; `given` (the properties last
    /// applied) only decides spellings: names, versions and keys AWS reports
    /// in another form.
    async fn observe(&self, i: &Instance, given: &Props) -> Observed {
        let id = i.db_instance_identifier().unwrap_or_default();
        let master_user_secret = match i.master_user_secret() {
            Some(s) => {
                let mut m = Map::new();
                if let Some(arn) = s.secret_arn() {
                    m.insert("SecretArn".into(), Value::String(arn.into()));
                }
                let key =
                    key_as_given(&self.c, secret_kms_key(given).as_deref(), s.kms_key_id()).await;
                if let Some(key) = key {
                    m.insert("KmsKeyId".into(), Value::String(key));
                }
                Some(Value::Object(m))
            }
            None => None,
        };
        let kms_key = key_as_given(&self.c, str_of(given, "KmsKeyId"), i.kms_key_id()).await;
        let port = i.endpoint().and_then(|e| e.port()).or(i.db_instance_port());
        let mut o = Obs::new()
            .prop(
                "DBInstanceIdentifier",
                Some(as_given(str_of(given, "DBInstanceIdentifier"), id)),
            )
            .prop("DBInstanceClass", i.db_instance_class())
            .prop("Engine", i.engine())
            .prop(
                "EngineVersion",
                i.engine_version()
                    .map(|v| version_as_given(str_of(given, "EngineVersion"), v)),
            )
            .prop(
                "AllocatedStorage",
                i.allocated_storage().map(|n| n.to_string()),
            )
            .prop("StorageType", i.storage_type())
            .prop("StorageEncrypted", i.storage_encrypted())
            .prop("KmsKeyId", kms_key)
            .prop("DBName", i.db_name())
            .prop("MasterUsername", i.master_username())
            .prop(
                "ManageMasterUserPassword",
                Some(i.master_user_secret().is_some()),
            )
            .prop("MasterUserSecret", master_user_secret)
            .prop(
                "DBSubnetGroupName",
                i.db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(|n| as_given(str_of(given, "DBSubnetGroupName"), n)),
            )
            .prop(
                "VPCSecurityGroups",
                Some(string_list(
                    i.vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id()),
                )),
            )
            .prop("PubliclyAccessible", i.publicly_accessible())
            .prop("MultiAZ", i.multi_az())
            .prop("BackupRetentionPeriod", i.backup_retention_period())
            .prop("PreferredBackupWindow", i.preferred_backup_window())
            .prop(
                "PreferredMaintenanceWindow",
                i.preferred_maintenance_window()
                    .map(|w| as_given(str_of(given, "PreferredMaintenanceWindow"), w)),
            )
            .prop(
                "EnableCloudwatchLogsExports",
                Some(string_list(
                    i.enabled_cloudwatch_logs_exports()
                        .iter()
                        .map(String::as_str),
                )),
            )
            .prop("DeletionProtection", i.deletion_protection())
            .prop("Port", port.map(|p| p.to_string()))
            .prop("CopyTagsToSnapshot", i.copy_tags_to_snapshot())
            .prop("AutoMinorVersionUpgrade", i.auto_minor_version_upgrade())
            .prop("Tags", Some(tags_value(tag_pairs(i.tag_list()))))
            .done();
        o.attributes = instance_attributes(i);
        o
    }
}

#[async_trait]
impl Driver for DbInstance {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = handles
            .iter()
            .map(|h| h.physical_id.to_ascii_lowercase())
            .collect();
        let found = self.describe(&ids).await?;
        let mut out = Vec::with_capacity(handles.len());
        for (h, id) in handles.iter().zip(&ids) {
            match found.get(id) {
                // An instance being deleted is as good as gone.
                Some(i) if i.db_instance_status() != Some("deleting") => {
                    out.push(Some(self.observe(i, &h.properties).await));
                }
                _ => out.push(None),
            }
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        const OP: &str = "rds:CreateDBInstance";
        let p = req.properties;
        let id = match str_of(p, "DBInstanceIdentifier") {
            Some(n) => n.to_ascii_lowercase(),
            None => generated_name(req.logical_id, req.idempotency_token, 63),
        };
        let password = match str_of(p, "MasterUserPassword") {
            Some(v) => Some(dynamic::resolve(&self.c, v, OP).await?),
            None => None,
        };
        self.c
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class(need_str(p, "DBInstanceClass", OP)?)
            .engine(need_str(p, "Engine", OP)?)
            .set_engine_version(owned_str(p, "EngineVersion"))
            .set_allocated_storage(i32_of(p, "AllocatedStorage"))
            .set_storage_type(owned_str(p, "StorageType"))
            .set_storage_encrypted(bool_of(p, "StorageEncrypted"))
            .set_kms_key_id(owned_str(p, "KmsKeyId"))
            .set_db_name(owned_str(p, "DBName"))
            .set_master_username(owned_str(p, "MasterUsername"))
            .set_master_user_password(password)
            .set_manage_master_user_password(bool_of(p, "ManageMasterUserPassword"))
            .set_master_user_secret_kms_key_id(secret_kms_key(p))
            .set_db_subnet_group_name(owned_str(p, "DBSubnetGroupName"))
            .set_vpc_security_group_ids(list_if_set(p, "VPCSecurityGroups"))
            .set_publicly_accessible(bool_of(p, "PubliclyAccessible"))
            .set_multi_az(bool_of(p, "MultiAZ"))
            .set_backup_retention_period(i32_of(p, "BackupRetentionPeriod"))
            .set_preferred_backup_window(owned_str(p, "PreferredBackupWindow"))
            .set_preferred_maintenance_window(owned_str(p, "PreferredMaintenanceWindow"))
            .set_enable_cloudwatch_logs_exports(list_if_set(p, "EnableCloudwatchLogsExports"))
            .set_deletion_protection(bool_of(p, "DeletionProtection"))
            .set_port(i32_of(p, "Port"))
            .set_copy_tags_to_snapshot(bool_of(p, "CopyTagsToSnapshot"))
            .set_auto_minor_version_upgrade(bool_of(p, "AutoMinorVersionUpgrade"))
            .set_tags(Some(rds_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &id)
            .await?;
        let i = self.wait_settled(&id, "become available").await?;
        Ok(Created {
            physical_id: id,
            attributes: instance_attributes(&i),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        const OP: &str = "rds:ModifyDBInstance";
        let id = req.physical_id;
        let p = req.properties;
        let Some(now) = self.one(id).await? else {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                OP,
                format!("{id}: the DB instance does not exist"),
            ));
        };
        let mut call = self
            .c
            .rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .apply_immediately(true);
        let mut any = false;
        let text = |name: &str| {
            if changed(&req, name) {
                owned_str(p, name)
            } else {
                None
            }
        };
        let flag = |name: &str| {
            if changed(&req, name) {
                bool_of(p, name)
            } else {
                None
            }
        };
        let number = |name: &str| {
            if changed(&req, name) {
                i32_of(p, name)
            } else {
                None
            }
        };
        macro_rules! set {
            ($value:expr, $setter:ident) => {
                if let Some(v) = $value {
                    call = call.$setter(v);
                    any = true;
                }
            };
        }
        set!(text("DBInstanceClass"), db_instance_class);
        if let Some(v) = text("EngineVersion") {
            call = call
                .engine_version(v)
                .set_allow_major_version_upgrade(bool_of(p, "AllowMajorVersionUpgrade"));
            any = true;
        }
        set!(number("AllocatedStorage"), allocated_storage);
        set!(text("StorageType"), storage_type);
        set!(flag("PubliclyAccessible"), publicly_accessible);
        set!(flag("MultiAZ"), multi_az);
        set!(number("BackupRetentionPeriod"), backup_retention_period);
        set!(text("PreferredBackupWindow"), preferred_backup_window);
        set!(
            text("PreferredMaintenanceWindow"),
            preferred_maintenance_window
        );
        set!(flag("DeletionProtection"), deletion_protection);
        set!(number("Port"), db_port_number);
        set!(flag("CopyTagsToSnapshot"), copy_tags_to_snapshot);
        set!(flag("AutoMinorVersionUpgrade"), auto_minor_version_upgrade);
        if changed(&req, "VPCSecurityGroups") {
            call = call.set_vpc_security_group_ids(Some(strs_of(p, "VPCSecurityGroups")));
            any = true;
        }
        if changed(&req, "EnableCloudwatchLogsExports") {
            // The change as AWS takes it: log types to turn on and off
            // against what the instance exports now.
            let want = strs_of(p, "EnableCloudwatchLogsExports");
            let have = now.enabled_cloudwatch_logs_exports();
            let enable: Vec<String> = want
                .iter()
                .filter(|w| !have.iter().any(|h| h == *w))
                .cloned()
                .collect();
            let disable: Vec<String> = have
                .iter()
                .filter(|h| !want.iter().any(|w| w == *h))
                .cloned()
                .collect();
            if !enable.is_empty() || !disable.is_empty() {
                call = call.cloudwatch_logs_export_configuration(
                    CloudwatchLogsExportConfiguration::builder()
                        .set_enable_log_types((!enable.is_empty()).then_some(enable))
                        .set_disable_log_types((!disable.is_empty()).then_some(disable))
                        .build(),
                );
                any = true;
            }
        }
        // The master password: managed by RDS in Secrets Manager, or given.
        let managed_now = now.master_user_secret().is_some();
        let manage = bool_of(p, "ManageMasterUserPassword").unwrap_or(false);
        if changed(&req, "ManageMasterUserPassword") && manage != managed_now {
            call = call.manage_master_user_password(manage);
            if manage {
                call = call.set_master_user_secret_kms_key_id(secret_kms_key(p));
            }
            any = true;
        } else if changed(&req, "MasterUserSecret") && managed_now {
            return Err(invalid(
                OP,
                format!(
                    "{id}: AWS cannot change the KMS key of a master user secret it already \
                     manages; turn ManageMasterUserPassword off and on again in two applies, \
                     or replace the instance"
                ),
            ));
        }
        // Turning management off needs the password to use from then on.
        let turning_off = changed(&req, "ManageMasterUserPassword") && !manage && managed_now;
        if !manage && (changed(&req, "MasterUserPassword") || turning_off) {
            if let Some(v) = str_of(p, "MasterUserPassword") {
                call = call.master_user_password(dynamic::resolve(&self.c, v, OP).await?);
                any = true;
            }
        }
        let current = if any {
            call.send().call(&self.c, id).await?;
            self.wait_settled(id, "apply the changes").await?
        } else {
            now
        };
        let arn = current.db_instance_arn().unwrap_or_default().to_string();
        crate::tags::sync_update(&RdsTags(&self.c), &arn, &req).await?;
        Ok(instance_attributes(&current))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        let keep_backups = bool_of(&h.properties, "DeleteAutomatedBackups") == Some(false);
        // An instance still creating, modifying or backing up refuses to be
        // deleted for a while; one already deleting refuses until it is gone.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        let r = wait::while_in_use(deadline.left(), || async {
            self.c
                .rds
                .delete_db_instance()
                .db_instance_identifier(id)
                .skip_final_snapshot(true)
                .delete_automated_backups(!keep_backups)
                .send()
                .call(&self.c, id)
                .await
        })
        .await;
        match r {
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        wait::until(
            "rds:DescribeDBInstances",
            &format!("DB instance {id} to be deleted"),
            deadline.left(),
            || async { Ok(self.one(id).await?.is_none().then_some(())) },
        )
        .await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let i = self
            .wait_settled(&h.physical_id, "become available")
            .await?;
        Ok(Some(instance_attributes(&i)))
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &DB_INSTANCE_TAGGED).await
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
