//! KMS: `AWS::KMS::Key` and `AWS::KMS::Alias`.
//!
//! KMS has no batch describe: reading keys takes a `DescribeKey`, then a
//! `GetKeyPolicy`, a `GetKeyRotationStatus` and a `ListResourceTags`, for
//! each key; the keys are read concurrently. Aliases are read with one
//! paginated `ListAliases` for all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyUsageType, Tag};
use fastcart_engine::{
    CloudContext, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use futures::future::try_join_all;
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{
    all_tags, bool_of, document_of, i32_of, need_str, parse_document, str_of, tags_value, Obs,
};
use crate::sdk::Clients;
use crate::tags::{self, Limited};

/// The key id in a key id or key ARN (`arn:…:key/<id>` → `<id>`).
pub(crate) fn key_id_of(id_or_arn: &str) -> &str {
    match id_or_arn.split_once(":key/") {
        Some((_, id)) => id,
        None => id_or_arn,
    }
}

/// How many days a deleted key waits, when the stack does not say:
/// CloudFormation's default.
const DEFAULT_PENDING_WINDOW: i32 = 30;

fn kms_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok())
        .collect()
}

/// KMS's tag calls, by key id.
struct KmsTags<'a>(&'a Clients);

impl crate::tags::TagApi for KmsTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, id: &str) -> Result<crate::tags::Tags, DriverError> {
        let mut tags = BTreeMap::new();
        let mut pages = self
            .0
            .kms
            .list_resource_tags()
            .key_id(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for t in page.op(id)?.tags() {
                tags.insert(t.tag_key().to_string(), t.tag_value().to_string());
            }
        }
        Ok(tags)
    }

    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .kms
            .tag_resource()
            .key_id(id)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok())
                    .collect(),
            ))
            .send()
            .call(self.0, id)
            .await?;
        Ok(())
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .kms
            .untag_resource()
            .key_id(id)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, id)
            .await?;
        Ok(())
    }
}

/// Whether a key is usable: not scheduled for deletion.
fn is_live(m: &KeyMetadata) -> bool {
    !matches!(
        m.key_state().map(|s| s.as_str()),
        Some("PendingDeletion") | Some("PendingReplicaDeletion")
    )
}

/// Whether AWS can rotate the key material: symmetric keys with key material
/// of KMS's own only.
fn rotatable(m: &KeyMetadata) -> bool {
    m.key_spec()
        .is_none_or(|s| s.as_str() == "SYMMETRIC_DEFAULT")
        && m.origin().is_none_or(|o| o.as_str() == "AWS_KMS")
}

/// The policy KMS gives a key when the stack gives none: the account may do
/// anything with it through IAM.
fn default_policy(ctx: &CloudContext) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:{}:iam::{}:root", ctx.partition, ctx.account_id)},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// `PendingWindowInDays` as last applied (CloudFormation's default when unset).
fn pending_window(p: &Map<String, Value>) -> i32 {
    i32_of(p, "PendingWindowInDays").unwrap_or(DEFAULT_PENDING_WINDOW)
}

/// Keys in the tagging API.
pub const KEY_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "kms:key",
    arn: "kms:key/",
    id: crate::tagging::after_slash,
};

