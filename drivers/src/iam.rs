//! IAM: `AWS::IAM::Role`.
//!
//! Reading roles takes two calls for all of them, whatever their number:
//! `GetAccountAuthorizationDetails` (IAM's batch read: inline and attached
//! policies, boundary, tags) and `ListRoles` (description and session
//! length, which the first leaves out). Both page over the whole account's
//! roles, 1,000 a page, so their cost grows with the account, not the stack;
//! per role it would be four calls or more. IAM returns policy documents
//! URL-encoded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::types::{EntityType, Role as IamRole, RoleDetail, Tag};
use fastcart_engine::{
    CreateRequest, Created, Driver, DriverError, ErrorKind, Found, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind, TAG_ENV, TAG_STACK,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{
    all_tags, document_of, i32_of, parse_document, str_of, strs_of, tags_value, Obs, Props,
};
use crate::sdk::Clients;
use crate::tags::{self, Limited};
use crate::wait;

/// IAM's tags: a key of at least one of the characters IAM takes.
const IAM_TAG_LIMITS: tags::Limits = tags::Limits {
    key_pattern: Some("^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+$"),
    value_pattern: Some("^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$"),
    ..tags::LIMITS
};

/// A physical name for a resource whose stack gives none, as CloudFormation
/// makes one: stack, environment and logical id, and a suffix from the
/// create's idempotency token (the same across retries of one create), at
/// most `max` characters of `[A-Za-z0-9+=.@_-]` (valid for IAM and Secrets
/// Manager names alike).
pub(crate) fn generated_name(
    logical_id: &str,
    tags: &BTreeMap<String, String>,
    token: &str,
    max: usize,
) -> String {
    let suffix: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    let mut parts: Vec<&str> = Vec::new();
    if let Some(stack) = tags.get(TAG_STACK) {
        parts.push(stack);
    }
    if let Some(env) = tags.get(TAG_ENV) {
        parts.push(env);
    }
    parts.push(logical_id);
    let room = max.saturating_sub(suffix.len() + 1);
    let base: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    format!("{base}-{suffix}")
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// The inline policies the stack gives, by name, as document text.
fn inline_policies(p: &Props, op: &str) -> Result<BTreeMap<String, String>, DriverError> {
    let mut out = BTreeMap::new();
    let Some(items) = p.get("Policies") else {
        return Ok(out);
    };
    let Some(items) = items.as_array() else {
        return Err(invalid(op, "Policies must be a list"));
    };
    for item in items {
        let Some(obj) = item.as_object() else {
            return Err(invalid(
                op,
                "each of Policies must be an object with PolicyName and PolicyDocument",
            ));
        };
        let name = obj
            .get("PolicyName")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(op, "a policy in Policies has no PolicyName"))?;
        let doc = document_of(obj, "PolicyDocument")
            .ok_or_else(|| invalid(op, format!("policy {name} has no PolicyDocument")))?;
        out.insert(name.to_string(), doc);
    }
    Ok(out)
}

/// The inline policy documents as the stack last gave them, by name.
fn given_documents(p: &Props) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(Value::Array(items)) = p.get("Policies") {
        for item in items {
            if let (Some(name), Some(doc)) = (
                item.get("PolicyName").and_then(Value::as_str),
                item.get("PolicyDocument"),
            ) {
                out.insert(name.to_string(), doc.clone());
            }
        }
    }
    out
}

fn role_attributes(role: &IamRole) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("Arn".into(), Value::String(role.arn().to_string()));
    attributes.insert("RoleId".into(), Value::String(role.role_id().to_string()));
    attributes
}

/// IAM's tag calls for roles, by role name: fifty tags a call.
struct IamTags<'a>(&'a Clients);

impl crate::tags::TagApi for IamTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, name: &str) -> Result<crate::tags::Tags, DriverError> {
        let mut tags = BTreeMap::new();
        let mut pages = self
            .0
            .iam
            .list_role_tags()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for t in page.op(name)?.tags() {
                tags.insert(t.key().to_string(), t.value().to_string());
            }
        }
        Ok(tags)
    }

    async fn tag(&self, name: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
        self.0
            .iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(iam_tags(&tags)))
            .send()
            .call(self.0, name)
            .await?;
        Ok(())
    }

    async fn untag(&self, name: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .iam
            .untag_role()
            .role_name(name)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, name)
            .await?;
        Ok(())
    }
}

