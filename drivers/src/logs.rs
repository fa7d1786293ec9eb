//! `AWS::Logs::LogGroup`.
//!
//! `DescribeLogGroups` takes one name prefix, not a list of names: `read`
//! asks for the longest prefix all the wanted names share (one call per page
//! of 50 groups) and picks its groups out of the answer. Tags come from
//! `ListTagsForResource`, one call per group, only for groups whose applied
//! properties set `Tags`. CloudWatch Logs changes take effect at once: there
//! is nothing to wait for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::{LogGroup as AwsLogGroup, LogGroupClass};
use fastcart_engine::{
    CloudContext, CreateRequest, Created, Driver, DriverError, Found, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{Map, Value};

use crate::call::Call;
use crate::error::SdkResultExt;
use crate::props::{all_tags, i32_of, need_str, str_of, tags_value, Obs};
use crate::sdk::Clients;
use crate::tags::{self, Limited};

/// Per-group tag reads in flight at once.
const READS_IN_FLIGHT: usize = 4;

/// Log groups in the tagging API. The whole service is the type filter: AWS
/// calls the type `logs:log-group`, moto `logs:loggroup`; only log-group
/// ARNs map to a name.
pub const LOG_GROUP_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "logs",
    arn: "logs:log-group:",
    id: group_name,
};

fn group_name(arn: &str) -> Option<String> {
    crate::tagging::after_colon(arn, "log-group").map(|n| n.trim_end_matches(":*").to_string())
}

pub struct LogGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl LogGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::Logs::LogGroup")
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("KmsKeyId", 0, 256)
            .pattern(
                "KmsKeyId",
                r#"^arn:[a-z0-9-]+:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+\Z"#,
            )
            .one_of(
                "LogGroupClass",
                &["STANDARD", "INFREQUENT_ACCESS", "DELIVERY"],
            )
            .length("LogGroupName", 1, 512)
            .pattern("LogGroupName", r#"^[.\-_/#A-Za-z0-9]{1,512}\Z"#)
            .one_of(
                "RetentionInDays",
                &[
                    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                    2192, 2557, 2922, 3288, 3653,
                ],
            )
            .guard("KmsKeyId", fastcart_engine::Guard::Protection)
            // Required here (AWS would make one up): the fixed name is what
            // finds the group again and orders a replacement.
            .required("LogGroupName")
            .fixed_name("LogGroupName")
            .prop("RetentionInDays")
            .prop("KmsKeyId")
            .create_only("LogGroupClass")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::LIMITS)
            .attribute("Arn")
            .typical_duration(Duration::from_secs(1));
        LogGroup { c, schema }
    }

    /// The groups named `names`, by name: one `DescribeLogGroups` per page,
    /// filtered by the names' longest common prefix.
    async fn describe(&self, names: &[&str]) -> Result<HashMap<String, AwsLogGroup>, DriverError> {
        let mut found = HashMap::new();
        if names.is_empty() {
            return Ok(found);
        }
        let wanted: HashSet<&str> = names.iter().copied().collect();
        let prefix = common_prefix(names);
        let target = if prefix.is_empty() {
            "all log groups".to_string()
        } else {
            format!("log groups named {prefix}*")
        };
        let mut pages = self
            .c
            .logs
            .describe_log_groups()
            .set_log_group_name_prefix((!prefix.is_empty()).then(|| prefix.clone()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for g in page.op(&target)?.log_groups() {
                if let Some(n) = g.log_group_name().filter(|n| wanted.contains(n)) {
                    found.insert(n.to_string(), g.clone());
                }
            }
        }
        Ok(found)
    }

    async fn observe(&self, h: &ResourceHandle, g: &AwsLogGroup) -> Result<Observed, DriverError> {
        let name = h.physical_id.as_str();
        let mut o = Obs::new()
            .prop("LogGroupName", g.log_group_name())
            .prop("RetentionInDays", g.retention_in_days())
            .prop("KmsKeyId", g.kms_key_id())
            .prop("LogGroupClass", g.log_group_class().map(|c| c.as_str()))
            .attr("Arn", Some(cfn_arn(g, name)));
        if h.properties.contains_key("Tags") {
            o = o.prop(
                "Tags",
                Some(tags_value({
                    let arn = tagging_arn(g, name);
                    crate::tags::read(&self.c, &LogsTags(&self.c), &arn, &arn).await?
                })),
            );
        }
        Ok(o.done())
    }
}