pub struct Key {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Key {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::KMS::Key")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("Description", 0, 8192)
            .one_of(
                "KeySpec",
                &[
                    "SYMMETRIC_DEFAULT",
                    "RSA_2048",
                    "RSA_3072",
                    "RSA_4096",
                    "ECC_NIST_P256",
                    "ECC_NIST_P384",
                    "ECC_NIST_P521",
                    "ECC_SECG_P256K1",
                    "HMAC_224",
                    "HMAC_256",
                    "HMAC_384",
                    "HMAC_512",
                    "SM2",
                    "ML_DSA_44",
                    "ML_DSA_65",
                    "ML_DSA_87",
                    "ECC_NIST_EDWARDS25519",
                ],
            )
            .one_of(
                "KeyUsage",
                &[
                    "ENCRYPT_DECRYPT",
                    "SIGN_VERIFY",
                    "GENERATE_VERIFY_MAC",
                    "KEY_AGREEMENT",
                ],
            )
            .range("PendingWindowInDays", Some(7.0), Some(30.0))
            .guard("EnableKeyRotation", fastcart_engine::Guard::Protection)
            .guard("KeyPolicy", fastcart_engine::Guard::Policy)
            .prop("Description")
            .kind("KeyPolicy", ValueKind::JsonDocument)
            .prop("EnableKeyRotation")
            .prop("Enabled")
            // CloudFormation replaces the key when these change; here they
            // say so in the plan.
            .create_only("KeySpec")
            .create_only("KeyUsage")
            .create_only("MultiRegion")
            // Used only when the key is deleted.
            .write_only("PendingWindowInDays")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS)
            .attribute("Arn")
            .id_attribute("KeyId")
            .typical_duration(Duration::from_secs(2));
        Key { c, schema }
    }

    /// The key's metadata; `None` when KMS does not know it.
    async fn describe(&self, id: &str) -> Result<Option<KeyMetadata>, DriverError> {
        match self
            .c
            .kms
            .describe_key()
            .key_id(id)
            .send()
            .call(&self.c, id)
            .await
        {
            Ok(out) => Ok(out.key_metadata().cloned()),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn policy(&self, id: &str) -> Result<Option<Value>, DriverError> {
        let out = self
            .c
            .kms
            .get_key_policy()
            .key_id(id)
            .policy_name("default")
            .send()
            .call(&self.c, id)
            .await?;
        Ok(out.policy().map(parse_document))
    }

    async fn rotation(&self, id: &str, rotatable: bool) -> Result<bool, DriverError> {
        if !rotatable {
            return Ok(false);
        }
        let out = self
            .c
            .kms
            .get_key_rotation_status()
            .key_id(id)
            .send()
            .call(&self.c, id)
            .await?;
        Ok(out.key_rotation_enabled())
    }

    async fn read_one(&self, id: &str) -> Result<Option<Observed>, DriverError> {
        let Some(m) = self.describe(id).await? else {
            return Ok(None);
        };
        if !is_live(&m) {
            return Ok(None);
        }
        let read = futures::future::try_join3(
            self.policy(id),
            self.rotation(id, rotatable(&m)),
            crate::tags::read(&self.c, &KmsTags(&self.c), m.arn().unwrap_or(id), id),
        )
        .await;
        let (policy, rotation, tags) = match read {
            Ok(r) => r,
            // Deleted between the calls.
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(
            Obs::new()
                .prop("Description", Some(m.description().unwrap_or_default()))
                .prop("Enabled", Some(m.enabled()))
                .prop("KeyUsage", m.key_usage().map(|u| u.as_str()))
                .prop("KeySpec", m.key_spec().map(|s| s.as_str()))
                .prop("MultiRegion", Some(m.multi_region().unwrap_or(false)))
                .prop("EnableKeyRotation", Some(rotation))
                .prop("KeyPolicy", policy)
                .prop("Tags", Some(tags_value(tags)))
                .attr("Arn", m.arn())
                .attr("KeyId", Some(m.key_id()))
                .done(),
        ))
    }

    async fn set_rotation(&self, id: &str, on: bool) -> Result<(), DriverError> {
        if on {
            self.c
                .kms
                .enable_key_rotation()
                .key_id(id)
                .send()
                .call(&self.c, id)
                .await?;
        } else {
            self.c
                .kms
                .disable_key_rotation()
                .key_id(id)
                .send()
                .call(&self.c, id)
                .await?;
        }
        Ok(())
    }

    async fn set_enabled(&self, id: &str, on: bool) -> Result<(), DriverError> {
        if on {
            self.c
                .kms
                .enable_key()
                .key_id(id)
                .send()
                .call(&self.c, id)
                .await?;
        } else {
            self.c
                .kms
                .disable_key()
                .key_id(id)
                .send()
                .call(&self.c, id)
                .await?;
        }
        Ok(())
    }
}

fn key_attributes(m: &KeyMetadata) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("KeyId".into(), Value::String(m.key_id().to_string()));
    if let Some(arn) = m.arn() {
        attributes.insert("Arn".into(), Value::String(arn.to_string()));
    }
    attributes
}

