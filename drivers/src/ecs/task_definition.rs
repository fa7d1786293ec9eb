//! `AWS::ECS::TaskDefinition`: every registration is a new revision.

use super::*;
use crate::tags::{self, Limited};

/// Revisions in the tagging API, known by their ARN.
pub const TASK_DEFINITION_TAGGED: tagging::Tagged = tagging::Tagged {
    filter: "ecs:task-definition",
    arn: "ecs:task-definition/",
    id: tagging::whole,
};

pub struct TaskDefinition {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// Whether an error says the task definition does not exist: ECS answers a
/// `ClientException` for it, not a `*NotFound` code.
pub(super) fn task_definition_gone(e: &DriverError) -> bool {
    is_gone(e)
        || e.message.contains("Unable to describe task definition")
        || e.message
            .contains("specified task definition does not exist")
}

/// A revision that is deregistered or being deleted: gone, for fastcart.
pub(super) fn retired(td: &EcsTaskDefinition) -> bool {
    matches!(
        td.status(),
        Some(TaskDefinitionStatus::Inactive | TaskDefinitionStatus::DeleteInProgress)
    )
}

pub(super) fn runtime_platform_of(
    p: &Obj,
    op: &str,
) -> Result<Option<RuntimePlatform>, DriverError> {
    let Some(v) = given(p, "RuntimePlatform") else {
        return Ok(None);
    };
    let w = "RuntimePlatform";
    let o = obj(v, w, op)?;
    only_keys(o, &["CpuArchitecture", "OperatingSystemFamily"], w, op)?;
    Ok(Some(
        RuntimePlatform::builder()
            .set_cpu_architecture(text(o, "CpuArchitecture", w, op)?.map(CpuArchitecture::from))
            .set_operating_system_family(
                text(o, "OperatingSystemFamily", w, op)?.map(OsFamily::from),
            )
            .build(),
    ))
}

pub(super) fn ephemeral_storage_of(
    p: &Obj,
    op: &str,
) -> Result<Option<EphemeralStorage>, DriverError> {
    let Some(v) = given(p, "EphemeralStorage") else {
        return Ok(None);
    };
    let w = "EphemeralStorage";
    let o = obj(v, w, op)?;
    only_keys(o, &["SizeInGiB"], w, op)?;
    Ok(Some(
        EphemeralStorage::builder()
            .set_size_in_gib(num(o, "SizeInGiB", w, op)?)
            .build(),
    ))
}

impl TaskDefinition {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECS::TaskDefinition")
            .one_of(
                "ContainerDefinitions/*/PortMappings/*/Protocol",
                &["tcp", "udp"],
            )
            .one_of(
                "RequiresCompatibilities/*",
                &["EC2", "EXTERNAL", "FARGATE", "MANAGED_INSTANCES"],
            )
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of("NetworkMode", &["awsvpc", "bridge", "host", "none"])
            .required("Family")
            .create_only("Family")
            .required("ContainerDefinitions")
            .create_only("ContainerDefinitions")
            .create_only("Cpu")
            .create_only("Memory")
            .create_only("NetworkMode")
            .create_only("RequiresCompatibilities")
            .kind("RequiresCompatibilities", ValueKind::UnorderedList)
            .create_only("ExecutionRoleArn")
            .create_only("TaskRoleArn")
            .create_only("RuntimePlatform")
            .create_only("EphemeralStorage")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS_PATTERNED)
            .attribute("TaskDefinitionArn")
            .typical_duration(Duration::from_secs(2))
            // Registering and deregistering a revision take effect at once.
            .deadlines(Duration::ZERO, Duration::ZERO);
        TaskDefinition { c, schema }
    }

    /// One revision and its tags; `None` when it does not exist.
    async fn describe(
        &self,
        arn: &str,
    ) -> Result<Option<(EcsTaskDefinition, Vec<Tag>)>, DriverError> {
        let r = self
            .c
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .call(&self.c, arn)
            .await;
        let out = match r {
            Ok(out) => out,
            Err(e) if task_definition_gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out
            .task_definition()
            .map(|td| (td.clone(), out.tags().to_vec())))
    }

    fn observe(td: &EcsTaskDefinition, tags: &[Tag]) -> Observed {
        let platform = td.runtime_platform().map(|r| {
            let mut m = Map::new();
            put(
                &mut m,
                "CpuArchitecture",
                r.cpu_architecture().map(|x| x.as_str()),
            );
            put(
                &mut m,
                "OperatingSystemFamily",
                r.operating_system_family().map(|x| x.as_str()),
            );
            Value::Object(m)
        });
        let compatibilities: Vec<&str> = td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect();
        Obs::new()
            .prop("Family", td.family())
            .prop(
                "ContainerDefinitions",
                Some(Value::Array(
                    td.container_definitions()
                        .iter()
                        .map(container_json)
                        .collect(),
                )),
            )
            .prop("Cpu", td.cpu())
            .prop("Memory", td.memory())
            .prop("NetworkMode", td.network_mode().map(|m| m.as_str()))
            .prop(
                "RequiresCompatibilities",
                Some(Value::from(compatibilities)),
            )
            .prop("ExecutionRoleArn", td.execution_role_arn())
            .prop("TaskRoleArn", td.task_role_arn())
            .prop("RuntimePlatform", platform)
            .prop(
                "EphemeralStorage",
                td.ephemeral_storage()
                    .map(|e| json!({"SizeInGiB": e.size_in_gib()})),
            )
            .prop("Tags", Some(tags_of(tags)))
            .attr("TaskDefinitionArn", td.task_definition_arn())
            .done()
    }
}

