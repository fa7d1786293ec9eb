//! `AWS::RDS::DBCluster`: an Aurora cluster. Its instances are
//! `AWS::RDS::DBInstance`s naming it in `DBClusterIdentifier`; the first one
//! made is the writer.
//!
//! AWS stores the identifier lowercased: the physical id is the lowercase
//! identifier, read back in the stack's spelling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{ClusterPendingModifiedValues, DbCluster as Cluster};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use super::*;
use crate::call::Call;
use crate::props::{
    bool_of, changed, i32_of, if_changed, need_str, str_of, strs_of, tags_value, Obs, Props,
};
use crate::sdk::Clients;
use crate::tags::{self, Limited};

/// DB clusters in the tagging API.
pub const DB_CLUSTER_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "rds:cluster",
    arn: "rds:cluster:",
    id: cluster_name,
};

fn cluster_name(arn: &str) -> Option<String> {
    crate::tagging::after_colon(arn, "cluster")
}

pub struct DbCluster {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// `Fn::GetAtt` values of a cluster.
fn cluster_attributes(cl: &Cluster) -> Map<String, Value> {
    Obs::new()
        .attr("Endpoint.Address", cl.endpoint())
        .attr("Endpoint.Port", cl.port().map(|p| p.to_string()))
        .attr("ReadEndpoint.Address", cl.reader_endpoint())
        .attr("DBClusterArn", cl.db_cluster_arn())
        .attr("DBClusterResourceId", cl.db_cluster_resource_id())
        .attr(
            "MasterUserSecret.SecretArn",
            cl.master_user_secret().and_then(|s| s.secret_arn()),
        )
        .done()
        .attributes
}

impl Watched for Cluster {
    const KIND: &'static str = "DB cluster";
    const DESCRIBE: &'static str = "rds:DescribeDBClusters";
    const FAILED: &'static [&'static str] = &[
        "failed",
        "inaccessible-encryption-credentials",
        "incompatible-network",
        "incompatible-parameters",
        "incompatible-restore",
    ];

    fn status(&self) -> &str {
        Cluster::status(self).unwrap_or_default()
    }

    fn settled(&self) -> bool {
        Cluster::status(self) == Some("available")
            && self
                .pending_modified_values()
                .is_none_or(|p| *p == ClusterPendingModifiedValues::builder().build())
            && self
                .vpc_security_groups()
                .iter()
                .all(|g| g.status().is_none_or(|s| s == "active"))
    }
}