/// CloudWatch Logs' tag calls, by the group's ARN without its `:*`.
struct LogsTags<'a>(&'a Clients);

impl crate::tags::TagApi for LogsTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tags()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .logs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags.iter().cloned().collect()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .logs
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

/// The longest prefix all names share, cut back to a character boundary.
fn common_prefix(names: &[&str]) -> String {
    let Some(first) = names.first() else {
        return String::new();
    };
    let mut end = first.len();
    for n in names {
        end = first
            .bytes()
            .zip(n.bytes())
            .take(end)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    first[..end].to_string()
}

/// The ARN tags are set on: without the `:*` that `DescribeLogGroups`'
/// `arn` carries (moto finds tags only this way; AWS takes it too).
fn tagging_arn(g: &AwsLogGroup, name: &str) -> String {
    g.log_group_arn()
        .map(String::from)
        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
        .unwrap_or_else(|| name.to_string())
}

/// The `Arn` CloudFormation returns: the group ARN ending in `:*`.
fn cfn_arn(g: &AwsLogGroup, name: &str) -> String {
    match g.arn() {
        Some(a) if a.ends_with(":*") => a.to_string(),
        _ => format!("{}:*", tagging_arn(g, name)),
    }
}

fn group_arn(ctx: &CloudContext, name: &str) -> String {
    format!(
        "arn:{}:logs:{}:{}:log-group:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

fn attributes(ctx: &CloudContext, name: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert(
        "Arn".into(),
        Value::String(format!("{}:*", group_arn(ctx, name))),
    );
    a
}

#[async_trait]
impl Driver for LogGroup {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let names: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let groups = self.describe(&names).await?;
        crate::each::observed(handles, &groups, READS_IN_FLIGHT, |h, x| self.observe(h, x)).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let name = need_str(p, "LogGroupName", "logs:CreateLogGroup")?;
        let tags: HashMap<String, String> = all_tags(p, req.tags).into_iter().collect();
        self.c
            .logs
            .create_log_group()
            .log_group_name(name)
            .set_kms_key_id(str_of(p, "KmsKeyId").map(String::from))
            .set_log_group_class(str_of(p, "LogGroupClass").map(LogGroupClass::from))
            .set_tags(Some(tags))
            .send()
            .call(&self.c, name)
            .await?;
        if let Some(days) = i32_of(p, "RetentionInDays") {
            self.c
                .logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days)
                .send()
                .call(&self.c, name)
                .await?;
        }
        Ok(Created {
            physical_id: name.to_string(),
            attributes: attributes(req.context, name),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        if changed("RetentionInDays") {
            match i32_of(p, "RetentionInDays") {
                Some(days) => {
                    self.c
                        .logs
                        .put_retention_policy()
                        .log_group_name(name)
                        .retention_in_days(days)
                        .send()
                        .call(&self.c, name)
                        .await?;
                }
                None => {
                    self.c
                        .logs
                        .delete_retention_policy()
                        .log_group_name(name)
                        .send()
                        .call(&self.c, name)
                        .await?;
                }
            }
        }
        if changed("KmsKeyId") {
            match str_of(p, "KmsKeyId") {
                Some(key) => {
                    self.c
                        .logs
                        .associate_kms_key()
                        .log_group_name(name)
                        .kms_key_id(key)
                        .send()
                        .call(&self.c, name)
                        .await?;
                }
                None => {
                    self.c
                        .logs
                        .disassociate_kms_key()
                        .log_group_name(name)
                        .send()
                        .call(&self.c, name)
                        .await?;
                }
            }
        }
        crate::tags::sync_update(&LogsTags(&self.c), &group_arn(req.context, name), &req).await?;
        Ok(attributes(req.context, name))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        let r = self
            .c
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
            .call(&self.c, name)
            .await;
        crate::error::done_if_gone(r)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &LOG_GROUP_TAGGED).await
    }
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn longest_common_prefix() {
        assert_eq!(
            common_prefix(&["/app/a-x", "/app/b-x", "/app/a-y"]),
            "/app/"
        );
        assert_eq!(common_prefix(&["one"]), "one");
        assert_eq!(common_prefix(&["abc", "xyz"]), "");
        assert_eq!(common_prefix(&[]), "");
        assert_eq!(common_prefix(&["é1", "é2"]), "é");
        assert_eq!(common_prefix(&["ab", "a"]), "a");
    }
}
