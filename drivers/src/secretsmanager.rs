//! Secrets Manager: `AWS::SecretsManager::Secret` and
//! `AWS::SecretsManager::RotationSchedule`.
//!
//! Reads never fetch a secret's value (no `GetSecretValue`, no
//! `BatchGetSecretValue`): `ListSecrets` with a `name` filter answers for up
//! to ten secrets per call. Name filters match prefixes, so entries are
//! matched back to the resources by ARN. A name no filter can express (an
//! RDS-managed `rds!db-…` secret) is filtered by its longest expressible
//! prefix; a name without one is read with `DescribeSecret`.
//!
//! Secret values (`SecretString`, generated passwords) are sent to AWS and
//! never returned, logged, or put into an error message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType, Tag};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use futures::future::try_join_all;
use serde_json::{Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::iam::generated_name;
use crate::kms::key_id_of;
use crate::props::{all_tags, bool_of, int_of, need_str, str_of, tags_value, Obs, Props};
use crate::sdk::Clients;
use crate::tags::{self, Limited};
use crate::wait;

/// The key Secrets Manager encrypts with when the stack names none.
const DEFAULT_KEY: &str = "alias/aws/secretsmanager";

/// What a read needs to know of a secret: never its value.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    arn: String,
    name: String,
    description: Option<String>,
    kms_key_id: Option<String>,
    rotation_enabled: bool,
    rotation_lambda_arn: Option<String>,
    /// `RotationRules` in CloudFormation's shape.
    rules: Option<Value>,
    tags: Vec<(String, String)>,
    /// Scheduled for deletion.
    deleted: bool,
}

impl Info {
    /// Whether `id` (an ARN, or a name) names this secret.
    fn is(&self, id: &str) -> bool {
        self.arn == id || (!id.starts_with("arn:") && self.name == id)
    }
}

fn rules_value(r: &RotationRulesType) -> Value {
    let mut m = Map::new();
    // AWS may report a days-based rotation as `rate(N days)` only: that is
    // AutomaticallyAfterDays N, as the stack says it.
    let days = r.automatically_after_days().or_else(|| {
        r.schedule_expression().and_then(|e| {
            e.strip_prefix("rate(")?
                .strip_suffix(" days)")?
                .parse()
                .ok()
        })
    });
    if let Some(days) = days {
        m.insert("AutomaticallyAfterDays".into(), Value::from(days));
    }
    if let Some(e) = r.schedule_expression() {
        m.insert("ScheduleExpression".into(), Value::from(e));
    }
    if let Some(d) = r.duration() {
        m.insert("Duration".into(), Value::from(d));
    }
    Value::Object(m)
}

/// `ListSecrets` entries and `DescribeSecret` answers have the same getters.
macro_rules! info_of {
    ($s:expr) => {{
        let s = $s;
        Info {
            arn: s.arn().unwrap_or_default().to_string(),
            name: s.name().unwrap_or_default().to_string(),
            description: s.description().map(String::from),
            kms_key_id: s.kms_key_id().map(String::from),
            rotation_enabled: s.rotation_enabled().unwrap_or(false),
            rotation_lambda_arn: s.rotation_lambda_arn().map(String::from),
            rules: s.rotation_rules().map(rules_value),
            tags: s
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            deleted: s.deleted_date().is_some(),
        }
    }};
}

/// The secret name in a secret ARN: AWS appends `-` and six random
/// characters to the name (`arn:…:secret:db-AbCdEf` → `db`).
fn name_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":secret:")?.1;
    let cut = rest.len().checked_sub(7)?;
    (rest.is_char_boundary(cut) && rest.as_bytes().get(cut) == Some(&b'-')).then(|| &rest[..cut])
}

/// Characters a `ListSecrets` filter value may hold.
fn filterable(c: char) -> bool {
    c.is_ascii_alphanumeric() || " :_@/+=.-".contains(c)
}

