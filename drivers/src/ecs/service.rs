//! `AWS::ECS::Service`.

use super::*;
use crate::tags::{self, Limited};

/// Services in the tagging API, known by their ARN.
pub const SERVICE_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:service",
    arn: "ecs:service/",
    id: tagging::whole,
};

pub struct Service {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// The cluster a service is in: from its ARN (`…:service/<cluster>/<name>`,
/// the long format), else from its `Cluster` property, else the default
/// cluster.
pub(super) fn cluster_for(arn: &str, props: &Obj) -> String {
    if let Some((_, rest)) = arn.split_once(":service/") {
        if let Some((cluster, _)) = rest.split_once('/') {
            return cluster.to_string();
        }
    }
    match str_of(props, "Cluster") {
        Some(c) => name_of(c).to_string(),
        None => "default".to_string(),
    }
}

/// The service name in an ARN (or a name).
/// A task definition ARN in the form the stack gave it: an ARN, a
/// `family:revision`, or a bare family (which means the latest revision).
pub(super) fn task_definition_in_form(applied: Option<&str>, arn: &str) -> String {
    match applied {
        None => arn.to_string(),
        Some(a) if a.starts_with("arn:") => arn.to_string(),
        Some(a) => {
            let family_rev = arn
                .split_once("task-definition/")
                .map(|(_, r)| r)
                .unwrap_or(arn);
            if a.contains(':') {
                family_rev.to_string()
            } else {
                family_rev
                    .split(':')
                    .next()
                    .unwrap_or(family_rev)
                    .to_string()
            }
        }
    }
}

pub(super) fn network_of(p: &Obj, op: &str) -> Result<Option<NetworkConfiguration>, DriverError> {
    let Some(v) = given(p, "NetworkConfiguration") else {
        return Ok(None);
    };
    let w = "NetworkConfiguration";
    let o = obj(v, w, op)?;
    only_keys(o, &["AwsvpcConfiguration"], w, op)?;
    let Some(a) = given(o, "AwsvpcConfiguration") else {
        return Ok(Some(NetworkConfiguration::builder().build()));
    };
    let w = "NetworkConfiguration.AwsvpcConfiguration";
    let a = obj(a, w, op)?;
    only_keys(a, &["Subnets", "SecurityGroups", "AssignPublicIp"], w, op)?;
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(texts(a, "Subnets", w, op)?)
        .set_security_groups(texts(a, "SecurityGroups", w, op)?)
        .set_assign_public_ip(text(a, "AssignPublicIp", w, op)?.map(AssignPublicIp::from))
        .build()
        .map_err(|e| invalid(op, format!("{w}: {e}")))?;
    Ok(Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    ))
}

pub(super) fn network_json(n: &NetworkConfiguration) -> Value {
    let mut o = Map::new();
    if let Some(a) = n.awsvpc_configuration() {
        let mut m = Map::new();
        m.insert("Subnets".into(), Value::from(a.subnets().to_vec()));
        m.insert(
            "SecurityGroups".into(),
            Value::from(a.security_groups().to_vec()),
        );
        put(
            &mut m,
            "AssignPublicIp",
            a.assign_public_ip().map(|x| x.as_str()),
        );
        o.insert("AwsvpcConfiguration".into(), Value::Object(m));
    }
    Value::Object(o)
}

/// `LoadBalancers`: the target groups (or classic load balancers) the
/// service registers its tasks' container port with.
pub(super) fn load_balancers_of(
    p: &Obj,
    op: &str,
) -> Result<Option<Vec<EcsLoadBalancer>>, DriverError> {
    if given(p, "LoadBalancers").is_none() {
        return Ok(None);
    }
    let w = "LoadBalancers[]";
    let mut out = Vec::new();
    for lb in list(p, "LoadBalancers", "LoadBalancers", op)? {
        let lb = obj(lb, w, op)?;
        only_keys(
            lb,
            &[
                "ContainerName",
                "ContainerPort",
                "TargetGroupArn",
                "LoadBalancerName",
            ],
            w,
            op,
        )?;
        out.push(
            EcsLoadBalancer::builder()
                .set_container_name(text(lb, "ContainerName", w, op)?.map(String::from))
                .set_container_port(num(lb, "ContainerPort", w, op)?)
                .set_target_group_arn(text(lb, "TargetGroupArn", w, op)?.map(String::from))
                .set_load_balancer_name(text(lb, "LoadBalancerName", w, op)?.map(String::from))
                .build(),
        );
    }
    Ok(Some(out))
}

