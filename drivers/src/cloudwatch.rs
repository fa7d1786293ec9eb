//! `AWS::CloudWatch::Alarm` (metric alarms on one metric; metric math is not
//! supported).
//!
//! `PutMetricAlarm` creates and replaces an alarm whole, so an update sends
//! every property again. It takes tags only when it creates: updates go
//! through `TagResource`. `read` asks `DescribeAlarms` for up to 100 names a
//! call; tags (`ListTagsForResource`) take one call per alarm, made only for
//! alarms whose applied properties set `Tags`. Alarms change synchronously.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, StandardUnit, Statistic, Tag,
};
use fastcart_engine::{
    CloudContext, CreateRequest, Created, Driver, DriverError, Found, Observed, Ownership,
    ResourceHandle, TypeSchema, UpdateRequest, ValueKind, TAG_LOGICAL_ID,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::invalid;
use crate::props::{
    all_tags, bool_of, float_of, i32_of, need_str, str_of, strs_of, tags_value, Obs, Props,
};
use crate::sdk::Clients;
use crate::tags::{self, Limited, TagApi};

/// `DescribeAlarms` takes at most 100 names.
const NAMES_PER_CALL: usize = 100;

/// Per-alarm tag reads in flight at once.
const READS_IN_FLIGHT: usize = 4;

/// Alarms in the tagging API.
pub const ALARM_TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "cloudwatch:alarm",
    arn: "cloudwatch:alarm:",
    id: alarm_name,
};

fn alarm_name(arn: &str) -> Option<String> {
    crate::tagging::after_colon(arn, "alarm")
}