fn sm_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// One secret by ARN or name; `None` when Secrets Manager does not know it.
async fn describe(c: &Clients, id: &str) -> Result<Option<Info>, DriverError> {
    match c
        .secrets
        .describe_secret()
        .secret_id(id)
        .send()
        .call(c, id)
        .await
    {
        Ok(out) => Ok(Some(info_of!(&out))),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The secrets named by `ids` (ARNs or names), and possibly others whose
/// names share a prefix with theirs. Secrets scheduled for deletion are left
/// out by `ListSecrets`; `DescribeSecret` reports them with `deleted` set.
/// [`secrets`] shared by the secrets' and the rotation schedules' reads,
/// which ask at the same time (see [`crate::batch`]): by id asked for, the
/// live secret it names, else the deleted one.
async fn shared_secrets(c: &Arc<Clients>, ids: &[&str]) -> Result<Vec<Info>, DriverError> {
    let c2 = c.clone();
    let found = c
        .secret_infos
        .load(ids, move |ids| async move {
            let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
            let all = secrets(&c2, &asked).await?;
            Ok(ids
                .iter()
                .filter_map(|id| {
                    let mut matching = all.iter().filter(|s| s.is(id));
                    let first = matching.clone().next()?;
                    let live = matching.find(|s| !s.deleted).unwrap_or(first);
                    Some((id.clone(), live.clone()))
                })
                .collect())
        })
        .await?;
    Ok(found.into_values().collect())
}

async fn secrets(c: &Clients, ids: &[&str]) -> Result<Vec<Info>, DriverError> {
    let mut prefixes: Vec<String> = Vec::new();
    let mut singles: Vec<&str> = Vec::new();
    for &id in ids {
        let name = if id.starts_with("arn:") {
            name_of_arn(id)
        } else {
            Some(id)
        };
        let prefix: String = name
            .unwrap_or_default()
            .chars()
            .take_while(|c| filterable(*c))
            .collect();
        if prefix.is_empty() {
            singles.push(id);
        } else if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    let mut found = Vec::new();
    // A filter takes at most ten values.
    for chunk in prefixes.chunks(10) {
        let mut pages = c
            .secrets
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for s in page.op(&chunk.join(","))?.secret_list() {
                found.push(info_of!(s));
            }
        }
    }
    let described = try_join_all(singles.iter().map(|id| describe(c, id))).await?;
    found.extend(described.into_iter().flatten());
    Ok(found)
}

fn id_attribute(arn: &str) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("Id".into(), Value::String(arn.to_string()));
    attributes
}

/// Secrets in the tagging API, known by their ARN.
pub const SECRET_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "secretsmanager:secret",
    arn: "secretsmanager:secret:",
    id: crate::tagging::whole,
};

/// Secrets Manager's tag calls, by ARN. `ListSecrets` and `DescribeSecret`
/// carry tags, so `list` is there for the frame only.
struct SecretTags<'a>(&'a Clients);