pub(super) fn load_balancers_json(lbs: &[EcsLoadBalancer]) -> Value {
    Value::Array(
        lbs.iter()
            .map(|lb| {
                let mut o = Map::new();
                put(&mut o, "ContainerName", lb.container_name());
                put(&mut o, "ContainerPort", lb.container_port());
                put(&mut o, "TargetGroupArn", lb.target_group_arn());
                put(&mut o, "LoadBalancerName", lb.load_balancer_name());
                Value::Object(o)
            })
            .collect(),
    )
}

pub(super) fn deployment_of(
    p: &Obj,
    op: &str,
) -> Result<Option<DeploymentConfiguration>, DriverError> {
    let Some(v) = given(p, "DeploymentConfiguration") else {
        return Ok(None);
    };
    let w = "DeploymentConfiguration";
    let o = obj(v, w, op)?;
    only_keys(
        o,
        &[
            "MaximumPercent",
            "MinimumHealthyPercent",
            "DeploymentCircuitBreaker",
        ],
        w,
        op,
    )?;
    let breaker = match given(o, "DeploymentCircuitBreaker") {
        None => None,
        Some(b) => {
            let w = "DeploymentConfiguration.DeploymentCircuitBreaker";
            let b = obj(b, w, op)?;
            only_keys(b, &["Enable", "Rollback"], w, op)?;
            Some(
                DeploymentCircuitBreaker::builder()
                    .set_enable(flag(b, "Enable", w, op)?)
                    .set_rollback(flag(b, "Rollback", w, op)?)
                    .build(),
            )
        }
    };
    Ok(Some(
        DeploymentConfiguration::builder()
            .set_maximum_percent(num(o, "MaximumPercent", w, op)?)
            .set_minimum_healthy_percent(num(o, "MinimumHealthyPercent", w, op)?)
            .set_deployment_circuit_breaker(breaker)
            .build(),
    ))
}

pub(super) fn deployment_json(d: &DeploymentConfiguration) -> Value {
    let mut o = Map::new();
    put(&mut o, "MaximumPercent", d.maximum_percent());
    put(&mut o, "MinimumHealthyPercent", d.minimum_healthy_percent());
    if let Some(b) = d.deployment_circuit_breaker() {
        o.insert(
            "DeploymentCircuitBreaker".into(),
            json!({"Enable": b.enable(), "Rollback": b.rollback()}),
        );
    }
    Value::Object(o)
}

/// Whether a service has reached a steady state, as ECS's own
/// `services-stable` waiter judges it and more: ACTIVE, one deployment, the
/// PRIMARY one, its rollout COMPLETED (or not reported, as for deployment
/// controllers without rollouts), and as many tasks running as desired.
/// A FAILED rollout is an error.
pub(super) fn settled(s: &EcsService, op: &str) -> Result<bool, DriverError> {
    let name = s.service_name().unwrap_or_default();
    match s.status() {
        Some("ACTIVE") => {}
        Some("DRAINING" | "INACTIVE") => {
            return Err(DriverError::new(
                ErrorKind::Other,
                op,
                format!("{name}: the service was deleted while waiting for it to settle"),
            ))
        }
        _ => return Ok(false),
    }
    if let Some(d) = s
        .deployments()
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        return Err(DriverError::new(
            ErrorKind::Other,
            op,
            format!(
                "{name}: deployment {} failed: {}",
                d.id().unwrap_or_default(),
                d.rollout_state_reason().unwrap_or("no reason given")
            ),
        ));
    }
    let rolled_out = match s.deployments() {
        // EXTERNAL and CODE_DEPLOY controllers report task sets instead.
        [] => true,
        [d] => {
            d.status() == Some("PRIMARY")
                && d.rollout_state()
                    .is_none_or(|r| *r == DeploymentRolloutState::Completed)
        }
        _ => false,
    };
    Ok(rolled_out && s.running_count() == s.desired_count())
}