pub struct Role {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Role {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::IAM::Role")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("AssumeRolePolicyDocument", 1, 131072)
            .pattern(
                "AssumeRolePolicyDocument",
                r#"^[\u0009\u000A\u000D\u0020-\u00FF]+$"#,
            )
            .length("Description", 0, 1000)
            .pattern(
                "Description",
                r#"^[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*$"#,
            )
            .range("MaxSessionDuration", Some(3600.0), Some(43200.0))
            .length("Path", 1, 512)
            .pattern("Path", r#"^(\u002F)|(\u002F[\u0021-\u007E]+\u002F)$"#)
            .length("PermissionsBoundary", 20, 2048)
            .length("RoleName", 1, 64)
            .pattern("RoleName", r#"^[\w+=,.@-]+$"#)
            .identity("Policies", &["PolicyName"])
            .guard("Policies", fastcart_engine::Guard::Policy)
            .required("AssumeRolePolicyDocument")
            .kind("AssumeRolePolicyDocument", ValueKind::JsonDocument)
            .fixed_name("RoleName")
            .create_only("Path")
            .prop("Description")
            .prop("MaxSessionDuration")
            .kind("ManagedPolicyArns", ValueKind::UnorderedList)
            .kind("Policies", ValueKind::DocumentSet)
            .prop("PermissionsBoundary")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&IAM_TAG_LIMITS)
            .attribute("Arn")
            .attribute("RoleId")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::ZERO, Duration::from_secs(120));
        Role { c, schema }
    }

    /// The role; `None` when IAM does not know it.
    async fn get(&self, name: &str) -> Result<Option<IamRole>, DriverError> {
        match self
            .c
            .iam
            .get_role()
            .role_name(name)
            .send()
            .call(&self.c, name)
            .await
        {
            Ok(out) => Ok(out.role().cloned()),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ARNs of the managed policies attached to the role.
    async fn attached(&self, name: &str) -> Result<Vec<String>, DriverError> {
        let mut arns = Vec::new();
        let mut pages = self
            .c
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for a in page.op(name)?.attached_policies() {
                if let Some(arn) = a.policy_arn() {
                    arns.push(arn.to_string());
                }
            }
        }
        Ok(arns)
    }

    /// Names of the role's inline policies.
    async fn inline_names(&self, name: &str) -> Result<Vec<String>, DriverError> {
        let mut names = Vec::new();
        let mut pages = self
            .c
            .iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            names.extend(page.op(name)?.policy_names().iter().cloned());
        }
        Ok(names)
    }