pub struct Alarm {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Alarm {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::CloudWatch::Alarm")
            .length("Dimensions/*/Name", 1, 255)
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("AlarmDescription", 0, 1024)
            .length("AlarmName", 0, 255)
            .one_of(
                "ComparisonOperator",
                &[
                    "GreaterThanOrEqualToThreshold",
                    "GreaterThanThreshold",
                    "GreaterThanUpperThreshold",
                    "LessThanLowerOrGreaterThanUpperThreshold",
                    "LessThanLowerThreshold",
                    "LessThanOrEqualToThreshold",
                    "LessThanThreshold",
                ],
            )
            .range("DatapointsToAlarm", Some(1.0), None)
            .length("EvaluateLowSampleCountPercentile", 1, 255)
            .range("EvaluationPeriods", Some(1.0), None)
            .length("MetricName", 1, 255)
            .length("Namespace", 1, 255)
            .pattern("Namespace", "^[^:]")
            .range("Period", Some(1.0), None)
            .one_of(
                "Statistic",
                &["Average", "Maximum", "Minimum", "SampleCount", "Sum"],
            )
            .one_of(
                "TreatMissingData",
                &["breaching", "ignore", "missing", "notBreaching"],
            )
            .length("TreatMissingData", 1, 255)
            .one_of(
                "Unit",
                &[
                    "Bits",
                    "Bits/Second",
                    "Bytes",
                    "Bytes/Second",
                    "Count",
                    "Count/Second",
                    "Gigabits",
                    "Gigabits/Second",
                    "Gigabytes",
                    "Gigabytes/Second",
                    "Kilobits",
                    "Kilobits/Second",
                    "Kilobytes",
                    "Kilobytes/Second",
                    "Megabits",
                    "Megabits/Second",
                    "Megabytes",
                    "Megabytes/Second",
                    "Microseconds",
                    "Milliseconds",
                    "None",
                    "Percent",
                    "Seconds",
                    "Terabits",
                    "Terabits/Second",
                    "Terabytes",
                    "Terabytes/Second",
                ],
            )
            // Required here (AWS would make one up): the fixed name is what
            // finds the alarm again and orders a replacement.
            .required("AlarmName")
            .fixed_name("AlarmName")
            .prop("AlarmDescription")
            .prop("Namespace")
            .prop("MetricName")
            .kind("Dimensions", ValueKind::UnorderedList)
            .prop("Statistic")
            .prop("ExtendedStatistic")
            .prop("Period")
            // PutMetricAlarm cannot do without these two.
            .required("EvaluationPeriods")
            .required("ComparisonOperator")
            .prop("DatapointsToAlarm")
            .prop("Threshold")
            .prop("TreatMissingData")
            .prop("EvaluateLowSampleCountPercentile")
            .prop("ActionsEnabled")
            .kind("AlarmActions", ValueKind::UnorderedList)
            .kind("OKActions", ValueKind::UnorderedList)
            .kind("InsufficientDataActions", ValueKind::UnorderedList)
            .prop("Unit")
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::Limits {
                value_min: Some(1),
                ..tags::LIMITS
            })
            .attribute("Arn")
            .typical_duration(Duration::from_secs(1));
        Alarm { c, schema }
    }

    /// The metric alarms among `names` that exist, by name: one
    /// `DescribeAlarms` per page of up to 100 names.
    async fn describe(&self, names: &[&str]) -> Result<HashMap<String, MetricAlarm>, DriverError> {
        crate::batch::describe(
            names,
            NAMES_PER_CALL,
            |chunk| {
                self.c
                    .cloudwatch
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.iter().map(|n| n.to_string()).collect()))
                    .into_paginator()
                    .send()
            },
            |page| page.metric_alarms(),
            |a| a.alarm_name(),
        )
        .await
    }

    async fn read_one(
        &self,
        h: &ResourceHandle,
        a: Option<&MetricAlarm>,
    ) -> Result<Option<Observed>, DriverError> {
        let Some(a) = a else {
            return Ok(None);
        };
        let mut o = observe(a);
        // One more call per alarm, only where the stack sets Tags.
        if h.properties.contains_key("Tags") {
            if let Some(arn) = a.alarm_arn() {
                let tags = crate::tags::read(&self.c, &CwTags(&self.c), arn, arn).await?;
                o = o.prop("Tags", Some(tags_value(tags)));
            }
        }
        Ok(Some(o.done()))
    }

    /// `PutMetricAlarm` with every property the stack sets.
    fn put(&self, p: &Props, name: &str) -> Result<PutMetricAlarmFluentBuilder, DriverError> {
        let op = "cloudwatch:PutMetricAlarm";
        let evaluation_periods = i32_of(p, "EvaluationPeriods")
            .ok_or_else(|| invalid(op, format!("{name}: EvaluationPeriods must be a number")))?;
        let comparison = need_str(p, "ComparisonOperator", op)?;
        let own = |k: &str| str_of(p, k).map(String::from);
        Ok(self
            .c
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .set_alarm_description(own("AlarmDescription"))
            .set_namespace(own("Namespace"))
            .set_metric_name(own("MetricName"))
            .set_dimensions(Some(dimensions_of(p)))
            .set_statistic(str_of(p, "Statistic").map(Statistic::from))
            .set_extended_statistic(own("ExtendedStatistic"))
            .set_period(i32_of(p, "Period"))
            .evaluation_periods(evaluation_periods)
            .set_datapoints_to_alarm(i32_of(p, "DatapointsToAlarm"))
            .set_threshold(float_of(p, "Threshold"))
            .comparison_operator(ComparisonOperator::from(comparison))
            .set_treat_missing_data(own("TreatMissingData"))
            .set_evaluate_low_sample_count_percentile(own("EvaluateLowSampleCountPercentile"))
            .set_actions_enabled(bool_of(p, "ActionsEnabled"))
            .set_alarm_actions(Some(strs_of(p, "AlarmActions")))
            .set_ok_actions(Some(strs_of(p, "OKActions")))
            .set_insufficient_data_actions(Some(strs_of(p, "InsufficientDataActions")))
            .set_unit(str_of(p, "Unit").map(StandardUnit::from)))
    }
}

fn dimensions_of(p: &Props) -> Vec<Dimension> {
    let Some(Value::Array(items)) = p.get("Dimensions") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|d| {
            let text = |k: &str| {
                d.get(k).and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
            };
            Dimension::builder()
                .set_name(text("Name"))
                .set_value(text("Value"))
                .build()
        })
        .collect()
}

/// CloudWatch's tag calls, by the alarm's ARN.
struct CwTags<'a>(&'a Clients);

impl TagApi for CwTags<'_> {
    const PER_CALL: usize = 50;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .cloudwatch
            .tag_resource()
            .resource_arn(arn)
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
            .cloudwatch
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

