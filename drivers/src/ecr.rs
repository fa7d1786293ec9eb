//! `AWS::ECR::Repository`.
//!
//! `read` asks `DescribeRepositories` for all the wanted names at once (100
//! a call). That call fails as a whole with `RepositoryNotFoundException`
//! when one name is gone; only then does the driver fall back to one call
//! per name, to tell which. Tags (`ListTagsForResource`) and the lifecycle
//! policy (`GetLifecyclePolicy`) take one call per repository, made only for
//! repositories whose applied properties set them. ECR changes are
//! synchronous: nothing to wait for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
    Repository as AwsRepository, Tag,
};
use fastcart_engine::{
    CreateRequest, Created, Driver, DriverError, Found, Observed, Ownership, ResourceHandle,
    TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone, SdkResultExt};
use crate::props::{all_tags, bool_of, need_str, str_of, tags_value, Obs};
use crate::sdk::Clients;
use crate::tags::{self, Limited};

/// `DescribeRepositories` takes at most 100 names.
const NAMES_PER_CALL: usize = 100;

/// Per-repository reads in flight at once.
const READS_IN_FLIGHT: usize = 4;

pub struct Repository {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Repository {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ECR::Repository")
            .one_of("EncryptionConfiguration/EncryptionType", &["AES256", "KMS", "KMS_DSSE"])
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .one_of("ImageTagMutability", &["MUTABLE", "IMMUTABLE", "MUTABLE_WITH_EXCLUSION", "IMMUTABLE_WITH_EXCLUSION"])
            .length("RepositoryName", 2, 256)
            .pattern("RepositoryName", r#"^(?=.{2,256}$)([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)$"#)
            .guard(
                "ImageScanningConfiguration",
                fastcart_engine::Guard::Protection,
            )
            .guard(
                "EncryptionConfiguration",
                fastcart_engine::Guard::Protection,
            )
            // Required here (AWS would make one up): the fixed name is what
            // finds the repository again and orders a replacement.
            .required("RepositoryName")
            .fixed_name("RepositoryName")
            .prop("ImageScanningConfiguration")
            .prop("ImageTagMutability")
            .create_only("EncryptionConfiguration")
            // Only decides how delete goes: AWS never reports it.
            .write_only("EmptyOnDelete")
            .prop("LifecyclePolicy")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::Limits { key_max: 127, value_min: Some(1), value_max: 255, ..tags::LIMITS })
            .attribute("Arn")
            .attribute("RepositoryUri")
            .typical_duration(Duration::from_secs(1));
        Repository { c, schema }
    }

