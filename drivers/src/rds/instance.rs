//! RDS: `AWS::RDS::DBInstance` (alone, or a member of an Aurora cluster).
//! The shared helpers and tags are in the parent module.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance as Instance, PendingModifiedValues};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::*;
use crate::call::Call;
use crate::dynamic;
use crate::props::{
    bool_of, changed, i32_of, if_changed, need_str, str_of, strs_of, tags_value, Obs, Props,
};
use crate::sdk::Clients;
use crate::tags::{self, Limited};

/// DB instances in the tagging API.
pub const DB_INSTANCE_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "rds:db",
    arn: "rds:db:",
    id: db_name,
};

fn db_name(arn: &str) -> Option<String> {
    crate::tagging::after_colon(arn, "db")
}

pub struct DbInstance {
    c: Arc<Clients>,
    schema: TypeSchema,
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

impl Watched for Instance {
    const KIND: &'static str = "DB instance";
    const DESCRIBE: &'static str = "rds:DescribeDBInstances";
    const FAILED: &'static [&'static str] = &[
        "failed",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-parameters",
        "incompatible-restore",
        "inaccessible-encryption-credentials",
        "storage-full",
    ];

    fn status(&self) -> &str {
        self.db_instance_status().unwrap_or_default()
    }

    fn settled(&self) -> bool {
        // After a storage change RDS spends hours in storage-optimization
        // while the database serves normally: that counts as done.
        matches!(
            self.db_instance_status(),
            Some("available" | "storage-optimization")
        ) && self
            .pending_modified_values()
            .is_none_or(|p| *p == PendingModifiedValues::builder().build())
            && self
                .vpc_security_groups()
                .iter()
                .all(|g| g.status().is_none_or(|s| s == "active"))
    }
}

impl DbInstance {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::RDS::DBInstance")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .pattern("AllocatedStorage", "^[0-9]*$")
            .range("BackupRetentionPeriod", Some(0.0), None)
            .length("DBInstanceIdentifier", 1, 63)
            .pattern(
                "DBInstanceIdentifier",
                "^$|^[a-zA-Z]{1}(?:-?[a-zA-Z0-9]){0,62}$",
            )
            .length("MasterUsername", 1, 128)
            .pattern("MasterUsername", "^[a-zA-Z][a-zA-Z0-9_]{0,127}$")
            .pattern("Port", r#"^\d*$"#)
            .guard("PubliclyAccessible", fastcart_engine::Guard::Exposure)
            .guard("StorageEncrypted", fastcart_engine::Guard::Protection)
            .guard("DeletionProtection", fastcart_engine::Guard::Protection)
            .fixed_name("DBInstanceIdentifier")
            .create_only("DBClusterIdentifier")
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
            .tag_limits(&tags::LIMITS)
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
        by_ids!(
            self.c,
            ids,
            describe_db_instances,
            "db-instance-id",
            db_instances,
            db_instance_identifier
        )
        .await
    }

    async fn one(&self, id: &str) -> Result<Option<Instance>, DriverError> {
        let id = id.to_ascii_lowercase();
        Ok(self.describe(std::slice::from_ref(&id)).await?.remove(&id))
    }

    /// Waits until the instance is available with nothing pending.
    async fn wait_settled(&self, id: &str, what: &str) -> Result<Instance, DriverError> {
        wait_settled(self.schema.deadlines.ready, id, what, || self.one(id)).await
    }

    /// An instance in the schema's shape; `given` (the properties last
    /// applied) only decides spellings: names, versions and keys AWS reports
    /// in another form.
    async fn observe(&self, i: &Instance, given: &Props) -> Observed {
        let id = i.db_instance_identifier().unwrap_or_default();
        let master_user_secret = master_secret_value(&self.c, given, i.master_user_secret()).await;
        let kms_key = key_as_given(&self.c, str_of(given, "KmsKeyId"), i.kms_key_id()).await;
        let port = i.endpoint().and_then(|e| e.port()).or(i.db_instance_port());
        let mut o = Obs::new()
            .prop(
                "DBInstanceIdentifier",
                Some(as_given(str_of(given, "DBInstanceIdentifier"), id)),
            )
            .prop(
                "DBClusterIdentifier",
                i.db_cluster_identifier()
                    .map(|n| as_given(str_of(given, "DBClusterIdentifier"), n)),
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
            .set_db_cluster_identifier(owned_str(p, "DBClusterIdentifier"))
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
        let text = |name: &str| if_changed(&req, name, owned_str);
        let flag = |name: &str| if_changed(&req, name, bool_of);
        let number = |name: &str| if_changed(&req, name, i32_of);
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
            let want = strs_of(p, "EnableCloudwatchLogsExports");
            if let Some(c) = logs_export_change(&want, now.enabled_cloudwatch_logs_exports()) {
                call = call.cloudwatch_logs_export_configuration(c);
                any = true;
            }
        }
        let password = password_change(
            &self.c,
            &req,
            now.master_user_secret().is_some(),
            OP,
            "instance",
        )
        .await?;
        if !password.is_empty() {
            call = call
                .set_manage_master_user_password(password.manage)
                .set_master_user_secret_kms_key_id(password.secret_key)
                .set_master_user_password(password.password);
            any = true;
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
        // A cluster's member has neither snapshots nor backups of its own:
        // they are the cluster's, and the call takes no word about them.
        let alone = !h.properties.contains_key("DBClusterIdentifier");
        // An instance still creating, modifying or backing up refuses to be
        // deleted for a while; one already deleting refuses until it is gone.
        delete_and_wait(
            self.schema.deadlines.gone,
            id,
            || async {
                self.c
                    .rds
                    .delete_db_instance()
                    .db_instance_identifier(id)
                    .set_skip_final_snapshot(alone.then_some(true))
                    .set_delete_automated_backups(alone.then_some(!keep_backups))
                    .send()
                    .call(&self.c, id)
                    .await
            },
            || self.one(id),
        )
        .await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let i = self
            .wait_settled(&h.physical_id, "become available")
            .await?;
        Ok(Some(instance_attributes(&i)))
    }

    /// By its identifier, which RDS keeps in lower case.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::by_name(self, q, "DBInstanceIdentifier", |n| n.to_ascii_lowercase()).await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &DB_INSTANCE_TAGGED).await
    }
}
