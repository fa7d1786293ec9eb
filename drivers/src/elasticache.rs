//! ElastiCache: `AWS::ElastiCache::SubnetGroup` and
//! `AWS::ElastiCache::ReplicationGroup`.
//!
//! AWS stores subnet group names and replication group ids lowercased: the
//! drivers create them lowercased (the physical id is the lowercase name) and
//! read them back in the stack's spelling when it names the same thing.
//!
//! Neither `DescribeCacheSubnetGroups` nor `DescribeReplicationGroups` takes a
//! list of names: reads list every group of the region, one call per page,
//! and match here, which answers for any number of resources in one call
//! where per-name calls would cost one each (and fail for a missing name).
//!
//! A replication group's `SecurityGroupIds`, `CacheSubnetGroupName`,
//! `EngineVersion`, `CacheParameterGroupName` and
//! `PreferredMaintenanceWindow` are write-only, as in AWS's own schema: `DescribeReplicationGroups` does not return them (AWS
//! keeps them on the member clusters, which moto does not even create), so
//! they are compared with what was last applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticache::types::{
    AuthTokenUpdateStrategyType, CacheSubnetGroup as SubnetGroup, ReplicationGroup as Group, Tag,
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
    all_tags, bool_of, changed, i32_of, if_changed, need_str, str_of, strs_of, tags_value, Obs,
    Props,
};
use crate::rds::{as_given, generated_name, key_as_given, list_if_set, owned_str, string_list};
use crate::sdk::Clients;
use crate::tagging::after_colon;
use crate::wait;

fn ec_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn tags_of(c: &Clients, arn: &str) -> Result<Value, DriverError> {
    Ok(tags_value(
        crate::tags::read(c, &EcTags(c), arn, arn).await?,
    ))
}

/// ElastiCache's tag calls, by ARN.
struct EcTags<'a>(&'a Clients);

impl crate::tags::TagApi for EcTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .elasticache
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .elasticache
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
            .elasticache
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

fn arn(ctx: &CloudContext, kind: &str, name: &str) -> String {
    format!(
        "arn:{}:elasticache:{}:{}:{kind}:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

// ---------------------------------------------------------------------------
// AWS::ElastiCache::SubnetGroup

/// Subnet and replication groups in the tagging API. moto answers only for
/// the plain service filter; the ARN tells the two apart.
pub const SUBNET_GROUP_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "elasticache",
    arn: "elasticache:subnetgroup:",
    id: subnet_group_name,
};
pub const REPLICATION_GROUP_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "elasticache",
    arn: "elasticache:replicationgroup:",
    id: replication_group_name,
};

fn subnet_group_name(arn: &str) -> Option<String> {
    after_colon(arn, "subnetgroup").map(|n| n.to_ascii_lowercase())
}

fn replication_group_name(arn: &str) -> Option<String> {
    after_colon(arn, "replicationgroup").map(|n| n.to_ascii_lowercase())
}

pub struct CacheSubnetGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl CacheSubnetGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ElastiCache::SubnetGroup")
            .fixed_name("CacheSubnetGroupName")
            .required("Description")
            .required("SubnetIds")
            .kind("SubnetIds", ValueKind::UnorderedList)
            .kind("Tags", ValueKind::Tags)
            .typical_duration(Duration::from_secs(2))
            .deadlines(Duration::ZERO, Duration::from_secs(1800));
        CacheSubnetGroup { c, schema }
    }

    /// Every cache subnet group of the region by lowercase name: one
    /// `DescribeCacheSubnetGroups` per page (see the module comment).
    async fn all(&self) -> Result<HashMap<String, SubnetGroup>, DriverError> {
        let mut groups = HashMap::new();
        let mut pages = self
            .c
            .elasticache
            .describe_cache_subnet_groups()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for g in page.op("cache subnet groups")?.cache_subnet_groups() {
                if let Some(name) = g.cache_subnet_group_name() {
                    groups.insert(name.to_ascii_lowercase(), g.clone());
                }
            }
        }
        Ok(groups)
    }
}