#[async_trait]
impl Driver for Key {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // No batch describe in KMS: per key, all keys at once.
        try_join_all(handles.iter().map(|h| self.read_one(&h.physical_id))).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "kms:CreateKey";
        let out = self
            .c
            .kms
            .create_key()
            .set_policy(document_of(p, "KeyPolicy"))
            .set_description(str_of(p, "Description").map(String::from))
            .set_key_usage(str_of(p, "KeyUsage").map(KeyUsageType::from))
            .set_key_spec(str_of(p, "KeySpec").map(KeySpec::from))
            .set_multi_region(bool_of(p, "MultiRegion"))
            .set_tags(Some(kms_tags(&all_tags(p, req.tags))))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let m = out.key_metadata().cloned().ok_or_else(|| {
            DriverError::new(
                ErrorKind::Other,
                op,
                format!("{}: KMS returned no key", req.logical_id),
            )
        })?;
        let id = m.key_id().to_string();
        if bool_of(p, "EnableKeyRotation") == Some(true) {
            self.set_rotation(&id, true).await?;
        }
        if bool_of(p, "Enabled") == Some(false) {
            self.set_enabled(&id, false).await?;
        }
        Ok(Created {
            physical_id: id,
            attributes: key_attributes(&m),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        let m = self.describe(id).await?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                "kms:DescribeKey",
                format!("{id}: the key no longer exists"),
            )
        })?;
        let enabled = bool_of(p, "Enabled").unwrap_or(true);
        // A disabled key takes no rotation or policy changes: enable first,
        // disable last.
        if changed("Enabled") && enabled && !m.enabled() {
            self.set_enabled(id, true).await?;
        }
        if changed("Description") {
            self.c
                .kms
                .update_key_description()
                .key_id(id)
                .description(str_of(p, "Description").unwrap_or_default())
                .send()
                .call(&self.c, id)
                .await?;
        }
        if changed("KeyPolicy") {
            let policy = document_of(p, "KeyPolicy").unwrap_or_else(|| default_policy(req.context));
            self.c
                .kms
                .put_key_policy()
                .key_id(id)
                .policy_name("default")
                .policy(policy)
                .send()
                .call(&self.c, id)
                .await?;
        }
        if changed("EnableKeyRotation") {
            let on = bool_of(p, "EnableKeyRotation").unwrap_or(false);
            if on || rotatable(&m) {
                self.set_rotation(id, on).await?;
            }
        }
        if changed("Enabled") && !enabled {
            self.set_enabled(id, false).await?;
        }
        crate::tags::sync_update(&KmsTags(&self.c), id, &req).await?;
        Ok(key_attributes(&m))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        match self.describe(id).await? {
            Some(m) if is_live(&m) => {}
            // Gone, or already waiting out its deletion window.
            _ => return Ok(()),
        }
        let r = self
            .c
            .kms
            .schedule_key_deletion()
            .key_id(id)
            .pending_window_in_days(pending_window(&h.properties))
            .send()
            .call(&self.c, id)
            .await;
        match r {
            // A resend after a lost answer finds the key already scheduled.
            Err(e) if e.is_code("KMSInvalidStateException") => match self.describe(id).await? {
                Some(m) if is_live(&m) => Err(e),
                _ => Ok(()),
            },
            Err(e) if !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &KEY_TAGGED).await
    }
}