impl DbCluster {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::RDS::DBCluster")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .range("BackupRetentionPeriod", Some(1.0), Some(35.0))
            .length("DBClusterIdentifier", 1, 63)
            .pattern(
                "DBClusterIdentifier",
                "^[a-zA-Z]{1}(?:-?[a-zA-Z0-9]){0,62}$",
            )
            .min_length("MasterUsername", 1)
            .pattern("MasterUsername", "^[a-zA-Z]{1}[a-zA-Z0-9_]*$")
            .guard("StorageEncrypted", fastcart_engine::Guard::Protection)
            .guard("DeletionProtection", fastcart_engine::Guard::Protection)
            .fixed_name("DBClusterIdentifier")
            .required("Engine")
            // Moving a cluster to another engine is a migration, not an
            // update: create-only here (AWS's schema allows some upgrades).
            .create_only("Engine")
            .prop("EngineVersion")
            .create_only("DatabaseName")
            .create_only("MasterUsername")
            .secret("MasterUserPassword")
            .prop("ManageMasterUserPassword")
            .prop("MasterUserSecret")
            .create_only("StorageEncrypted")
            .create_only("KmsKeyId")
            .create_only("DBSubnetGroupName")
            .kind("VpcSecurityGroupIds", ValueKind::UnorderedList)
            .prop("Port")
            .prop("BackupRetentionPeriod")
            .prop("PreferredBackupWindow")
            .prop("PreferredMaintenanceWindow")
            .kind("EnableCloudwatchLogsExports", ValueKind::UnorderedList)
            .prop("DeletionProtection")
            .prop("CopyTagsToSnapshot")
            .write_only("DeleteAutomatedBackups")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS)
            .attribute("Endpoint.Address")
            .attribute("Endpoint.Port")
            .attribute("ReadEndpoint.Address")
            .attribute("DBClusterArn")
            .attribute("DBClusterResourceId")
            .attribute("MasterUserSecret.SecretArn")
            .typical_duration(Duration::from_secs(300))
            .deadlines(Duration::from_secs(3600), Duration::from_secs(3600));
        DbCluster { c, schema }
    }

    /// The clusters among `ids`, by lowercase identifier: one
    /// `DescribeDBClusters` per page for up to 100 ids, through the
    /// `db-cluster-id` filter.
    async fn describe(&self, ids: &[String]) -> Result<HashMap<String, Cluster>, DriverError> {
        by_ids!(
            self.c,
            ids,
            describe_db_clusters,
            "db-cluster-id",
            db_clusters,
            db_cluster_identifier
        )
        .await
    }

    async fn one(&self, id: &str) -> Result<Option<Cluster>, DriverError> {
        let id = id.to_ascii_lowercase();
        Ok(self.describe(std::slice::from_ref(&id)).await?.remove(&id))
    }

    /// Waits until the cluster is available with nothing pending.
    async fn wait_settled(&self, id: &str, what: &str) -> Result<Cluster, DriverError> {
        wait_settled(self.schema.deadlines.ready, id, what, || self.one(id)).await
    }

    /// A cluster in the schema's shape; `given` (the properties last applied)
    /// only decides spellings.
    async fn observe(&self, cl: &Cluster, given: &Props) -> Observed {
        let id = cl.db_cluster_identifier().unwrap_or_default();
        let master_user_secret = master_secret_value(&self.c, given, cl.master_user_secret()).await;
        let kms_key = key_as_given(&self.c, str_of(given, "KmsKeyId"), cl.kms_key_id()).await;
        let mut o = Obs::new()
            .prop(
                "DBClusterIdentifier",
                Some(as_given(str_of(given, "DBClusterIdentifier"), id)),
            )
            .prop("Engine", cl.engine())
            .prop(
                "EngineVersion",
                cl.engine_version()
                    .map(|v| version_as_given(str_of(given, "EngineVersion"), v)),
            )
            .prop("DatabaseName", cl.database_name())
            .prop("MasterUsername", cl.master_username())
            .prop(
                "ManageMasterUserPassword",
                Some(cl.master_user_secret().is_some()),
            )
            .prop("MasterUserSecret", master_user_secret)
            .prop("StorageEncrypted", cl.storage_encrypted())
            .prop("KmsKeyId", kms_key)
            .prop(
                "DBSubnetGroupName",
                cl.db_subnet_group()
                    .map(|n| as_given(str_of(given, "DBSubnetGroupName"), n)),
            )
            .prop(
                "VpcSecurityGroupIds",
                Some(string_list(
                    cl.vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id()),
                )),
            )
            .prop("Port", cl.port())
            .prop("BackupRetentionPeriod", cl.backup_retention_period())
            .prop("PreferredBackupWindow", cl.preferred_backup_window())
            .prop(
                "PreferredMaintenanceWindow",
                cl.preferred_maintenance_window()
                    .map(|w| as_given(str_of(given, "PreferredMaintenanceWindow"), w)),
            )
            .prop(
                "EnableCloudwatchLogsExports",
                Some(string_list(
                    cl.enabled_cloudwatch_logs_exports()
                        .iter()
                        .map(String::as_str),
                )),
            )
            .prop("DeletionProtection", cl.deletion_protection())
            .prop("CopyTagsToSnapshot", cl.copy_tags_to_snapshot())
            .prop("Tags", Some(tags_value(tag_pairs(cl.tag_list()))))
            .done();
        o.attributes = cluster_attributes(cl);
        o
    }
}