#[async_trait]
impl Driver for CacheSubnetGroup {
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
            let name = g.cache_subnet_group_name().unwrap_or_default();
            let mut o = Obs::new()
                .prop(
                    "CacheSubnetGroupName",
                    Some(as_given(
                        str_of(&h.properties, "CacheSubnetGroupName"),
                        name,
                    )),
                )
                .prop("Description", g.cache_subnet_group_description())
                .prop(
                    "SubnetIds",
                    Some(string_list(
                        g.subnets().iter().filter_map(|s| s.subnet_identifier()),
                    )),
                );
            // Tags cost one ListTagsForResource per group: read them for the
            // groups whose stack sets Tags, the only ones compared.
            if let (true, Some(arn)) = (h.properties.contains_key("Tags"), g.arn()) {
                match tags_of(&self.c, arn).await {
                    Ok(tags) => o = o.prop("Tags", Some(tags)),
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
        const OP: &str = "elasticache:CreateCacheSubnetGroup";
        let p = req.properties;
        let name = match str_of(p, "CacheSubnetGroupName") {
            Some(n) => n.to_ascii_lowercase(),
            None => generated_name(req.logical_id, req.idempotency_token, 255),
        };
        self.c
            .elasticache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&name)
            .cache_subnet_group_description(need_str(p, "Description", OP)?)
            .set_subnet_ids(Some(strs_of(p, "SubnetIds")))
            .set_tags(Some(ec_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &name)
            .await?;
        Ok(Created {
            physical_id: name,
            attributes: Map::new(),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        if changed(&req, "Description") || changed(&req, "SubnetIds") {
            self.c
                .elasticache
                .modify_cache_subnet_group()
                .cache_subnet_group_name(name)
                .set_cache_subnet_group_description(owned_str(p, "Description"))
                .set_subnet_ids(Some(strs_of(p, "SubnetIds")))
                .send()
                .call(&self.c, name)
                .await?;
        }
        crate::tags::sync_update(
            &EcTags(&self.c),
            &arn(req.context, "subnetgroup", name),
            &req,
        )
        .await?;
        Ok(Map::new())
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        // In use until the replication groups in it are gone, which takes
        // minutes after their deletion starts.
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .elasticache
                .delete_cache_subnet_group()
                .cache_subnet_group_name(name)
                .send()
                .call(&self.c, name)
                .await
        })
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &SUBNET_GROUP_TAGGED).await
    }
}

// ---------------------------------------------------------------------------
// AWS::ElastiCache::ReplicationGroup

pub struct ReplicationGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// `Fn::GetAtt` values: the primary and reader endpoints of a group without
/// cluster mode, the configuration endpoint of one with it.
fn group_attributes(g: &Group) -> Map<String, Value> {
    let first = g.node_groups().first();
    let primary = first.and_then(|n| n.primary_endpoint());
    let reader = first.and_then(|n| n.reader_endpoint());
    let config = g.configuration_endpoint();
    Obs::new()
        .attr("PrimaryEndPoint.Address", primary.and_then(|e| e.address()))
        .attr(
            "PrimaryEndPoint.Port",
            primary.and_then(|e| e.port()).map(|p| p.to_string()),
        )
        .attr("ReaderEndPoint.Address", reader.and_then(|e| e.address()))
        .attr(
            "ReaderEndPoint.Port",
            reader.and_then(|e| e.port()).map(|p| p.to_string()),
        )
        .attr(
            "ConfigurationEndPoint.Address",
            config.and_then(|e| e.address()),
        )
        .attr(
            "ConfigurationEndPoint.Port",
            config.and_then(|e| e.port()).map(|p| p.to_string()),
        )
        .done()
        .attributes
}

/// Replicas per node group: the members of the first beside its primary.
fn replicas(g: &Group) -> Option<i32> {
    g.node_groups()
        .first()
        .map(|n| n.node_group_members().len().saturating_sub(1) as i32)
}

