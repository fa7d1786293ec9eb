//! `AWS::ECS::Cluster`.

use super::*;
use crate::tags::{self, Limited};

/// Clusters in the tagging API.
pub const CLUSTER_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:cluster",
    arn: "ecs:cluster/",
    id: tagging::after_slash,
};

pub struct Cluster {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// A cluster that exists: not deleted, nor being deleted.
pub(super) fn cluster_live(cl: &EcsCluster) -> bool {
    !matches!(cl.status(), Some("INACTIVE" | "DEPROVISIONING"))
}

/// The name in a cluster's or service's ARN (the part after the last `/`),
/// or the name itself.
pub(super) fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

pub(super) fn cluster_settings_of(
    p: &Obj,
    op: &str,
) -> Result<Option<Vec<ClusterSetting>>, DriverError> {
    if given(p, "ClusterSettings").is_none() {
        return Ok(None);
    }
    let w = "ClusterSettings[]";
    let mut out = Vec::new();
    for s in list(p, "ClusterSettings", "ClusterSettings", op)? {
        let s = obj(s, w, op)?;
        only_keys(s, &["Name", "Value"], w, op)?;
        let value = given(s, "Value")
            .and_then(scalar)
            .ok_or_else(|| invalid(op, format!("{w}.Value must be a string")))?;
        out.push(
            ClusterSetting::builder()
                .set_name(Some(ClusterSettingName::from(need(s, "Name", w, op)?)))
                .set_value(Some(value))
                .build(),
        );
    }
    Ok(Some(out))
}

pub(super) fn strategy_of(
    p: &Obj,
    op: &str,
) -> Result<Option<Vec<CapacityProviderStrategyItem>>, DriverError> {
    if given(p, "DefaultCapacityProviderStrategy").is_none() {
        return Ok(None);
    }
    let w = "DefaultCapacityProviderStrategy[]";
    let mut out = Vec::new();
    for s in list(
        p,
        "DefaultCapacityProviderStrategy",
        "DefaultCapacityProviderStrategy",
        op,
    )? {
        let s = obj(s, w, op)?;
        only_keys(s, &["CapacityProvider", "Weight", "Base"], w, op)?;
        out.push(
            CapacityProviderStrategyItem::builder()
                .capacity_provider(need(s, "CapacityProvider", w, op)?)
                .set_weight(num(s, "Weight", w, op)?)
                .set_base(num(s, "Base", w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    Ok(Some(out))
}

pub(super) fn capacity_providers_of(p: &Obj) -> Option<Vec<String>> {
    given(p, "CapacityProviders").map(|_| strs_of(p, "CapacityProviders"))
}

impl Cluster {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::Cluster")
            .required("ClusterName")
            .fixed_name("ClusterName")
            .prop("ClusterSettings")
            .kind("CapacityProviders", ValueKind::UnorderedList)
            .prop("DefaultCapacityProviderStrategy")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS_PATTERNED)
            .attribute("Arn")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(300), Duration::from_secs(600));
        Cluster { c, schema }
    }

    /// Clusters by name, with their tags and settings: one call per 100.
    async fn describe(&self, names: &[String]) -> Result<HashMap<String, EcsCluster>, DriverError> {
        let mut found = HashMap::new();
        for chunk in names.chunks(100) {
            let out = self
                .c
                .ecs
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .include(ClusterField::Tags)
                .include(ClusterField::Settings)
                .send()
                .call(&self.c, &chunk.join(","))
                .await?;
            for cl in out.clusters() {
                if let Some(name) = cl.cluster_name() {
                    found.insert(name.to_string(), cl.clone());
                }
            }
        }
        Ok(found)
    }

    async fn describe_one(&self, name: &str) -> Result<Option<EcsCluster>, DriverError> {
        Ok(self
            .describe(&[name.to_string()])
            .await?
            .remove(name)
            .filter(cluster_live))
    }

    fn attributes(cl: &EcsCluster) -> Map<String, Value> {
        let mut a = Map::new();
        put(&mut a, "Arn", cl.cluster_arn());
        a
    }

    /// Sets the settings and capacity providers the stack gives (for a cluster
    /// adopted from an earlier attempt of the same create).
    async fn reconcile(&self, name: &str, p: &Obj, op: &str) -> Result<(), DriverError> {
        if let Some(settings) = cluster_settings_of(p, op)? {
            self.c
                .ecs
                .update_cluster()
                .cluster(name)
                .set_settings(Some(settings))
                .send()
                .call(&self.c, name)
                .await?;
        }
        let providers = capacity_providers_of(p);
        let strategy = strategy_of(p, op)?;
        if providers.is_some() || strategy.is_some() {
            self.put_capacity_providers(name, providers, strategy)
                .await?;
        }
        Ok(())
    }

    /// `PutClusterCapacityProviders` takes both lists, and replaces both.
    async fn put_capacity_providers(
        &self,
        name: &str,
        providers: Option<Vec<String>>,
        strategy: Option<Vec<CapacityProviderStrategyItem>>,
    ) -> Result<(), DriverError> {
        self.c
            .ecs
            .put_cluster_capacity_providers()
            .cluster(name)
            .set_capacity_providers(Some(providers.unwrap_or_default()))
            .set_default_capacity_provider_strategy(Some(strategy.unwrap_or_default()))
            .send()
            .call(&self.c, name)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Driver for Cluster {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let mut names: Vec<String> = handles
            .iter()
            .map(|h| name_of(&h.physical_id).to_string())
            .collect();
        names.sort();
        names.dedup();
        let found = self.describe(&names).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let cl = found
                    .get(name_of(&h.physical_id))
                    .filter(|cl| cluster_live(cl))?;
                let settings: Vec<Value> = cl
                    .settings()
                    .iter()
                    .map(|s| {
                        json!({
                            "Name": s.name().map(|n| n.as_str()).unwrap_or_default(),
                            "Value": s.value().unwrap_or_default(),
                        })
                    })
                    .collect();
                let strategy: Vec<Value> = cl
                    .default_capacity_provider_strategy()
                    .iter()
                    .map(|s| {
                        json!({
                            "CapacityProvider": s.capacity_provider(),
                            "Weight": s.weight(),
                            "Base": s.base(),
                        })
                    })
                    .collect();
                Some(
                    Obs::new()
                        .prop("ClusterName", cl.cluster_name())
                        .prop("ClusterSettings", Some(Value::Array(settings)))
                        .prop(
                            "CapacityProviders",
                            Some(Value::from(cl.capacity_providers().to_vec())),
                        )
                        .prop(
                            "DefaultCapacityProviderStrategy",
                            Some(Value::Array(strategy)),
                        )
                        .prop("Tags", Some(tags_of(cl.tags())))
                        .attr("Arn", cl.cluster_arn())
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:CreateCluster";
        let name = need_str(p, "ClusterName", op)?.to_string();
        let settings = cluster_settings_of(p, op)?;
        let strategy = strategy_of(p, op)?;
        // Look before creating: CreateCluster with a taken name succeeds and
        // hands back the existing cluster (on AWS and on moto alike).
        if let Some(existing) = self.describe_one(&name).await? {
            if !same_owner(existing.tags(), req.tags) {
                return Err(DriverError::new(
                    ErrorKind::InvalidRequest,
                    op,
                    format!(
                        "{name}: a cluster with this name already exists and was not made by \
                         this resource (its ownership tags differ)"
                    ),
                ));
            }
            // An earlier attempt of this very create made it: adopt it.
            self.reconcile(&name, p, op).await?;
            crate::tags::sync(
                &EcsTags(&self.c),
                existing.cluster_arn().unwrap_or_default(),
                &all_tags(p, req.tags),
                &[],
            )
            .await?;
            return Ok(Created {
                physical_id: name,
                attributes: Self::attributes(&existing),
            });
        }
        let out = self
            .c
            .ecs
            .create_cluster()
            .cluster_name(&name)
            .set_settings(settings)
            .set_capacity_providers(capacity_providers_of(p))
            .set_default_capacity_provider_strategy(strategy)
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &name)
            .await?;
        let mut cluster = out.cluster().cloned();
        // With capacity providers a cluster is PROVISIONING for a while.
        if cluster.as_ref().and_then(|c| c.status()) != Some("ACTIVE") {
            cluster = Some(
                wait::until(
                    "ecs:DescribeClusters",
                    &format!("cluster {name} to become ACTIVE"),
                    self.schema.deadlines.ready,
                    || async {
                        let cl = self
                            .describe(std::slice::from_ref(&name))
                            .await?
                            .remove(&name);
                        let status = cl.as_ref().and_then(|c| c.status()).map(String::from);
                        match status.as_deref() {
                            Some("ACTIVE") => Ok(cl),
                            Some("FAILED") => Err(DriverError::new(
                                ErrorKind::Other,
                                op,
                                format!(
                                    "{name}: the cluster FAILED to provision (attachments: {})",
                                    cl.as_ref()
                                        .and_then(|c| c.attachments_status())
                                        .unwrap_or("unknown")
                                ),
                            )),
                            _ => Ok(None),
                        }
                    },
                )
                .await?,
            );
        }
        Ok(Created {
            attributes: cluster.as_ref().map(Self::attributes).unwrap_or_default(),
            physical_id: name,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = name_of(req.physical_id);
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("ClusterSettings") {
            // UpdateCluster takes the settings as UpdateClusterSettings does;
            // moto implements only the former.
            if let Some(settings) = cluster_settings_of(p, "ecs:UpdateCluster")? {
                self.c
                    .ecs
                    .update_cluster()
                    .cluster(name)
                    .set_settings(Some(settings))
                    .send()
                    .call(&self.c, name)
                    .await?;
            }
        }
        if changed("CapacityProviders") || changed("DefaultCapacityProviderStrategy") {
            let strategy = strategy_of(p, "ecs:PutClusterCapacityProviders")?;
            self.put_capacity_providers(name, capacity_providers_of(p), strategy)
                .await?;
        }
        let cl = self.describe_one(name).await?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                "ecs:DescribeClusters",
                format!("{name}: the cluster does not exist"),
            )
        })?;
        crate::tags::sync_update(
            &EcsTags(&self.c),
            cl.cluster_arn().unwrap_or_default(),
            &req,
        )
        .await?;
        Ok(Self::attributes(&cl))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = name_of(&h.physical_id);
        // A cluster refuses deletion while services (draining ones too) or
        // tasks remain in it.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        wait::deleted(deadline.left(), || async {
            self.c
                .ecs
                .delete_cluster()
                .cluster(name)
                .send()
                .call(&self.c, name)
                .await
        })
        .await?;
        wait::until(
            "ecs:DescribeClusters",
            &format!("cluster {name} to become INACTIVE"),
            deadline.left(),
            || async { Ok(self.describe_one(name).await?.is_none().then_some(())) },
        )
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &CLUSTER_TAGGED).await
    }
}