    /// One `DescribeRepositories` for `names` (all of which must exist).
    async fn describe_names(&self, names: &[&str]) -> Result<Vec<AwsRepository>, DriverError> {
        let mut out = Vec::new();
        let target = names.join(",");
        let mut pages = self
            .c
            .ecr
            .describe_repositories()
            .set_repository_names(Some(names.iter().map(|n| n.to_string()).collect()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            out.extend(page.op(&target)?.repositories().iter().cloned());
        }
        Ok(out)
    }

    /// The repositories among `names` that exist, by name.
    async fn describe(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, AwsRepository>, DriverError> {
        let mut found = HashMap::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let repos = match self.describe_names(chunk).await {
                Ok(repos) => repos,
                // One missing name fails the whole call: ask name by name to
                // learn which are still there.
                Err(e) if is_gone(&e) => {
                    let mut repos = Vec::new();
                    for &n in chunk {
                        match self.describe_names(&[n]).await {
                            Ok(r) => repos.extend(r),
                            Err(e) if is_gone(&e) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    repos
                }
                Err(e) => return Err(e),
            };
            for r in repos {
                if let Some(n) = r.repository_name().map(String::from) {
                    found.insert(n, r);
                }
            }
        }
        Ok(found)
    }

    /// The lifecycle policy in CloudFormation's shape; `None` when there is
    /// none.
    async fn lifecycle_policy(&self, name: &str) -> Result<Option<Value>, DriverError> {
        let r = self
            .c
            .ecr
            .get_lifecycle_policy()
            .repository_name(name)
            .send()
            .call(&self.c, name)
            .await;
        match r {
            Ok(out) => {
                let mut v = Map::new();
                if let Some(text) = out.lifecycle_policy_text() {
                    v.insert("LifecyclePolicyText".into(), Value::String(text.into()));
                }
                if let Some(id) = out.registry_id() {
                    v.insert("RegistryId".into(), Value::String(id.into()));
                }
                Ok(Some(Value::Object(v)))
            }
            // LifecyclePolicyNotFoundException (or the repository just went).
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn observe(
        &self,
        h: &ResourceHandle,
        r: &AwsRepository,
    ) -> Result<Observed, DriverError> {
        let name = h.physical_id.as_str();
        let arn = r.repository_arn().unwrap_or_default();
        let mut o = Obs::new()
            .prop("RepositoryName", r.repository_name())
            .prop(
                "ImageTagMutability",
                r.image_tag_mutability().map(|m| m.as_str()),
            )
            .prop(
                "ImageScanningConfiguration",
                r.image_scanning_configuration()
                    .map(|s| json!({ "ScanOnPush": s.scan_on_push() })),
            )
            .prop(
                "EncryptionConfiguration",
                r.encryption_configuration().map(|e| {
                    let mut v = Map::new();
                    v.insert(
                        "EncryptionType".into(),
                        Value::String(e.encryption_type().as_str().into()),
                    );
                    if let Some(k) = e.kms_key() {
                        v.insert("KmsKey".into(), Value::String(k.into()));
                    }
                    Value::Object(v)
                }),
            )
            .attr("Arn", r.repository_arn())
            .attr("RepositoryUri", r.repository_uri());
        if h.properties.contains_key("LifecyclePolicy") {
            o = o.prop("LifecyclePolicy", self.lifecycle_policy(name).await?);
        }
        if h.properties.contains_key("Tags") {
            let tags = crate::tags::read(&self.c, &EcrTags(&self.c), arn, arn).await?;
            o = o.prop("Tags", Some(tags_value(tags)));
        }
        Ok(o.done())
    }

    async fn put_lifecycle_policy(&self, name: &str, text: &str) -> Result<(), DriverError> {
        self.c
            .ecr
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(text)
            .send()
            .call(&self.c, name)
            .await?;
        Ok(())
    }
}

/// `ImageScanningConfiguration.ScanOnPush`, when given.
fn scan_on_push(p: &Map<String, Value>) -> Option<bool> {
    match p.get("ImageScanningConfiguration")?.get("ScanOnPush")? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn scanning(on: bool) -> ImageScanningConfiguration {
    ImageScanningConfiguration::builder()
        .scan_on_push(on)
        .build()
}

fn encryption_of(
    p: &Map<String, Value>,
    op: &str,
) -> Result<Option<EncryptionConfiguration>, DriverError> {
    let Some(v) = p.get("EncryptionConfiguration").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = v
        .get("EncryptionType")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                op,
                "EncryptionConfiguration.EncryptionType must be a string",
            )
        })?;
    EncryptionConfiguration::builder()
        .encryption_type(EncryptionType::from(kind))
        .set_kms_key(v.get("KmsKey").and_then(Value::as_str).map(String::from))
        .build()
        .map(Some)
        .map_err(|e| invalid(op, e.to_string()))
}

/// `LifecyclePolicy.LifecyclePolicyText`, when given (a JSON object is taken
/// too, as its text).
fn lifecycle_text(p: &Map<String, Value>) -> Option<String> {
    match p.get("LifecyclePolicy")?.get("LifecyclePolicyText")? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn ecr_tags(tags: &BTreeMap<String, String>, op: &str) -> Result<Vec<Tag>, DriverError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| invalid(op, e.to_string()))
        })
        .collect()
}

/// ECR's tag calls, by repository ARN.
struct EcrTags<'a>(&'a Clients);

impl crate::tags::TagApi for EcrTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .ecr
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        let op = "ecr:TagResource";
        let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
        self.0
            .ecr
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecr_tags(&tags, op)?))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .ecr
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

fn attributes(r: Option<&AwsRepository>) -> Map<String, Value> {
    let mut a = Map::new();
    if let Some(r) = r {
        if let Some(arn) = r.repository_arn() {
            a.insert("Arn".into(), Value::String(arn.into()));
        }
        if let Some(uri) = r.repository_uri() {
            a.insert("RepositoryUri".into(), Value::String(uri.into()));
        }
    }
    a
}