#[async_trait]
impl Driver for TaskDefinition {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // DescribeTaskDefinition takes one revision: ECS has no batch
        // describe for task definitions, so this is one call per revision.
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(match self.describe(&h.physical_id).await? {
                Some((td, tags)) if !retired(&td) => {
                    let mut o = Self::observe(&td, &tags);
                    if let (Some(seen), Some(given)) = (
                        o.properties.get_mut("ContainerDefinitions"),
                        h.properties.get("ContainerDefinitions"),
                    ) {
                        in_given_order(seen, given);
                    }
                    Some(o)
                }
                _ => None,
            });
        }
        Ok(out)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecs:RegisterTaskDefinition";
        let family = need_str(p, "Family", op)?;
        let containers = match given(p, "ContainerDefinitions") {
            Some(Value::Array(defs)) if !defs.is_empty() => defs
                .iter()
                .map(|d| container_definition(d, op))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(invalid(
                    op,
                    "ContainerDefinitions must be a non-empty list of container objects",
                ))
            }
        };
        let compatibilities: Option<Vec<Compatibility>> =
            given(p, "RequiresCompatibilities").map(|_| {
                strs_of(p, "RequiresCompatibilities")
                    .iter()
                    .map(|c| Compatibility::from(c.as_str()))
                    .collect()
            });
        let out = self
            .c
            .ecs
            .register_task_definition()
            .family(family)
            .set_container_definitions(Some(containers))
            .set_cpu(given(p, "Cpu").and_then(scalar))
            .set_memory(given(p, "Memory").and_then(scalar))
            .set_network_mode(str_of(p, "NetworkMode").map(NetworkMode::from))
            .set_requires_compatibilities(compatibilities)
            .set_execution_role_arn(str_of(p, "ExecutionRoleArn").map(String::from))
            .set_task_role_arn(str_of(p, "TaskRoleArn").map(String::from))
            .set_runtime_platform(runtime_platform_of(p, op)?)
            .set_ephemeral_storage(ephemeral_storage_of(p, op)?)
            .set_tags(Some(ecs_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, family)
            .await?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{family}: the answer names no task definition ARN"),
                )
            })?
            .to_string();
        let mut attributes = Map::new();
        attributes.insert("TaskDefinitionArn".into(), Value::String(arn.clone()));
        Ok(Created {
            physical_id: arn,
            attributes,
        })
    }

    /// Everything but the tags is create-only: a change to it registers a new
    /// revision (a replacement).
    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        crate::tags::sync_update(&EcsTags(&self.c), arn, &req).await?;
        let mut attributes = Map::new();
        attributes.insert("TaskDefinitionArn".into(), Value::String(arn.to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        let Some((td, _)) = self.describe(arn).await? else {
            return Ok(());
        };
        match td.status() {
            Some(TaskDefinitionStatus::DeleteInProgress) => return Ok(()),
            Some(TaskDefinitionStatus::Inactive) => {}
            _ => {
                let r = self
                    .c
                    .ecs
                    .deregister_task_definition()
                    .task_definition(arn)
                    .send()
                    .call(&self.c, arn)
                    .await;
                match r {
                    Err(e) if task_definition_gone(&e) => return Ok(()),
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
            }
        }
        // Deregistered is where CloudFormation stops, and the revision reads
        // as gone from here on. Deleting it for good is a courtesy: if that
        // fails (say, no permission for it), the delete still succeeded.
        let _ = self
            .c
            .ecs
            .delete_task_definitions()
            .task_definitions(arn)
            .send()
            .call(&self.c, arn)
            .await;
        Ok(())
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &TASK_DEFINITION_TAGGED).await
    }
}