    /// Every role of the account with its inline policies, attached
    /// policies, boundary and tags: `GetAccountAuthorizationDetails`, IAM's
    /// one batch read, one call per page of up to 1,000 roles.
    async fn details(&self) -> Result<BTreeMap<String, RoleDetail>, DriverError> {
        let mut roles = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .c
                .iam
                .get_account_authorization_details()
                .filter(EntityType::Role)
                .max_items(1000)
                .set_marker(marker.clone())
                .send()
                .call(&self.c, "roles")
                .await?;
            for r in out.role_detail_list() {
                if let Some(name) = r.role_name() {
                    roles.insert(name.to_string(), r.clone());
                }
            }
            marker = out
                .marker()
                .filter(|_| out.is_truncated())
                .map(String::from);
            if marker.is_none() {
                return Ok(roles);
            }
        }
    }

    /// Every role's description and session length, which the batch read
    /// leaves out: `ListRoles`, one call per page of up to 1,000 roles.
    async fn listed(&self) -> Result<BTreeMap<String, IamRole>, DriverError> {
        let mut roles = BTreeMap::new();
        let mut pages = self
            .c
            .iam
            .list_roles()
            .max_items(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for r in page.op("roles")?.roles() {
                roles.insert(r.role_name().to_string(), r.clone());
            }
        }
        Ok(roles)
    }

    fn observe(h: &ResourceHandle, d: &RoleDetail, listed: &IamRole) -> Observed {
        let given = given_documents(&h.properties);
        let policies: Vec<Value> = d
            .role_policy_list()
            .iter()
            .filter_map(|p| Some((p.policy_name()?, p.policy_document()?)))
            .map(|(policy, text)| {
                let parsed = parse_document(text);
                // A document the stack gave as JSON text reads back as that
                // text when it says the same.
                let doc = match given.get(policy) {
                    Some(Value::String(s))
                        if serde_json::from_str::<Value>(s).ok().as_ref() == Some(&parsed) =>
                    {
                        Value::String(s.clone())
                    }
                    _ => parsed,
                };
                json!({"PolicyName": policy, "PolicyDocument": doc})
            })
            .collect();
        let managed: Vec<Value> = d
            .attached_managed_policies()
            .iter()
            .filter_map(|a| a.policy_arn())
            .map(Value::from)
            .collect();
        Obs::new()
            .prop("RoleName", d.role_name())
            .prop("Path", d.path())
            .prop(
                "AssumeRolePolicyDocument",
                d.assume_role_policy_document().map(parse_document),
            )
            .prop(
                "Description",
                Some(listed.description().unwrap_or_default()),
            )
            .prop("MaxSessionDuration", listed.max_session_duration())
            .prop("ManagedPolicyArns", Some(Value::Array(managed)))
            .prop("Policies", Some(Value::Array(policies)))
            .prop(
                "PermissionsBoundary",
                d.permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn()),
            )
            .prop(
                "Tags",
                Some(tags_value(d.tags().iter().map(|t| (t.key(), t.value())))),
            )
            .attr("Arn", d.arn())
            .attr("RoleId", d.role_id())
            .done()
    }

    /// Attaches the managed policies in `want` the role lacks and detaches
    /// those it has that `want` does not name.
    async fn sync_managed(
        &self,
        name: &str,
        want: &[String],
        have: &[String],
    ) -> Result<(), DriverError> {
        for arn in want.iter().filter(|a| !have.contains(a)) {
            self.c
                .iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .call(&self.c, &format!("{name} {arn}"))
                .await?;
        }
        for arn in have.iter().filter(|a| !want.contains(a)) {
            self.detach(name, arn).await?;
        }
        Ok(())
    }

    async fn detach(&self, name: &str, arn: &str) -> Result<(), DriverError> {
        let r = self
            .c
            .iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .call(&self.c, &format!("{name} {arn}"))
            .await;
        crate::error::done_if_gone(r)
    }

    /// Puts every inline policy in `want` (a put replaces) and deletes the
    /// role's others.
    async fn sync_inline(
        &self,
        name: &str,
        want: &BTreeMap<String, String>,
        have: &[String],
    ) -> Result<(), DriverError> {
        for (policy, doc) in want {
            self.c
                .iam
                .put_role_policy()
                .role_name(name)
                .policy_name(policy)
                .policy_document(doc)
                .send()
                .call(&self.c, &format!("{name}/{policy}"))
                .await?;
        }
        for policy in have.iter().filter(|p| !want.contains_key(*p)) {
            self.delete_inline(name, policy).await?;
        }
        Ok(())
    }

    async fn delete_inline(&self, name: &str, policy: &str) -> Result<(), DriverError> {
        let r = self
            .c
            .iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .call(&self.c, &format!("{name}/{policy}"))
            .await;
        crate::error::done_if_gone(r)
    }

    async fn set_trust(&self, name: &str, doc: &str) -> Result<(), DriverError> {
        self.c
            .iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(doc)
            .send()
            .call(&self.c, name)
            .await?;
        Ok(())
    }

    /// Description and session duration go together: `UpdateRole` resets
    /// what it is not given.
    async fn set_settings(&self, name: &str, p: &Props) -> Result<(), DriverError> {
        self.c
            .iam
            .update_role()
            .role_name(name)
            .description(str_of(p, "Description").unwrap_or_default())
            .max_session_duration(i32_of(p, "MaxSessionDuration").unwrap_or(3600))
            .send()
            .call(&self.c, name)
            .await?;
        Ok(())
    }

    async fn set_boundary(&self, name: &str, boundary: Option<&str>) -> Result<(), DriverError> {
        match boundary {
            Some(arn) => {
                self.c
                    .iam
                    .put_role_permissions_boundary()
                    .role_name(name)
                    .permissions_boundary(arn)
                    .send()
                    .call(&self.c, name)
                    .await?;
            }
            None => {
                let r = self
                    .c
                    .iam
                    .delete_role_permissions_boundary()
                    .role_name(name)
                    .send()
                    .call(&self.c, name)
                    .await;
                if let Err(e) = r {
                    if !is_gone(&e) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Driver for Role {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let (details, listed) = futures::future::try_join(self.details(), self.listed()).await?;
        Ok(handles
            .iter()
            .map(|h| {
                let name = h.physical_id.as_str();
                Some(Self::observe(h, details.get(name)?, listed.get(name)?))
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "iam:CreateRole";
        let name = match str_of(p, "RoleName") {
            Some(n) => n.to_string(),
            None => generated_name(req.logical_id, req.tags, req.idempotency_token, 64),
        };
        let trust = document_of(p, "AssumeRolePolicyDocument").ok_or_else(|| {
            invalid(
                op,
                format!("{}: AssumeRolePolicyDocument is required", req.logical_id),
            )
        })?;
        let inline = inline_policies(p, op)?;
        let managed = strs_of(p, "ManagedPolicyArns");
        let tags = all_tags(p, req.tags);
        // A taken name is the engine's to judge (`AlreadyExists`): it adopts
        // the role when it carries this resource's ownership tags.
        let out = self
            .c
            .iam
            .create_role()
            .role_name(&name)
            .set_path(str_of(p, "Path").map(String::from))
            .assume_role_policy_document(&trust)
            .set_description(str_of(p, "Description").map(String::from))
            .set_max_session_duration(i32_of(p, "MaxSessionDuration"))
            .set_permissions_boundary(str_of(p, "PermissionsBoundary").map(String::from))
            .set_tags(Some(iam_tags(&tags)))
            .send()
            .call(&self.c, &name)
            .await?;
        let role = out.role().cloned().ok_or_else(|| {
            DriverError::new(
                ErrorKind::Other,
                op,
                format!("{name}: IAM returned no role"),
            )
        })?;
        self.sync_managed(&name, &managed, &[]).await?;
        self.sync_inline(&name, &inline, &[]).await?;
        Ok(Created {
            physical_id: name,
            attributes: role_attributes(&role),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("AssumeRolePolicyDocument") {
            let trust = document_of(p, "AssumeRolePolicyDocument").ok_or_else(|| {
                invalid(
                    "iam:UpdateAssumeRolePolicy",
                    "AssumeRolePolicyDocument is required",
                )
            })?;
            self.set_trust(name, &trust).await?;
        }
        if changed("Description") || changed("MaxSessionDuration") {
            self.set_settings(name, p).await?;
        }
        if changed("PermissionsBoundary") {
            self.set_boundary(name, str_of(p, "PermissionsBoundary"))
                .await?;
        }
        if changed("ManagedPolicyArns") {
            let have = self.attached(name).await?;
            self.sync_managed(name, &strs_of(p, "ManagedPolicyArns"), &have)
                .await?;
        }
        if changed("Policies") {
            let want = inline_policies(p, "iam:PutRolePolicy")?;
            let have = self.inline_names(name).await?;
            self.sync_inline(name, &want, &have).await?;
        }
        crate::tags::sync_update(&IamTags(&self.c), name, &req).await?;
        let role = self.get(name).await?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                "iam:GetRole",
                format!("{name}: the role no longer exists"),
            )
        })?;
        Ok(role_attributes(&role))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        // IAM deletes no role that still has policies: detach the managed
        // ones and delete the inline ones first.
        let attached = match self.attached(name).await {
            Ok(a) => a,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for arn in &attached {
            self.detach(name, arn).await?;
        }
        let inline = match self.inline_names(name).await {
            Ok(n) => n,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for policy in &inline {
            self.delete_inline(name, policy).await?;
        }
        wait::deleted(self.schema.deadlines.gone, || async {
            self.c
                .iam
                .delete_role()
                .role_name(name)
                .send()
                .call(&self.c, name)
                .await
        })
        .await
    }

    /// Through the batch read, which carries every role's tags: a call
    /// per 1,000 roles of the account, not one per role.
    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        Ok(self
            .details()
            .await?
            .into_iter()
            .filter_map(|(name, d)| {
                let logical_id =
                    crate::tagging::owned_by(d.tags().iter().map(|t| (t.key(), t.value())), owner)?;
                Some(Found {
                    logical_id,
                    physical_id: name,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_fit_and_are_stable() {
        let tags: BTreeMap<String, String> = [
            (TAG_STACK.to_string(), "fastcart".to_string()),
            (TAG_ENV.to_string(), "staging".to_string()),
        ]
        .into();
        let token = "0123456789abcdef0123456789abcdef";
        let a = generated_name("TaskRole", &tags, token, 64);
        assert_eq!(a, "fastcart-staging-TaskRole-0123456789AB");
        assert_eq!(a, generated_name("TaskRole", &tags, token, 64));
        let long = generated_name(&"X".repeat(100), &tags, token, 64);
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-0123456789AB"));
    }

    #[test]
    fn inline_policies_take_objects_or_text() {
        let p: Props = serde_json::from_value(json!({"Policies": [
            {"PolicyName": "a", "PolicyDocument": {"Version": "2012-10-17"}},
            {"PolicyName": "b", "PolicyDocument": "{\"Version\":\"2012-10-17\"}"}
        ]}))
        .unwrap();
        let got = inline_policies(&p, "iam:PutRolePolicy").unwrap();
        assert_eq!(
            got.get("a").map(String::as_str),
            Some("{\"Version\":\"2012-10-17\"}")
        );
        assert_eq!(
            got.get("b").map(String::as_str),
            Some("{\"Version\":\"2012-10-17\"}")
        );
    }
}