impl Service {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::Service")
            .one_of(
                "NetworkConfiguration/AwsvpcConfiguration/AssignPublicIp",
                &["DISABLED", "ENABLED"],
            )
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of("LaunchType", &["EC2", "FARGATE", "EXTERNAL"])
            .one_of("PropagateTags", &["SERVICE", "TASK_DEFINITION"])
            .guard("NetworkConfiguration", fastcart_engine::Guard::Exposure)
            .required("ServiceName")
            .fixed_name("ServiceName")
            .create_only("Cluster")
            .prop("TaskDefinition")
            .prop("DesiredCount")
            // Updatable in AWS's schema only through a capacity provider
            // strategy, which fastcart does not offer: create-only here.
            .create_only("LaunchType")
            .prop("NetworkConfiguration")
            .identity(
                "LoadBalancers",
                &["TargetGroupArn", "ContainerName", "ContainerPort"],
            )
            .prop("PlatformVersion")
            .prop("DeploymentConfiguration")
            .prop("EnableExecuteCommand")
            .prop("PropagateTags")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS_PATTERNED)
            .attribute("ServiceArn")
            .attribute("Name")
            .typical_duration(Duration::from_secs(120))
            .deadlines(Duration::from_secs(900), Duration::from_secs(900));
        Service { c, schema }
    }

    /// Services of one cluster by name (given by name or ARN), with tags: one
    /// call per 10. A cluster that does not exist has no services.
    async fn describe(
        &self,
        cluster: &str,
        ids: &[String],
    ) -> Result<HashMap<String, EcsService>, DriverError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(10) {
            let r = self
                .c
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(ServiceField::Tags)
                .send()
                .call(&self.c, &chunk.join(","))
                .await;
            let out = match r {
                Ok(out) => out,
                Err(e) if is_gone(&e) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            for s in out.services() {
                if let Some(name) = s.service_name() {
                    found.insert(name.to_string(), s.clone());
                }
            }
        }
        Ok(found)
    }

    async fn describe_one(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<Option<EcsService>, DriverError> {
        Ok(self
            .describe(cluster, &[id.to_string()])
            .await?
            .remove(name_of(id)))
    }

    /// Waits (up to the type's ready deadline, 15 minutes, as a Fargate
    /// rollout can take) until the service has settled.
    async fn settle(&self, cluster: &str, arn: &str) -> Result<(), DriverError> {
        let name = name_of(arn);
        let waited = wait::until(
            "ecs:DescribeServices",
            &format!("service {name} to reach a steady state"),
            self.schema.deadlines.ready,
            || async {
                match self.describe_one(cluster, arn).await? {
                    Some(s) => Ok(settled(&s, "ecs:DescribeServices")?.then_some(())),
                    None => Ok(None),
                }
            },
        )
        .await;
        match waited {
            // Say why, in ECS's own words: most often the tasks cannot pull
            // their image (an empty repository) or cannot be placed.
            Err(mut e) => {
                if let Ok(Some(s)) = self.describe_one(cluster, arn).await {
                    let events: Vec<&str> = s
                        .events()
                        .iter()
                        .take(3)
                        .filter_map(|ev| ev.message())
                        .collect();
                    e.message = format!(
                        "{}; {} of {} tasks running{}{}",
                        e.message,
                        s.running_count(),
                        s.desired_count(),
                        if events.is_empty() {
                            ""
                        } else {
                            "; latest service events: "
                        },
                        events.join(" | ")
                    );
                }
                Err(e)
            }
            ok => ok,
        }
    }

    /// Waits until the service is INACTIVE or gone (draining stops its tasks).
    async fn wait_gone(&self, cluster: &str, id: &str) -> Result<(), DriverError> {
        let name = name_of(id);
        wait::until(
            "ecs:DescribeServices",
            &format!("service {name} to drain and become INACTIVE"),
            self.schema.deadlines.gone,
            || async {
                Ok(match self.describe_one(cluster, id).await? {
                    Some(s) if s.status() != Some("INACTIVE") => None,
                    _ => Some(()),
                })
            },
        )
        .await
    }

    fn attributes(arn: &str) -> Map<String, Value> {
        let mut a = Map::new();
        a.insert("ServiceArn".into(), Value::String(arn.to_string()));
        a.insert("Name".into(), Value::String(name_of(arn).to_string()));
        a
    }

    fn observe(h: &ResourceHandle, s: &EcsService) -> Observed {
        let applied = |k: &str| h.properties.get(k).and_then(Value::as_str);
        // Cluster and TaskDefinition come back as ARNs; the stack may have
        // given a name (a cluster's Ref is its name): answer in its form.
        let cluster = match s.cluster_arn() {
            Some(arn) if applied("Cluster").is_some_and(|c| c.starts_with("arn:")) => {
                arn.to_string()
            }
            Some(arn) => name_of(arn).to_string(),
            None => cluster_for(&h.physical_id, &h.properties),
        };
        let task_definition = s
            .task_definition()
            .map(|arn| task_definition_in_form(applied("TaskDefinition"), arn));
        Obs::new()
            .prop("ServiceName", s.service_name())
            .prop("Cluster", Some(cluster))
            .prop("TaskDefinition", task_definition)
            .prop("DesiredCount", Some(s.desired_count()))
            .prop("LaunchType", s.launch_type().map(|l| l.as_str()))
            .prop(
                "NetworkConfiguration",
                s.network_configuration().map(network_json),
            )
            .prop(
                "LoadBalancers",
                Some(load_balancers_json(s.load_balancers())),
            )
            .prop("PlatformVersion", s.platform_version())
            .prop(
                "DeploymentConfiguration",
                s.deployment_configuration().map(deployment_json),
            )
            .prop("EnableExecuteCommand", Some(s.enable_execute_command()))
            .prop("PropagateTags", s.propagate_tags().map(|t| t.as_str()))
            .prop("Tags", Some(tags_of(s.tags())))
            .attr("ServiceArn", s.service_arn())
            .attr("Name", s.service_name())
            .done()
    }
}