impl crate::tags::TagApi for SecretTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        Ok(describe(self.0, arn)
            .await?
            .map(|s| s.tags.into_iter().collect())
            .unwrap_or_default())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
        self.0
            .secrets
            .tag_resource()
            .secret_id(arn)
            .set_tags(Some(sm_tags(&tags)))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .secrets
            .untag_resource()
            .secret_id(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

pub struct Secret {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Secret {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::SecretsManager::Secret")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("Description", 0, 2048)
            .length("KmsKeyId", 0, 2048)
            .length("Name", 0, 512)
            .length("SecretString", 1, 65536)
            .fixed_name("Name")
            .prop("Description")
            .prop("KmsKeyId")
            .secret("SecretString")
            .write_only("GenerateSecretString")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS)
            .id_attribute("Id")
            // No attribute publishes it, in AWS's schema or in fastcart's.
            .lookup(CURRENT_VERSION)
            .typical_duration(Duration::from_secs(1))
            .deadlines(Duration::ZERO, Duration::from_secs(120));
        Secret { c, schema }
    }

    /// The value to store: `SecretString`, or one made by
    /// `GenerateSecretString`, or none.
    async fn value(&self, p: &Props, target: &str) -> Result<Option<String>, DriverError> {
        let op = "secretsmanager:CreateSecret";
        let given = p.get("SecretString").filter(|v| !v.is_null());
        let generate = p.get("GenerateSecretString").filter(|v| !v.is_null());
        match (given, generate) {
            (Some(_), Some(_)) => Err(invalid(
                op,
                format!("{target}: SecretString and GenerateSecretString exclude each other"),
            )),
            (Some(Value::String(s)), None) => Ok(Some(s.clone())),
            (Some(v), None) => Ok(Some(v.to_string())),
            (None, Some(Value::Object(g))) => self.generate(g, target).await.map(Some),
            (None, Some(_)) => Err(invalid(
                op,
                format!("{target}: GenerateSecretString must be an object"),
            )),
            (None, None) => Ok(None),
        }
    }

    /// A password from `GetRandomPassword`, put into `SecretStringTemplate`
    /// under `GenerateStringKey` when the stack gives them.
    async fn generate(&self, g: &Props, target: &str) -> Result<String, DriverError> {
        let op = "secretsmanager:GetRandomPassword";
        let template = str_of(g, "SecretStringTemplate");
        let key = str_of(g, "GenerateStringKey");
        let mut doc = match (template, key) {
            (Some(t), Some(_)) => {
                Some(serde_json::from_str::<Map<String, Value>>(t).map_err(|e| {
                    invalid(
                        op,
                        format!("{target}: SecretStringTemplate is not a JSON object: {e}"),
                    )
                })?)
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    op,
                    format!("{target}: SecretStringTemplate and GenerateStringKey go together"),
                ))
            }
        };
        let out = self
            .c
            .secrets
            .get_random_password()
            .set_password_length(int_of(g, "PasswordLength"))
            .set_exclude_characters(str_of(g, "ExcludeCharacters").map(String::from))
            .set_exclude_numbers(bool_of(g, "ExcludeNumbers"))
            .set_exclude_punctuation(bool_of(g, "ExcludePunctuation"))
            .set_exclude_uppercase(bool_of(g, "ExcludeUppercase"))
            .set_exclude_lowercase(bool_of(g, "ExcludeLowercase"))
            .set_include_space(bool_of(g, "IncludeSpace"))
            .set_require_each_included_type(bool_of(g, "RequireEachIncludedType"))
            .send()
            .call(&self.c, target)
            .await?;
        let password = match out.random_password() {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => {
                return Err(DriverError::new(
                    ErrorKind::Other,
                    op,
                    format!("{target}: no password came back"),
                ))
            }
        };
        Ok(match (&mut doc, key) {
            (Some(d), Some(k)) => {
                d.insert(k.to_string(), Value::String(password));
                Value::Object(std::mem::take(d)).to_string()
            }
            _ => password,
        })
    }
}

/// `KmsKeyId` as the stack gave it (id or ARN) when AWS reports the same
/// key, else as AWS reports it.
fn shown_key(actual: Option<&str>, given: Option<&str>) -> Option<String> {
    match (actual, given) {
        (Some(a), Some(g)) if a == g || key_id_of(a) == key_id_of(g) => Some(g.to_string()),
        (a, _) => a.map(String::from),
    }
}