impl ReplicationGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ElastiCache::ReplicationGroup")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .range("NumCacheClusters", Some(1.0), Some(6.0))
            .range("ReplicasPerNodeGroup", Some(0.0), Some(5.0))
            .guard(
                "AtRestEncryptionEnabled",
                fastcart_engine::Guard::Protection,
            )
            .guard(
                "TransitEncryptionEnabled",
                fastcart_engine::Guard::Protection,
            )
            .fixed_name("ReplicationGroupId")
            .required("ReplicationGroupDescription")
            .prop("Engine")
            .write_only("EngineVersion")
            // Write-only in AWS's schema: the group reports its members'
            // parameter groups, not the one it was given.
            .write_only("CacheParameterGroupName")
            .prop("CacheNodeType")
            .prop("NumCacheClusters")
            .prop("ReplicasPerNodeGroup")
            .prop("AutomaticFailoverEnabled")
            .prop("MultiAZEnabled")
            .create_only("CacheSubnetGroupName")
            .write_only("CacheSubnetGroupName")
            .write_only("SecurityGroupIds")
            .kind("SecurityGroupIds", ValueKind::UnorderedList)
            .create_only("AtRestEncryptionEnabled")
            .prop("TransitEncryptionEnabled")
            .create_only("KmsKeyId")
            // AWS's schema calls it write-only: compared with what was applied.
            .write_only("KmsKeyId")
            .secret("AuthToken")
            .create_only("Port")
            .prop("SnapshotRetentionLimit")
            .prop("SnapshotWindow")
            .write_only("PreferredMaintenanceWindow")
            .prop("AutoMinorVersionUpgrade")
            .kind("Tags", ValueKind::Tags)
            .attribute("PrimaryEndPoint.Address")
            .attribute("PrimaryEndPoint.Port")
            .attribute("ReaderEndPoint.Address")
            .attribute("ReaderEndPoint.Port")
            .attribute("ConfigurationEndPoint.Address")
            .attribute("ConfigurationEndPoint.Port")
            .typical_duration(Duration::from_secs(900))
            .deadlines(Duration::from_secs(3600), Duration::from_secs(3600));
        ReplicationGroup { c, schema }
    }

    /// Every replication group of the region by lowercase id: one
    /// `DescribeReplicationGroups` per page (see the module comment).
    async fn all(&self) -> Result<HashMap<String, Group>, DriverError> {
        let mut groups = HashMap::new();
        let mut pages = self
            .c
            .elasticache
            .describe_replication_groups()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for g in page.op("replication groups")?.replication_groups() {
                if let Some(id) = g.replication_group_id() {
                    groups.insert(id.to_ascii_lowercase(), g.clone());
                }
            }
        }
        Ok(groups)
    }

    /// One group, for the waits: `None` when there is no such group.
    async fn one(&self, id: &str) -> Result<Option<Group>, DriverError> {
        let r = self
            .c
            .elasticache
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .call(&self.c, id)
            .await;
        match r {
            Ok(out) => Ok(out.replication_groups().first().cloned()),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn wait_available(&self, id: &str, what: &str) -> Result<Group, DriverError> {
        wait::until(
            "elasticache:DescribeReplicationGroups",
            &format!("replication group {id} to {what}"),
            self.schema.deadlines.ready,
            || async {
                let Some(g) = self.one(id).await? else {
                    return Ok(None);
                };
                let status = g.status().unwrap_or_default().to_string();
                // A modification AWS has accepted but not yet applied still
                // blocks the next one: wait for it too.
                let pending = g.pending_modified_values().is_some_and(|p| {
                    *p != aws_sdk_elasticache::types::ReplicationGroupPendingModifiedValues::builder()
                        .build()
                });
                match status.as_str() {
                    "available" if !pending => Ok(Some(g)),
                    "create-failed" => Err(DriverError::new(
                        ErrorKind::Other,
                        "elasticache:CreateReplicationGroup",
                        format!("{id}: the replication group failed to create"),
                    )),
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    async fn wait_gone(&self, id: &str, timeout: Duration) -> Result<(), DriverError> {
        wait::until(
            "elasticache:DescribeReplicationGroups",
            &format!("replication group {id} to finish deleting"),
            timeout,
            || async { Ok(self.one(id).await?.is_none().then_some(())) },
        )
        .await
    }

    /// A group in the schema's shape; `given` (the properties last applied)
    /// only decides spellings of names and keys AWS reports in another form.
    async fn observe(&self, g: &Group, given: &Props) -> Result<Observed, DriverError> {
        let id = g.replication_group_id().unwrap_or_default();
        let first = g.node_groups().first();
        let port = first
            .and_then(|n| n.primary_endpoint())
            .and_then(|e| e.port())
            .or_else(|| g.configuration_endpoint().and_then(|e| e.port()));
        let cluster_mode = g.cluster_enabled() == Some(true);
        let kms_key = key_as_given(&self.c, str_of(given, "KmsKeyId"), g.kms_key_id()).await;
        let mut o = Obs::new()
            .prop(
                "ReplicationGroupId",
                Some(as_given(str_of(given, "ReplicationGroupId"), id)),
            )
            .prop("ReplicationGroupDescription", g.description())
            .prop("Engine", g.engine())
            .prop("CacheNodeType", g.cache_node_type())
            // Nodes of a group without cluster mode: its member clusters.
            .prop(
                "NumCacheClusters",
                (!cluster_mode).then(|| g.member_clusters().len() as i64),
            )
            .prop("ReplicasPerNodeGroup", replicas(g))
            .prop(
                "AutomaticFailoverEnabled",
                g.automatic_failover()
                    .map(|s| matches!(s.as_str(), "enabled" | "enabling")),
            )
            .prop(
                "MultiAZEnabled",
                g.multi_az().map(|s| s.as_str() == "enabled"),
            )
            .prop("AtRestEncryptionEnabled", g.at_rest_encryption_enabled())
            .prop("TransitEncryptionEnabled", g.transit_encryption_enabled())
            .prop("KmsKeyId", kms_key)
            .prop("Port", port)
            .prop("SnapshotRetentionLimit", g.snapshot_retention_limit())
            .prop("SnapshotWindow", g.snapshot_window())
            .prop("AutoMinorVersionUpgrade", g.auto_minor_version_upgrade());
        // Tags cost one ListTagsForResource per group: read them for the
        // groups whose stack sets Tags, the only ones compared.
        if let (true, Some(arn)) = (given.contains_key("Tags"), g.arn()) {
            o = o.prop("Tags", Some(tags_of(&self.c, arn).await?));
        }
        let mut o = o.done();
        o.attributes = group_attributes(g);
        Ok(o)
    }

    /// Adds or removes replicas until each node group has `want`.
    async fn set_replicas(&self, id: &str, now: &Group, want: i32) -> Result<bool, DriverError> {
        let have = replicas(now).unwrap_or(0);
        if want > have {
            self.c
                .elasticache
                .increase_replica_count()
                .replication_group_id(id)
                .new_replica_count(want)
                .apply_immediately(true)
                .send()
                .call(&self.c, id)
                .await?;
        } else if want < have {
            self.c
                .elasticache
                .decrease_replica_count()
                .replication_group_id(id)
                .new_replica_count(want)
                .apply_immediately(true)
                .send()
                .call(&self.c, id)
                .await?;
        }
        Ok(want != have)
    }
}

#[async_trait]
impl Driver for ReplicationGroup {
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
            match groups.get(&h.physical_id.to_ascii_lowercase()) {
                // A group being deleted is as good as gone.
                Some(g) if g.status() != Some("deleting") => {
                    match self.observe(g, &h.properties).await {
                        Ok(o) => out.push(Some(o)),
                        Err(e) if is_gone(&e) => out.push(None),
                        Err(e) => return Err(e),
                    }
                }
                _ => out.push(None),
            }
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        const OP: &str = "elasticache:CreateReplicationGroup";
        let p = req.properties;
        let id = match str_of(p, "ReplicationGroupId") {
            Some(n) => n.to_ascii_lowercase(),
            None => generated_name(req.logical_id, req.idempotency_token, 40),
        };
        let description = need_str(p, "ReplicationGroupDescription", OP)?;
        // Resolved here, sent once, never logged: the state holds only the
        // reference (hashed, as AuthToken is write-only).
        let auth_token = match str_of(p, "AuthToken") {
            Some(v) => Some(dynamic::resolve(&self.c, v, OP).await?),
            None => None,
        };
        let tags = all_tags(p, req.tags);
        let (num_cache_clusters, replicas_per_node_group) = (
            i32_of(p, "NumCacheClusters"),
            i32_of(p, "ReplicasPerNodeGroup"),
        );
        let mut waited = false;
        loop {
            let sent = self
                .c
                .elasticache
                .create_replication_group()
                .replication_group_id(&id)
                .replication_group_description(description)
                .set_engine(owned_str(p, "Engine"))
                .set_engine_version(owned_str(p, "EngineVersion"))
                .set_cache_parameter_group_name(owned_str(p, "CacheParameterGroupName"))
                .set_cache_node_type(owned_str(p, "CacheNodeType"))
                .set_num_cache_clusters(num_cache_clusters)
                .set_replicas_per_node_group(replicas_per_node_group)
                .set_automatic_failover_enabled(bool_of(p, "AutomaticFailoverEnabled"))
                .set_multi_az_enabled(bool_of(p, "MultiAZEnabled"))
                .set_cache_subnet_group_name(owned_str(p, "CacheSubnetGroupName"))
                .set_security_group_ids(list_if_set(p, "SecurityGroupIds"))
                .set_at_rest_encryption_enabled(bool_of(p, "AtRestEncryptionEnabled"))
                .set_transit_encryption_enabled(bool_of(p, "TransitEncryptionEnabled"))
                .set_kms_key_id(owned_str(p, "KmsKeyId"))
                .set_auth_token(auth_token.clone())
                .set_port(i32_of(p, "Port"))
                .set_snapshot_retention_limit(i32_of(p, "SnapshotRetentionLimit"))
                .set_snapshot_window(owned_str(p, "SnapshotWindow"))
                .set_preferred_maintenance_window(owned_str(p, "PreferredMaintenanceWindow"))
                .set_auto_minor_version_upgrade(bool_of(p, "AutoMinorVersionUpgrade"))
                .set_tags(Some(ec_tags(&tags)))
                .send()
                .call(&self.c, &id)
                .await;
            match sent {
                Ok(_) => break,
                // A group of this id still being deleted (a replacement that
                // keeps the name: delete returns once deletion is under way):
                // wait until it is gone, then create once more.
                Err(e) if !waited && e.kind == ErrorKind::AlreadyExists => {
                    let deleting = self
                        .one(&id)
                        .await?
                        .is_some_and(|g| g.status() == Some("deleting"));
                    if !deleting {
                        return Err(e);
                    }
                    self.wait_gone(&id, self.schema.deadlines.gone).await?;
                    waited = true;
                }
                Err(e) => return Err(e),
            }
        }
        let g = self.wait_available(&id, "become available").await?;
        Ok(Created {
            physical_id: id,
            attributes: group_attributes(&g),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        const OP: &str = "elasticache:ModifyReplicationGroup";
        let id = req.physical_id;
        let p = req.properties;
        let Some(mut current) = self.one(id).await? else {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                OP,
                format!("{id}: the replication group does not exist"),
            ));
        };
        let mut call = self
            .c
            .elasticache
            .modify_replication_group()
            .replication_group_id(id)
            .apply_immediately(true);
        let mut any = false;
        let text = |name: &str| if_changed(&req, name, owned_str);
        let flag = |name: &str| if_changed(&req, name, bool_of);
        macro_rules! set {
            ($value:expr, $setter:ident) => {
                if let Some(v) = $value {
                    call = call.$setter(v);
                    any = true;
                }
            };
        }
        set!(
            text("ReplicationGroupDescription"),
            replication_group_description
        );
        set!(text("Engine"), engine);
        set!(text("EngineVersion"), engine_version);
        set!(text("CacheParameterGroupName"), cache_parameter_group_name);
        set!(text("CacheNodeType"), cache_node_type);
        set!(text("SnapshotWindow"), snapshot_window);
        set!(
            text("PreferredMaintenanceWindow"),
            preferred_maintenance_window
        );
        set!(flag("AutomaticFailoverEnabled"), automatic_failover_enabled);
        set!(flag("MultiAZEnabled"), multi_az_enabled);
        set!(flag("TransitEncryptionEnabled"), transit_encryption_enabled);
        set!(flag("AutoMinorVersionUpgrade"), auto_minor_version_upgrade);
        if changed(&req, "SnapshotRetentionLimit") {
            // Absent means AWS's default: no automatic snapshots.
            call = call.snapshot_retention_limit(i32_of(p, "SnapshotRetentionLimit").unwrap_or(0));
            any = true;
        }
        if changed(&req, "SecurityGroupIds") {
            call = call.set_security_group_ids(Some(strs_of(p, "SecurityGroupIds")));
            any = true;
        }
        if any {
            call.send().call(&self.c, id).await?;
            current = self.wait_available(id, "apply the changes").await?;
        }
        // The auth token in a call of its own, rotated: the old token keeps
        // working until clients have the new one.
        if changed(&req, "AuthToken") {
            let Some(reference) = str_of(p, "AuthToken") else {
                return Err(invalid(
                    OP,
                    format!(
                        "{id}: removing AuthToken in place is not supported; replace the group \
                         (change ReplicationGroupId) to drop it"
                    ),
                ));
            };
            let token = dynamic::resolve(&self.c, reference, OP).await?;
            self.c
                .elasticache
                .modify_replication_group()
                .replication_group_id(id)
                .auth_token(token)
                .auth_token_update_strategy(AuthTokenUpdateStrategyType::Rotate)
                .apply_immediately(true)
                .send()
                .call(&self.c, id)
                .await?;
            current = self.wait_available(id, "rotate its auth token").await?;
        }
        let want = if changed(&req, "NumCacheClusters") {
            i32_of(p, "NumCacheClusters").map(|n| n - 1)
        } else if changed(&req, "ReplicasPerNodeGroup") {
            i32_of(p, "ReplicasPerNodeGroup")
        } else {
            None
        };
        if let Some(want) = want {
            if self.set_replicas(id, &current, want).await? {
                current = self.wait_available(id, "change its replicas").await?;
            }
        }
        let group_arn = current
            .arn()
            .map(String::from)
            .unwrap_or_else(|| arn(req.context, "replicationgroup", id));
        crate::tags::sync_update(&EcTags(&self.c), &group_arn, &req).await?;
        Ok(group_attributes(&current))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // A group still creating or modifying refuses to be deleted for a
        // while.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        let r = wait::while_in_use(deadline.left(), || async {
            self.c
                .elasticache
                .delete_replication_group()
                .replication_group_id(id)
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
        // Done when the group is gone: its nodes hold network interfaces in
        // the stack's subnets and security group until then, so what is
        // deleted after it (the cache subnet group, the security group) would
        // otherwise fail as in use.
        self.wait_gone(id, deadline.left()).await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let g = self
            .wait_available(&h.physical_id, "become available")
            .await?;
        Ok(Some(group_attributes(&g)))
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &REPLICATION_GROUP_TAGGED).await
    }
}