#[async_trait]
impl Driver for Service {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // DescribeServices asks one cluster at a time: group by cluster.
        let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in handles {
            let ids = by_cluster
                .entry(cluster_for(&h.physical_id, &h.properties))
                .or_default();
            if !ids.contains(&h.physical_id) {
                ids.push(h.physical_id.clone());
            }
        }
        let mut found: HashMap<(String, String), EcsService> = HashMap::new();
        for (cluster, ids) in &by_cluster {
            for (name, s) in self.describe(cluster, ids).await? {
                found.insert((cluster.clone(), name), s);
            }
        }
        Ok(handles
            .iter()
            .map(|h| {
                let key = (
                    cluster_for(&h.physical_id, &h.properties),
                    name_of(&h.physical_id).to_string(),
                );
                // DRAINING and INACTIVE services are deleted ones.
                let s = found.get(&key).filter(|s| s.status() == Some("ACTIVE"))?;
                Some(Self::observe(h, s))
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:CreateService";
        let name = need_str(p, "ServiceName", op)?.to_string();
        let cluster = str_of(p, "Cluster").unwrap_or("default").to_string();
        let network = network_of(p, op)?;
        let deployment = deployment_of(p, op)?;
        // Look before creating: a CreateService with a taken name overwrites
        // the service on moto (which also ignores the client token).
        if let Some(s) = self.describe_one(&cluster, &name).await? {
            match s.status() {
                Some("ACTIVE") if same_owner(s.tags(), req.tags) => {
                    // An earlier attempt of this very create made it.
                    let arn = s.service_arn().unwrap_or_default().to_string();
                    self.settle(&cluster, &arn).await?;
                    return Ok(Created {
                        attributes: Self::attributes(&arn),
                        physical_id: arn,
                    });
                }
                Some("ACTIVE") => {
                    return Err(DriverError::new(
                        ErrorKind::InvalidRequest,
                        op,
                        format!(
                            "{name}: a service with this name already exists in cluster \
                             {cluster} and was not made by this resource (its ownership tags \
                             differ)"
                        ),
                    ))
                }
                // A service of this name still draining blocks the name.
                Some("DRAINING") => self.wait_gone(&cluster, &name).await?,
                _ => {}
            }
        }
        let out = self
            .c
            .ecs
            .create_service()
            .cluster(&cluster)
            .service_name(&name)
            .set_task_definition(str_of(p, "TaskDefinition").map(String::from))
            .set_desired_count(i32_of(p, "DesiredCount"))
            .set_launch_type(str_of(p, "LaunchType").map(LaunchType::from))
            .set_network_configuration(network)
            .set_load_balancers(load_balancers_of(p, op)?)
            .set_platform_version(str_of(p, "PlatformVersion").map(String::from))
            .set_deployment_configuration(deployment)
            .set_enable_execute_command(bool_of(p, "EnableExecuteCommand"))
            .set_propagate_tags(str_of(p, "PropagateTags").map(PropagateTags::from))
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .client_token(req.idempotency_token)
            .send()
            .call(&self.c, &name)
            .await?;
        let arn = out
            .service()
            .and_then(|s| s.service_arn())
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{name}: the answer names no service ARN"),
                )
            })?
            .to_string();
        self.settle(&cluster, &arn).await?;
        Ok(Created {
            attributes: Self::attributes(&arn),
            physical_id: arn,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        let op = "ecs:UpdateService";
        let cluster = cluster_for(arn, p);
        let changed = |name: &str| crate::props::changed(&req, name);
        let updatable = [
            "TaskDefinition",
            "DesiredCount",
            "NetworkConfiguration",
            "LoadBalancers",
            "PlatformVersion",
            "DeploymentConfiguration",
            "EnableExecuteCommand",
            "PropagateTags",
        ];
        if updatable.iter().any(|&k| changed(k)) {
            let mut call = self.c.ecs.update_service().cluster(&cluster).service(arn);
            if changed("TaskDefinition") {
                call = call.set_task_definition(str_of(p, "TaskDefinition").map(String::from));
            }
            if changed("DesiredCount") {
                call = call.set_desired_count(i32_of(p, "DesiredCount"));
            }
            if changed("NetworkConfiguration") {
                call = call.set_network_configuration(network_of(p, op)?);
            }
            if changed("LoadBalancers") {
                // An empty list detaches them all, as UpdateService takes it.
                call = call.set_load_balancers(Some(load_balancers_of(p, op)?.unwrap_or_default()));
            }
            if changed("PlatformVersion") {
                call = call.set_platform_version(str_of(p, "PlatformVersion").map(String::from));
            }
            if changed("DeploymentConfiguration") {
                call = call.set_deployment_configuration(deployment_of(p, op)?);
            }
            if changed("EnableExecuteCommand") {
                call = call.set_enable_execute_command(bool_of(p, "EnableExecuteCommand"));
            }
            if changed("PropagateTags") {
                call = call.set_propagate_tags(str_of(p, "PropagateTags").map(PropagateTags::from));
            }
            call.send().call(&self.c, arn).await?;
            self.settle(&cluster, arn).await?;
        }
        crate::tags::sync_update(&EcsTags(&self.c), arn, &req).await?;
        Ok(Self::attributes(arn))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        let cluster = cluster_for(arn, &h.properties);
        let Some(s) = self.describe_one(&cluster, arn).await? else {
            return Ok(());
        };
        // Already draining: another delete is under way; wait for it.
        let not_active = |e: &DriverError| is_gone(e) || e.is_code("ServiceNotActiveException");
        if s.status() == Some("ACTIVE") {
            if s.desired_count() > 0 {
                let r = self
                    .c
                    .ecs
                    .update_service()
                    .cluster(&cluster)
                    .service(arn)
                    .desired_count(0)
                    .send()
                    .call(&self.c, arn)
                    .await;
                match r {
                    Err(e) if !not_active(&e) => return Err(e),
                    _ => {}
                }
            }
            let r = self
                .c
                .ecs
                .delete_service()
                .cluster(&cluster)
                .service(arn)
                .force(true)
                .send()
                .call(&self.c, arn)
                .await;
            match r {
                Err(e) if !not_active(&e) => return Err(e),
                _ => {}
            }
        }
        self.wait_gone(&cluster, arn).await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let cluster = cluster_for(&h.physical_id, &h.properties);
        self.settle(&cluster, &h.physical_id).await?;
        Ok(None)
    }

    /// By its cluster and name, among the ACTIVE services; the physical id
    /// is the ARN.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(name) = crate::key::given(q, "ServiceName") else {
            return Ok(None);
        };
        let cluster = crate::key::given(q, "Cluster").unwrap_or("default");
        let arns = self
            .describe_one(cluster, name)
            .await?
            .filter(|s| s.status() == Some("ACTIVE"))
            .and_then(|s| s.service_arn().map(String::from));
        let key = format!("Cluster={cluster}, ServiceName={name}");
        crate::key::candidates(self, q, arns, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &SERVICE_TAGGED).await
    }
}