#[async_trait]
impl Driver for Secret {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let all = shared_secrets(&self.c, &ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let s = all.iter().find(|s| s.is(&h.physical_id) && !s.deleted)?;
                Some(
                    Obs::new()
                        .prop("Name", Some(s.name.as_str()))
                        .prop(
                            "Description",
                            Some(s.description.clone().unwrap_or_default()),
                        )
                        .prop(
                            "KmsKeyId",
                            shown_key(s.kms_key_id.as_deref(), str_of(&h.properties, "KmsKeyId")),
                        )
                        .prop("Tags", Some(tags_value(s.tags.clone())))
                        .attr("Id", Some(s.arn.as_str()))
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "secretsmanager:CreateSecret";
        let name = match str_of(p, "Name") {
            Some(n) => n.to_string(),
            None => generated_name(req.logical_id, req.tags, req.idempotency_token, 256),
        };
        let value = self.value(p, &name).await?;
        // A taken name is the engine's to judge (`AlreadyExists`): it adopts
        // the secret when it carries this resource's ownership tags.
        let out = self
            .c
            .secrets
            .create_secret()
            .name(&name)
            .client_request_token(req.idempotency_token)
            .set_description(str_of(p, "Description").map(String::from))
            .set_kms_key_id(str_of(p, "KmsKeyId").map(String::from))
            .set_secret_string(value)
            .set_tags(Some(sm_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, &name)
            .await?;
        let arn = out.arn().unwrap_or_default().to_string();
        if arn.is_empty() {
            return Err(DriverError::new(
                ErrorKind::Other,
                op,
                format!("{name}: Secrets Manager returned no ARN"),
            ));
        }
        Ok(Created {
            attributes: id_attribute(&arn),
            physical_id: arn,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("Description") || changed("KmsKeyId") {
            let mut call = self.c.secrets.update_secret().secret_id(arn);
            if changed("Description") {
                call = call.description(str_of(p, "Description").unwrap_or_default());
            }
            if changed("KmsKeyId") {
                call = call.kms_key_id(str_of(p, "KmsKeyId").unwrap_or(DEFAULT_KEY));
            }
            call.send().call(&self.c, arn).await?;
        }
        if changed("SecretString") || changed("GenerateSecretString") {
            if let Some(value) = self.value(p, arn).await? {
                self.c
                    .secrets
                    .put_secret_value()
                    .secret_id(arn)
                    .secret_string(value)
                    .send()
                    .call(&self.c, arn)
                    .await?;
            }
        }
        crate::tags::sync_update(&SecretTags(&self.c), arn, &req).await?;
        Ok(id_attribute(arn))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        // Without recovery: the stack must be able to make a secret of the
        // same name again right away.
        let r = self
            .c
            .secrets
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .call(&self.c, arn)
            .await;
        if let Err(e) = r {
            if !is_gone(&e) {
                return Err(e);
            }
        }
        // The deletion finishes asynchronously; the name is free once the
        // secret is no longer found.
        wait::until(
            "secretsmanager:DescribeSecret",
            &format!("{arn} to be deleted"),
            self.schema.deadlines.gone,
            || async { Ok(describe(&self.c, arn).await?.is_none().then_some(())) },
        )
        .await
    }

    /// By its name; the physical id is the ARN `DescribeSecret` gives. A
    /// secret scheduled for deletion is no candidate.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        crate::key::looked_up(self, q, "Name", |name| async move {
            let found = describe(&self.c, &name).await?;
            Ok(found
                .filter(|s| !s.deleted)
                .map(|s| s.arn)
                .into_iter()
                .collect())
        })
        .await
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &SECRET_TAGGED).await
    }

    /// `CurrentVersionId`: the version staged `AWSCURRENT`, from
    /// `DescribeSecret` (never the value). It works for any secret the
    /// caller may describe, an RDS-managed one included.
    async fn lookup(&self, id: &str, name: &str) -> Result<Option<Value>, DriverError> {
        if name != CURRENT_VERSION {
            return Err(invalid(
                "fastcart:Lookup",
                format!("AWS::SecretsManager::Secret has no lookup {name}"),
            ));
        }
        let out = match self
            .c
            .secrets
            .describe_secret()
            .secret_id(id)
            .send()
            .call(&self.c, id)
            .await
        {
            Ok(out) => out,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(version, _)| Value::String(version.clone())))
    }
}

/// The lookup that gives a secret's current version id.
pub const CURRENT_VERSION: &str = "CurrentVersionId";

/// `AWS::SecretsManager::RotationSchedule`: a secret's rotation settings.
/// Its physical id is the secret's ARN, as CloudFormation's `Ref` gives.
/// Untaggable: a create sets the schedule again, which is idempotent.
///
/// fastcart does not rotate a secret when it sets the schedule
/// (`RotateImmediately=false`), and rotates on an update only when
/// `RotateImmediatelyOnUpdate` is true (CloudFormation's default is true).
pub struct RotationSchedule {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl RotationSchedule {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::SecretsManager::RotationSchedule")
            .required("SecretId")
            .create_only("SecretId")
            .prop("RotationRules")
            .prop("RotationLambdaARN")
            .write_only("RotateImmediatelyOnUpdate")
            .attribute("Id")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        RotationSchedule { c, schema }
    }