/// `AWS::KMS::Alias`: untaggable, named by `AliasName`.
pub struct Alias {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Alias {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::KMS::Alias")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("AliasName", 1, 256)
            .pattern("AliasName", "^(alias/)[a-zA-Z0-9:/_-]+$")
            .length("TargetKeyId", 1, 256)
            .required("AliasName")
            .required("TargetKeyId")
            .fixed_name("AliasName")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        Alias { c, schema }
    }

    /// Every alias of the account and region, by name, with its target key
    /// id: one paginated `ListAliases`.
    async fn aliases(&self) -> Result<HashMap<String, Option<String>>, DriverError> {
        let mut out = HashMap::new();
        let mut pages = self.c.kms.list_aliases().limit(100).into_paginator().send();
        while let Some(page) = pages.next().await {
            for a in page.op("aliases")?.aliases() {
                if let Some(name) = a.alias_name() {
                    out.insert(name.to_string(), a.target_key_id().map(String::from));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Driver for Alias {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.aliases().await?;
        Ok(handles
            .iter()
            .map(|h| {
                let target = all.get(&h.physical_id)?;
                // The stack may name the key by id or by ARN: answer in the
                // form it used when that is the same key.
                let shown = match (target, str_of(&h.properties, "TargetKeyId")) {
                    (Some(t), Some(given)) if key_id_of(given) == t.as_str() => {
                        Some(given.to_string())
                    }
                    (t, _) => t.clone(),
                };
                Some(
                    Obs::new()
                        .prop("AliasName", Some(h.physical_id.as_str()))
                        .prop("TargetKeyId", shown)
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "kms:CreateAlias";
        let name = need_str(p, "AliasName", op)?;
        let target = need_str(p, "TargetKeyId", op)?;
        if !name.starts_with("alias/") || name.starts_with("alias/aws/") {
            return Err(invalid(
                op,
                format!(
                    "{}: AliasName must start with alias/ (and not alias/aws/), not {name}",
                    req.logical_id
                ),
            ));
        }
        let r = self
            .c
            .kms
            .create_alias()
            .alias_name(name)
            .target_key_id(target)
            .send()
            .call(&self.c, name)
            .await;
        match r {
            Ok(_) => {}
            // Aliases carry no tags: an alias that already points at the same
            // key is this one, from a create that was cut short.
            Err(e) if e.is_code("AlreadyExistsException") => {
                let all = self.aliases().await?;
                let same = all
                    .get(name)
                    .and_then(|t| t.as_deref())
                    .is_some_and(|t| t == key_id_of(target));
                if !same {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(Created {
            physical_id: name.to_string(),
            attributes: Map::new(),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        if req.changed.iter().any(|c| c == "TargetKeyId") {
            let target = need_str(req.properties, "TargetKeyId", "kms:UpdateAlias")?;
            self.c
                .kms
                .update_alias()
                .alias_name(name)
                .target_key_id(target)
                .send()
                .call(&self.c, name)
                .await?;
        }
        Ok(Map::new())
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        let r = self
            .c
            .kms
            .delete_alias()
            .alias_name(name)
            .send()
            .call(&self.c, name)
            .await;
        crate::error::done_if_gone(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_from_arns() {
        assert_eq!(
            key_id_of("arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab"),
            "1234abcd-12ab"
        );
        assert_eq!(key_id_of("1234abcd-12ab"), "1234abcd-12ab");
    }

    #[test]
    fn the_pending_window_is_kept_in_clear() {
        // Write-only but no secret: state keeps it as it was given.
        let schema = TypeSchema::new("AWS::KMS::Key").write_only("PendingWindowInDays");
        let mut p = Map::new();
        p.insert("PendingWindowInDays".into(), json!(9));
        let kept = fastcart_engine::state::protect_secrets(&p, &schema);
        assert_eq!(kept.get("PendingWindowInDays"), Some(&json!(9)));
        assert_eq!(pending_window(&kept), 9);
        assert_eq!(pending_window(&Map::new()), DEFAULT_PENDING_WINDOW);
    }
}