#[async_trait]
impl Driver for Repository {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let names: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let repos = self.describe(&names).await?;
        crate::each::in_order(
            (handles.iter().map(|h| {
                let r = repos.get(&h.physical_id);
                async move {
                    match r {
                        Some(r) => self.observe(h, r).await.map(Some),
                        None => Ok(None),
                    }
                }
            }))
            .collect::<Vec<_>>(),
            READS_IN_FLIGHT,
        )
        .await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "ecr:CreateRepository";
        let name = need_str(p, "RepositoryName", op)?;
        let mut call = self
            .c
            .ecr
            .create_repository()
            .repository_name(name)
            .set_tags(Some(ecr_tags(&all_tags(p, req.tags), op)?))
            .set_image_tag_mutability(str_of(p, "ImageTagMutability").map(ImageTagMutability::from))
            .set_encryption_configuration(encryption_of(p, op)?);
        if let Some(on) = scan_on_push(p) {
            call = call.image_scanning_configuration(scanning(on));
        }
        let out = call.send().call(&self.c, name).await?;
        if let Some(text) = lifecycle_text(p) {
            self.put_lifecycle_policy(name, &text).await?;
        }
        Ok(Created {
            physical_id: name.to_string(),
            attributes: attributes(out.repository()),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("ImageTagMutability") {
            let m = str_of(p, "ImageTagMutability").unwrap_or("MUTABLE");
            self.c
                .ecr
                .put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::from(m))
                .send()
                .call(&self.c, name)
                .await?;
        }
        if changed("ImageScanningConfiguration") {
            self.c
                .ecr
                .put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(scanning(scan_on_push(p).unwrap_or(false)))
                .send()
                .call(&self.c, name)
                .await?;
        }
        if changed("LifecyclePolicy") {
            match lifecycle_text(p) {
                Some(text) => self.put_lifecycle_policy(name, &text).await?,
                None => {
                    let r = self
                        .c
                        .ecr
                        .delete_lifecycle_policy()
                        .repository_name(name)
                        .send()
                        .call(&self.c, name)
                        .await;
                    match r {
                        Err(e) if !is_gone(&e) => return Err(e),
                        _ => {}
                    }
                }
            }
        }

        let repos = self.describe_names(&[name]).await?;
        let repo = repos.first();
        let arn = repo
            .and_then(|r| r.repository_arn())
            .unwrap_or_default()
            .to_string();
        crate::tags::sync_update(&EcrTags(&self.c), &arn, &req).await?;
        Ok(attributes(repo))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        // EmptyOnDelete: delete the images with the repository; without it
        // a repository holding images is refused (RepositoryNotEmpty).
        let force = bool_of(&h.properties, "EmptyOnDelete").unwrap_or(false);
        let r = self
            .c
            .ecr
            .delete_repository()
            .repository_name(name)
            .force(force)
            .send()
            .call(&self.c, name)
            .await;
        crate::error::done_if_gone(r)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        // The tagging API does not cover ECR repositories (moto), and
        // DescribeRepositories carries no tags: list them all, then ask each.
        let mut repos: Vec<(String, String)> = Vec::new();
        let mut pages = self.c.ecr.describe_repositories().into_paginator().send();
        while let Some(page) = pages.next().await {
            for r in page.op("repositories")?.repositories() {
                if let (Some(n), Some(a)) = (r.repository_name(), r.repository_arn()) {
                    repos.push((n.to_string(), a.to_string()));
                }
            }
        }
        let tagged: Vec<Option<Found>> = crate::each::in_order(
            (repos.into_iter().map(|(name, arn)| async move {
                match crate::tags::read(&self.c, &EcrTags(&self.c), &arn, &arn).await {
                    Ok(tags) => Ok(crate::tagging::owned_by(
                        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        owner,
                    )
                    .map(|logical_id| Found {
                        logical_id,
                        physical_id: name,
                    })),
                    // Deleted since it was listed.
                    Err(e) if is_gone(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }))
            .collect::<Vec<_>>(),
            READS_IN_FLIGHT,
        )
        .await?;
        Ok(tagged.into_iter().flatten().collect())
    }
}