fn cw_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A number as JSON: whole numbers without a fraction, so that a stack's
/// `"60000"` compares equal.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn alarm_arn(ctx: &CloudContext, name: &str) -> String {
    format!(
        "arn:{}:cloudwatch:{}:{}:alarm:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

fn observe(a: &MetricAlarm) -> Obs {
    let strings = |v: &[String]| Value::from(v.to_vec());
    Obs::new()
        .prop("AlarmName", a.alarm_name())
        .prop("AlarmDescription", a.alarm_description())
        .prop("Namespace", a.namespace())
        .prop("MetricName", a.metric_name())
        .prop(
            "Dimensions",
            Some(Value::Array(
                a.dimensions()
                    .iter()
                    .map(|d| json!({ "Name": d.name(), "Value": d.value() }))
                    .collect(),
            )),
        )
        .prop("Statistic", a.statistic().map(|s| s.as_str()))
        .prop("ExtendedStatistic", a.extended_statistic())
        .prop("Period", a.period())
        .prop("EvaluationPeriods", a.evaluation_periods())
        .prop("DatapointsToAlarm", a.datapoints_to_alarm())
        .prop("Threshold", a.threshold().map(number))
        .prop(
            "ComparisonOperator",
            a.comparison_operator().map(|c| c.as_str()),
        )
        .prop("TreatMissingData", a.treat_missing_data())
        .prop(
            "EvaluateLowSampleCountPercentile",
            a.evaluate_low_sample_count_percentile(),
        )
        .prop("ActionsEnabled", a.actions_enabled())
        .prop("AlarmActions", Some(strings(a.alarm_actions())))
        .prop("OKActions", Some(strings(a.ok_actions())))
        .prop(
            "InsufficientDataActions",
            Some(strings(a.insufficient_data_actions())),
        )
        .prop("Unit", a.unit().map(|u| u.as_str()))
        .attr("Arn", a.alarm_arn())
}

#[async_trait]
impl Driver for Alarm {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let names: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let alarms = self.describe(&names).await?;
        crate::each::in_order(
            (handles
                .iter()
                .map(|h| self.read_one(h, alarms.get(&h.physical_id))))
            .collect::<Vec<_>>(),
            READS_IN_FLIGHT,
        )
        .await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let name = need_str(p, "AlarmName", "cloudwatch:PutMetricAlarm")?;
        let arn = alarm_arn(req.context, name);
        let tags = all_tags(p, req.tags);
        // PutMetricAlarm overwrites an alarm of the same name without a word:
        // look first, and take the alarm over only when it is this very
        // resource (a create retried after it went through).
        let existing = self.describe(&[name]).await?;
        if let Some(a) = existing.get(name) {
            let arn = a.alarm_arn().unwrap_or(arn.as_str()).to_string();
            // Asked afresh: this decides whether the name is ours.
            let theirs = CwTags(&self.c).list(&arn).await?;
            let ours = req
                .tags
                .iter()
                .filter(|(k, _)| k.starts_with("fastcart:"))
                .all(|(k, v)| theirs.get(k) == Some(v));
            if !ours || !req.tags.contains_key(TAG_LOGICAL_ID) {
                return Err(invalid(
                    "cloudwatch:PutMetricAlarm",
                    format!(
                        "{name}: an alarm of this name already exists and is not this resource's"
                    ),
                ));
            }
            self.put(p, name)?.send().call(&self.c, name).await?;
            crate::tags::sync(&CwTags(&self.c), &arn, &tags, &[]).await?;
        } else {
            self.put(p, name)?
                .set_tags(Some(cw_tags(&tags)))
                .send()
                .call(&self.c, name)
                .await?;
        }
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(arn));
        Ok(Created {
            physical_id: name.to_string(),
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        let arn = alarm_arn(req.context, name);
        let tags_only = req.changed.iter().all(|c| c == "Tags");
        if !tags_only {
            self.put(p, name)?.send().call(&self.c, name).await?;
        }
        crate::tags::sync_update(&CwTags(&self.c), &arn, &req).await?;
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(arn));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        let r = self
            .c
            .cloudwatch
            .delete_alarms()
            .alarm_names(name)
            .send()
            .call(&self.c, name)
            .await;
        crate::error::done_if_gone(r)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        crate::tagging::find(&self.c, owner, &ALARM_TAGGED).await
    }
}

#[cfg(test)]
mod tests {
    use super::number;
    use serde_json::json;

    #[test]
    fn whole_thresholds_read_as_integers() {
        assert_eq!(number(60000.0), json!(60000));
        assert_eq!(number(0.5), json!(0.5));
    }
}