    /// Sets the rotation rules (and function) of `secret`; returns its ARN.
    async fn rotate(
        &self,
        secret: &str,
        p: &Props,
        immediately: bool,
    ) -> Result<String, DriverError> {
        let rules = p.get("RotationRules").and_then(Value::as_object).map(|r| {
            RotationRulesType::builder()
                .set_automatically_after_days(int_of(r, "AutomaticallyAfterDays"))
                .set_schedule_expression(str_of(r, "ScheduleExpression").map(String::from))
                .set_duration(str_of(r, "Duration").map(String::from))
                .build()
        });
        let out = self
            .c
            .secrets
            .rotate_secret()
            .secret_id(secret)
            .set_rotation_rules(rules)
            .set_rotation_lambda_arn(str_of(p, "RotationLambdaARN").map(String::from))
            .rotate_immediately(immediately)
            .send()
            .call(&self.c, secret)
            .await?;
        Ok(out.arn().unwrap_or(secret).to_string())
    }
}

#[async_trait]
impl Driver for RotationSchedule {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let all = shared_secrets(&self.c, &ids).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let s = all
                    .iter()
                    .find(|s| s.is(&h.physical_id) && !s.deleted && s.rotation_enabled)?;
                // `SecretId` as the stack gave it: the ARN or the name.
                let secret_id = match str_of(&h.properties, "SecretId") {
                    Some(given) if s.is(given) || given == s.name => given.to_string(),
                    _ => s.arn.clone(),
                };
                Some(
                    Obs::new()
                        .prop("SecretId", Some(secret_id))
                        .prop("RotationRules", s.rules.clone())
                        .prop(
                            "RotationLambdaARN",
                            s.rotation_lambda_arn.clone().filter(|a| !a.is_empty()),
                        )
                        .attr("Id", Some(s.arn.as_str()))
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let secret = need_str(p, "SecretId", "secretsmanager:RotateSecret")?;
        let arn = self.rotate(secret, p, false).await?;
        Ok(Created {
            attributes: id_attribute(&arn),
            physical_id: arn,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let p = req.properties;
        if req
            .changed
            .iter()
            .any(|c| c == "RotationRules" || c == "RotationLambdaARN")
        {
            let now = bool_of(p, "RotateImmediatelyOnUpdate").unwrap_or(false);
            self.rotate(req.physical_id, p, now).await?;
        }
        Ok(id_attribute(req.physical_id))
    }

    /// By the secret it rotates: its physical id is the secret's ARN.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(secret) = crate::key::given(q, "SecretId") else {
            return Ok(None);
        };
        crate::key::candidates(self, q, [secret.to_string()], &format!("SecretId={secret}"))
            .await
            .map(Some)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        match self
            .c
            .secrets
            .cancel_rotate_secret()
            .secret_id(arn)
            .send()
            .call(&self.c, arn)
            .await
        {
            // Gone with its secret, or the secret is being deleted, or its
            // rotation belongs to the service that manages it (no rotation
            // function to cancel): nothing left to undo.
            Err(e) if !is_gone(&e) && !e.is_code("InvalidRequestException") => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_in_days_reads_as_automatically_after_days() {
        let r = RotationRulesType::builder()
            .schedule_expression("rate(30 days)")
            .build();
        assert_eq!(
            rules_value(&r)["AutomaticallyAfterDays"],
            serde_json::json!(30)
        );
    }

    #[test]
    fn secret_names_from_arns() {
        assert_eq!(
            name_of_arn("arn:aws:secretsmanager:eu-central-1:123456789012:secret:app/db-AbCdEf"),
            Some("app/db")
        );
        assert_eq!(
            name_of_arn("arn:aws:secretsmanager:eu-central-1:1:secret:rds!db-1234-abcdef-XyZabc"),
            Some("rds!db-1234-abcdef")
        );
        assert_eq!(name_of_arn("arn:aws:secretsmanager:r:1:secret:abc"), None);
        let prefix: String = "rds!db-1".chars().take_while(|c| filterable(*c)).collect();
        assert_eq!(prefix, "rds");
    }

    #[test]
    fn keys_show_in_the_form_given() {
        let arn = "arn:aws:kms:eu-central-1:1:key/k-1";
        assert_eq!(shown_key(Some(arn), Some("k-1")).as_deref(), Some("k-1"));
        assert_eq!(shown_key(Some("k-1"), Some(arn)).as_deref(), Some(arn));
        assert_eq!(shown_key(Some("k-2"), Some("k-1")).as_deref(), Some("k-2"));
        assert_eq!(shown_key(None, Some("k-1")), None);
    }
}
