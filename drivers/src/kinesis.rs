//! `AWS::Kinesis::Stream`.
//!
//! Kinesis has no call that describes many streams: `read` asks
//! `DescribeStreamSummary` once per stream (a few at a time), and
//! `ListTagsForStream` only for streams whose applied properties set `Tags`.
//! Every change puts the stream in `UPDATING` for a while; the driver waits
//! for `ACTIVE` after each one, since Kinesis refuses the next change until
//! then.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::types::{
    EncryptionType, MetricsName, ScalingType, StreamDescriptionSummary, StreamMode,
    StreamModeDetails,
};
use fastcart_engine::{
    CreateRequest, Created, Driver, DriverError, Found, Observed, Ownership, ResourceHandle,
    TypeSchema, UpdateRequest, ValueKind,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::{invalid, is_gone};
use crate::props::{all_tags, i32_of, need_str, strs_of, tags_value, Obs};
use crate::sdk::Clients;
use crate::tags::{self, Limited, TagApi};
use crate::wait;

/// Per-stream reads in flight at once (`DescribeStreamSummary` allows 20
/// per second per account).
const READS_IN_FLIGHT: usize = 4;

/// `CreateStream` takes at most 50 tags.
const TAGS_AT_CREATE: usize = 50;

/// The shard-level metrics Kinesis can publish (AWS's schema's
/// `EnhancedMetric`).
const SHARD_METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
    "ALL",
];

/// A retention period Kinesis gives a stream that sets none.
const DEFAULT_RETENTION_HOURS: i32 = 24;

/// Kinesis's tag calls, by stream name: ten tags a call.
struct KinesisTags<'a>(&'a Clients);

impl TagApi for KinesisTags<'_> {
    const PER_CALL: usize = 10;

    /// `ListTagsForStream` pages by the last key seen; moto repeats that key
    /// at the top of the next page, which the map absorbs.
    async fn list(&self, name: &str) -> Result<crate::tags::Tags, DriverError> {
        let mut tags = BTreeMap::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .0
                .kinesis
                .list_tags_for_stream()
                .stream_name(name)
                .limit(50)
                .set_exclusive_start_tag_key(start.clone())
                .send()
                .call(self.0, name)
                .await?;
            for t in out.tags() {
                tags.insert(
                    t.key().to_string(),
                    t.value().unwrap_or_default().to_string(),
                );
            }
            let last = out.tags().last().map(|t| t.key().to_string());
            if !out.has_more_tags() || last.is_none() || last == start {
                return Ok(tags);
            }
            start = last;
        }
    }

    async fn tag(&self, name: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .kinesis
            .add_tags_to_stream()
            .stream_name(name)
            .set_tags(Some(tags.iter().cloned().collect()))
            .send()
            .call(self.0, name)
            .await?;
        Ok(())
    }

    async fn untag(&self, name: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .kinesis
            .remove_tags_from_stream()
            .stream_name(name)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, name)
            .await?;
        Ok(())
    }
}

pub struct Stream {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Stream {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::Kinesis::Stream")
            // A replacement loses what it holds: apply asks for --allow-replace.
            .holds_data()
            .one_of("StreamEncryption/EncryptionType", &["KMS"])
            .one_of("DesiredShardLevelMetrics/*", SHARD_METRICS)
            .one_of(
                "StreamModeDetails/StreamMode",
                &["ON_DEMAND", "PROVISIONED"],
            )
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("Name", 1, 128)
            .pattern("Name", "^[a-zA-Z0-9_.-]+$")
            .range("RetentionPeriodHours", Some(1.0), Some(8760.0))
            .range("ShardCount", Some(1.0), Some(100000.0))
            .guard("StreamEncryption", fastcart_engine::Guard::Protection)
            // A name is required here (AWS would make one up): a made-up name
            // could not be found again after a crash, and the fixed name
            // makes a replacement delete first.
            .required("Name")
            .fixed_name("Name")
            .prop("ShardCount")
            .prop("RetentionPeriodHours")
            .prop("StreamEncryption")
            .prop("StreamModeDetails")
            .prop("DesiredShardLevelMetrics")
            .kind("DesiredShardLevelMetrics", ValueKind::UnorderedList)
            .kind("Tags", ValueKind::Tags)
            .tag_limits(&tags::Limits {
                value_max: 255,
                ..tags::LIMITS
            })
            .attribute("Arn")
            .typical_duration(Duration::from_secs(30))
            .deadlines(Duration::from_secs(300), Duration::from_secs(600));
        Stream { c, schema }
    }