#[async_trait]
impl Driver for DbCluster {
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
                // A cluster being deleted is as good as gone.
                Some(cl) if Cluster::status(cl) != Some("deleting") => {
                    out.push(Some(self.observe(cl, &h.properties).await));
                }
                _ => out.push(None),
            }
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        const OP: &str = "rds:CreateDBCluster";
        let p = req.properties;
        let id = match str_of(p, "DBClusterIdentifier") {
            Some(n) => n.to_ascii_lowercase(),
            None => generated_name(req.logical_id, req.idempotency_token, 63),
        };
        let password = match str_of(p, "MasterUserPassword") {
            Some(v) => Some(crate::dynamic::resolve(&self.c, v, OP).await?),
            None => None,
        };
        self.c
            .rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine(need_str(p, "Engine", OP)?)
            .set_engine_version(owned_str(p, "EngineVersion"))
            .set_database_name(owned_str(p, "DatabaseName"))
            .set_master_username(owned_str(p, "MasterUsername"))
            .set_master_user_password(password)
            .set_manage_master_user_password(bool_of(p, "ManageMasterUserPassword"))
            .set_master_user_secret_kms_key_id(secret_kms_key(p))
            .set_storage_encrypted(bool_of(p, "StorageEncrypted"))
            .set_kms_key_id(owned_str(p, "KmsKeyId"))
            .set_db_subnet_group_name(owned_str(p, "DBSubnetGroupName"))
            .set_vpc_security_group_ids(list_if_set(p, "VpcSecurityGroupIds"))
            .set_port(i32_of(p, "Port"))
            .set_backup_retention_period(i32_of(p, "BackupRetentionPeriod"))
            .set_preferred_backup_window(owned_str(p, "PreferredBackupWindow"))
            .set_preferred_maintenance_window(owned_str(p, "PreferredMaintenanceWindow"))
            .set_enable_cloudwatch_logs_exports(list_if_set(p, "EnableCloudwatchLogsExports"))
            .set_deletion_protection(bool_of(p, "DeletionProtection"))
            .set_copy_tags_to_snapshot(bool_of(p, "CopyTagsToSnapshot"))
            .set_tags(Some(rds_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &id)
            .await?;
        let cl = self.wait_settled(&id, "become available").await?;
        Ok(Created {
            physical_id: id,
            attributes: cluster_attributes(&cl),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        const OP: &str = "rds:ModifyDBCluster";
        let id = req.physical_id;
        let p = req.properties;
        let Some(now) = self.one(id).await? else {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                OP,
                format!("{id}: the DB cluster does not exist"),
            ));
        };
        let is = |name: &str| changed(&req, name);
        let text = |name: &str| if_changed(&req, name, owned_str);
        let flag = |name: &str| if_changed(&req, name, bool_of);
        let number = |name: &str| if_changed(&req, name, i32_of);
        let logs = if is("EnableCloudwatchLogsExports") {
            let want = strs_of(p, "EnableCloudwatchLogsExports");
            logs_export_change(&want, now.enabled_cloudwatch_logs_exports())
        } else {
            None
        };
        let password = password_change(
            &self.c,
            &req,
            now.master_user_secret().is_some(),
            OP,
            "cluster",
        )
        .await?;
        let security_groups = is("VpcSecurityGroupIds").then(|| strs_of(p, "VpcSecurityGroupIds"));
        let (version, port, retention) = (
            text("EngineVersion"),
            number("Port"),
            number("BackupRetentionPeriod"),
        );
        let (backup_window, maintenance_window) = (
            text("PreferredBackupWindow"),
            text("PreferredMaintenanceWindow"),
        );
        let (protection, copy_tags) = (flag("DeletionProtection"), flag("CopyTagsToSnapshot"));
        let any = version.is_some()
            || port.is_some()
            || retention.is_some()
            || backup_window.is_some()
            || maintenance_window.is_some()
            || protection.is_some()
            || copy_tags.is_some()
            || security_groups.is_some()
            || logs.is_some()
            || !password.is_empty();
        let call = self
            .c
            .rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .apply_immediately(true)
            .set_engine_version(version)
            .set_port(port)
            .set_backup_retention_period(retention)
            .set_preferred_backup_window(backup_window)
            .set_preferred_maintenance_window(maintenance_window)
            .set_deletion_protection(protection)
            .set_copy_tags_to_snapshot(copy_tags)
            .set_vpc_security_group_ids(security_groups)
            .set_cloudwatch_logs_export_configuration(logs)
            .set_manage_master_user_password(password.manage)
            .set_master_user_secret_kms_key_id(password.secret_key)
            .set_master_user_password(password.password);
        let current = if any {
            call.send().call(&self.c, id).await?;
            self.wait_settled(id, "apply the changes").await?
        } else {
            now
        };
        let arn = current.db_cluster_arn().unwrap_or_default().to_string();
        crate::tags::sync_update(&RdsTags(&self.c), &arn, &req).await?;
        Ok(cluster_attributes(&current))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        let keep_backups = bool_of(&h.properties, "DeleteAutomatedBackups") == Some(false);
        // A cluster refuses while its instances are still being deleted
        // (InvalidDBClusterStateFault), and while it is still creating or
        // modifying.
        delete_and_wait(
            self.schema.deadlines.gone,
            id,
            || async {
                self.c
                    .rds
                    .delete_db_cluster()
                    .db_cluster_identifier(id)
                    .skip_final_snapshot(true)
                    .delete_automated_backups(!keep_backups)
                    .send()
                    .call(&self.c, id)
                    .await
            },
            || self.one(id),
        )
        .await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let cl = self
            .wait_settled(&h.physical_id, "become available")
            .await?;
        Ok(Some(cluster_attributes(&cl)))
    }

    /// By its identifier, which RDS keeps in lower case.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::by_name(self, q, "DBClusterIdentifier", |n| n.to_ascii_lowercase()).await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &DB_CLUSTER_TAGGED).await
    }
}