    /// The stream's summary; `None` when it does not exist.
    async fn summary(&self, name: &str) -> Result<Option<StreamDescriptionSummary>, DriverError> {
        let r = self
            .c
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .call(&self.c, name)
            .await;
        match r {
            Ok(out) => Ok(out.stream_description_summary().cloned()),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the stream is `ACTIVE`, and returns its summary then.
    async fn until_active(&self, name: &str) -> Result<StreamDescriptionSummary, DriverError> {
        wait::until(
            "kinesis:DescribeStreamSummary",
            &format!("stream {name} to become ACTIVE"),
            self.schema.deadlines.ready,
            || async {
                Ok(self
                    .summary(name)
                    .await?
                    .filter(|s| s.stream_status().as_str() == "ACTIVE"))
            },
        )
        .await
    }

    /// Sets the retention period, raising or lowering it from `current`,
    /// then waits for the stream to settle.
    async fn set_retention(&self, name: &str, current: i32, hours: i32) -> Result<(), DriverError> {
        if hours == current {
            return Ok(());
        }
        if hours > current {
            self.c
                .kinesis
                .increase_stream_retention_period()
                .stream_name(name)
                .retention_period_hours(hours)
                .send()
                .call(&self.c, name)
                .await?;
        } else {
            self.c
                .kinesis
                .decrease_stream_retention_period()
                .stream_name(name)
                .retention_period_hours(hours)
                .send()
                .call(&self.c, name)
                .await?;
        }
        self.until_active(name).await?;
        Ok(())
    }

    async fn start_encryption(&self, name: &str, kind: &str, key: &str) -> Result<(), DriverError> {
        self.c
            .kinesis
            .start_stream_encryption()
            .stream_name(name)
            .encryption_type(EncryptionType::from(kind))
            .key_id(key)
            .send()
            .call(&self.c, name)
            .await?;
        self.until_active(name).await?;
        Ok(())
    }

    async fn stop_encryption(&self, name: &str, kind: &str, key: &str) -> Result<(), DriverError> {
        self.c
            .kinesis
            .stop_stream_encryption()
            .stream_name(name)
            .encryption_type(EncryptionType::from(kind))
            .key_id(key)
            .send()
            .call(&self.c, name)
            .await?;
        self.until_active(name).await?;
        Ok(())
    }

    async fn set_shard_count(&self, name: &str, count: i32) -> Result<(), DriverError> {
        self.c
            .kinesis
            .update_shard_count()
            .stream_name(name)
            .target_shard_count(count)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .call(&self.c, name)
            .await?;
        self.until_active(name).await?;
        Ok(())
    }

    /// Publishes the shard-level metrics `want` and no others, from the
    /// `current` ones: one call for those to add and one for those to drop,
    /// each waited out.
    async fn set_shard_metrics(
        &self,
        name: &str,
        current: &[String],
        want: &[String],
    ) -> Result<(), DriverError> {
        let metrics = |names: Vec<&String>| {
            names
                .into_iter()
                .map(|m| MetricsName::from(m.as_str()))
                .collect::<Vec<_>>()
        };
        let add = metrics(want.iter().filter(|m| !current.contains(m)).collect());
        let drop = metrics(current.iter().filter(|m| !want.contains(m)).collect());
        if !add.is_empty() {
            self.c
                .kinesis
                .enable_enhanced_monitoring()
                .stream_name(name)
                .set_shard_level_metrics(Some(add))
                .send()
                .call(&self.c, name)
                .await?;
            self.until_active(name).await?;
        }
        if !drop.is_empty() {
            self.c
                .kinesis
                .disable_enhanced_monitoring()
                .stream_name(name)
                .set_shard_level_metrics(Some(drop))
                .send()
                .call(&self.c, name)
                .await?;
            self.until_active(name).await?;
        }
        Ok(())
    }

    async fn read_one(&self, h: &ResourceHandle) -> Result<Option<Observed>, DriverError> {
        let name = h.physical_id.as_str();
        let Some(s) = self.summary(name).await? else {
            return Ok(None);
        };
        if s.stream_status().as_str() == "DELETING" {
            return Ok(None);
        }
        let mode = s
            .stream_mode_details()
            .map(|m| m.stream_mode().as_str().to_string());
        let mut o = Obs::new()
            .prop("Name", Some(s.stream_name()))
            .prop("RetentionPeriodHours", Some(s.retention_period_hours()))
            .attr("Arn", Some(s.stream_arn()));
        if let Some(m) = &mode {
            o = o.prop("StreamModeDetails", Some(json!({ "StreamMode": m })));
        }
        let metrics = shard_metrics(&s);
        if !metrics.is_empty() || h.properties.contains_key("DesiredShardLevelMetrics") {
            o = o.prop("DesiredShardLevelMetrics", Some(json!(metrics)));
        }
        // An on-demand stream's shard count is AWS's business, not a setting.
        if mode.as_deref() != Some("ON_DEMAND") {
            o = o.prop("ShardCount", Some(s.open_shard_count()));
        }
        if s.encryption_type().is_some_and(|t| t.as_str() != "NONE") {
            let mut enc = Map::new();
            enc.insert(
                "EncryptionType".into(),
                Value::String(
                    s.encryption_type()
                        .map(|t| t.as_str())
                        .unwrap_or("KMS")
                        .into(),
                ),
            );
            if let Some(k) = s.key_id() {
                enc.insert("KeyId".into(), Value::String(k.into()));
            }
            o = o.prop("StreamEncryption", Some(Value::Object(enc)));
        }
        // One more call per stream, only where the stack sets Tags and the
        // stack-wide tag search did not see them (on AWS it lists streams;
        // moto's does not).
        if h.properties.contains_key("Tags") {
            let tags =
                crate::tags::read(&self.c, &KinesisTags(&self.c), s.stream_arn(), name).await?;
            o = o.prop("Tags", Some(tags_value(tags)));
        }
        Ok(Some(o.done()))
    }
}

/// The shard-level metrics the stream publishes.
fn shard_metrics(s: &StreamDescriptionSummary) -> Vec<String> {
    s.enhanced_monitoring()
        .iter()
        .flat_map(|e| e.shard_level_metrics())
        .map(|m| m.as_str().to_string())
        .collect()
}

/// `StreamEncryption` as (type, key); `None` when absent.
fn encryption_of(
    p: &Map<String, Value>,
    op: &str,
) -> Result<Option<(String, String)>, DriverError> {
    let Some(v) = p.get("StreamEncryption").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = v
        .get("EncryptionType")
        .and_then(Value::as_str)
        .unwrap_or("KMS");
    let key = v.get("KeyId").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            op,
            "StreamEncryption.KeyId must be a string (a KMS key id, ARN or alias)",
        )
    })?;
    Ok(Some((kind.to_string(), key.to_string())))
}

/// `StreamModeDetails.StreamMode`, when given.
fn mode_of(p: &Map<String, Value>) -> Option<String> {
    p.get("StreamModeDetails")
        .and_then(|v| v.get("StreamMode"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn mode_details(mode: &str, op: &str) -> Result<StreamModeDetails, DriverError> {
    StreamModeDetails::builder()
        .stream_mode(StreamMode::from(mode))
        .build()
        .map_err(|e| invalid(op, e.to_string()))
}

#[async_trait]
impl Driver for Stream {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        // No batch describe in Kinesis: one DescribeStreamSummary per stream,
        // a few in flight, answers kept in the handles' order.
        crate::each::in_order(
            (handles.iter().map(|h| self.read_one(h))).collect::<Vec<_>>(),
            READS_IN_FLIGHT,
        )
        .await
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "kinesis:CreateStream";
        let name = need_str(p, "Name", op)?;
        let mode = mode_of(p);
        let on_demand = mode.as_deref() == Some("ON_DEMAND");
        let encryption = encryption_of(p, op)?;
        let tags = all_tags(p, req.tags);

        let mut call = self.c.kinesis.create_stream().stream_name(name);
        if let Some(m) = &mode {
            call = call.stream_mode_details(mode_details(m, op)?);
        }
        if !on_demand {
            call = call.shard_count(i32_of(p, "ShardCount").unwrap_or(1));
        }
        if tags.len() <= TAGS_AT_CREATE {
            call = call.set_tags(Some(tags.clone().into_iter().collect()));
        }
        call.send().call(&self.c, name).await.map_err(|mut e| {
            // The stream's name is taken: an earlier create of ours, perhaps,
            // which the engine adopts when it carries our ownership tags.
            if e.is_code("ResourceInUseException") {
                e.kind = fastcart_engine::ErrorKind::AlreadyExists;
            }
            e
        })?;
        let s = self.until_active(name).await?;

        // Tags again: some implementations (moto) ignore them on CreateStream,
        // and more than 50 do not fit there.
        crate::tags::sync(&KinesisTags(&self.c), name, &tags, &[]).await?;
        if let Some(hours) = i32_of(p, "RetentionPeriodHours") {
            self.set_retention(name, s.retention_period_hours(), hours)
                .await?;
        }
        if let Some((kind, key)) = encryption {
            self.start_encryption(name, &kind, &key).await?;
        }
        let metrics = strs_of(p, "DesiredShardLevelMetrics");
        self.set_shard_metrics(name, &shard_metrics(&s), &metrics)
            .await?;

        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(s.stream_arn().to_string()));
        Ok(Created {
            physical_id: name.to_string(),
            attributes,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let name = req.physical_id;
        let p = req.properties;
        let changed = |name: &str| crate::props::changed(&req, name);
        let mut s = self.until_active(name).await?;

        if changed("StreamModeDetails") {
            let want = mode_of(p).unwrap_or_else(|| "PROVISIONED".into());
            let have = s
                .stream_mode_details()
                .map(|m| m.stream_mode().as_str().to_string());
            if have.as_deref() != Some(want.as_str()) {
                self.c
                    .kinesis
                    .update_stream_mode()
                    .stream_arn(s.stream_arn())
                    .stream_mode_details(mode_details(&want, "kinesis:UpdateStreamMode")?)
                    .send()
                    .call(&self.c, name)
                    .await?;
                s = self.until_active(name).await?;
            }
        }

        let on_demand = mode_of(p).as_deref() == Some("ON_DEMAND");
        if changed("ShardCount") && !on_demand {
            let want = i32_of(p, "ShardCount").unwrap_or(1);
            if want != s.open_shard_count() {
                self.set_shard_count(name, want).await?;
            }
        }

        if changed("RetentionPeriodHours") {
            let want = i32_of(p, "RetentionPeriodHours").unwrap_or(DEFAULT_RETENTION_HOURS);
            self.set_retention(name, s.retention_period_hours(), want)
                .await?;
        }

        if changed("StreamEncryption") {
            let encrypted = s.encryption_type().is_some_and(|t| t.as_str() != "NONE");
            match encryption_of(p, "kinesis:StartStreamEncryption")? {
                Some((kind, key)) => self.start_encryption(name, &kind, &key).await?,
                None if encrypted => {
                    let kind = s.encryption_type().map(|t| t.as_str()).unwrap_or("KMS");
                    let key = s.key_id().unwrap_or_default();
                    self.stop_encryption(name, kind, key).await?;
                }
                None => {}
            }
        }

        // The summary read first still holds the metrics: nothing above
        // changes them.
        if changed("DesiredShardLevelMetrics") {
            let want = strs_of(p, "DesiredShardLevelMetrics");
            self.set_shard_metrics(name, &shard_metrics(&s), &want)
                .await?;
        }

        crate::tags::sync_update(&KinesisTags(&self.c), name, &req).await?;

        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(s.stream_arn().to_string()));
        Ok(attributes)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let name = h.physical_id.as_str();
        // ResourceInUse while the stream is still CREATING or UPDATING.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        wait::deleted(deadline.left(), || async {
            self.c
                .kinesis
                .delete_stream()
                .stream_name(name)
                .enforce_consumer_deletion(true)
                .send()
                .call(&self.c, name)
                .await
        })
        .await?;
        wait::until(
            "kinesis:DescribeStreamSummary",
            &format!("stream {name} to be deleted"),
            deadline.left(),
            || async { Ok(self.summary(name).await?.is_none().then_some(())) },
        )
        .await
    }

    async fn ready(&self, h: &ResourceHandle) -> Result<Option<Map<String, Value>>, DriverError> {
        let s = self.until_active(&h.physical_id).await?;
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(s.stream_arn().to_string()));
        Ok(Some(attributes))
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        // The tagging API does not cover Kinesis streams (moto), and
        // ListStreams carries no tags: list the names, then ask each one.
        let mut names: Vec<String> = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .c
                .kinesis
                .list_streams()
                .limit(100)
                .set_exclusive_start_stream_name(start.clone())
                .send()
                .call(&self.c, "streams")
                .await?;
            names.extend(out.stream_names().iter().cloned());
            let last = out.stream_names().last().cloned();
            if !out.has_more_streams() || last.is_none() || last == start {
                break;
            }
            start = last;
        }
        let tagged: Vec<(String, Option<BTreeMap<String, String>>)> = crate::each::in_order(
            (names.into_iter().map(|n| async move {
                match KinesisTags(&self.c).list(&n).await {
                    Ok(t) => Ok((n, Some(t))),
                    // Deleted since it was listed.
                    Err(e) if is_gone(&e) => Ok((n, None)),
                    Err(e) => Err(e),
                }
            }))
            .collect::<Vec<_>>(),
            READS_IN_FLIGHT,
        )
        .await?;
        Ok(tagged
            .into_iter()
            .filter_map(|(name, tags)| {
                let tags = tags?;
                let logical_id = crate::tagging::owned_by(
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    owner,
                )?;
                Some(Found {
                    logical_id,
                    physical_id: name,
                })
            })
            .collect())
    }
}
