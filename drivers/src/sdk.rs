//! SDK set-up in one place: the standard credential and region chain,
//! `AWS_ENDPOINT_URL` honoured (by `aws-config` itself), the standard retry
//! mode for calls safe to repeat and none for the others (`retry.rs`), a pacing token bucket per service for mutations, and a counter of
//! the requests sent (per service and operation) that tests and `--verbose`
//! read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fastcart_engine::{CloudContext, DriverError};

use crate::batch::{Kept, Loader};
use crate::call::Call;
use crate::pace::Pacer;

/// Requests sent, by `service:Operation` (each attempt counts).
#[derive(Default)]
pub struct RequestCounter {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounter {
    /// Requests sent for one `service:Operation`, such as `ec2:DescribeVpcs`.
    pub fn get(&self, operation: &str) -> u64 {
        let counts = self.counts.lock().expect("counter lock");
        counts.get(operation).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counter lock").clone()
    }
}

impl fmt::Debug for RequestCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Counting(pub(crate) Arc<RequestCounter>);

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "fastcart-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = match cfg.load::<Metadata>() {
            Some(m) => format!("{}:{}", m.service().to_ascii_lowercase(), m.name()),
            None => "unknown".to_string(),
        };
        *self
            .0
            .counts
            .lock()
            .expect("counter lock")
            .entry(key)
            .or_default() += 1;
        Ok(())
    }
}

/// Turns the SDK's retries off for calls that are not safe to send twice
/// (see [`crate::retry`]): the engine retries those, after looking for what
/// the first attempt made.
#[derive(Debug, Clone)]
struct SendOnce;

impl Intercept for SendOnce {
    fn name(&self) -> &'static str {
        "fastcart-send-once"
    }

    fn modify_before_retry_loop(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let once = cfg
            .load::<Metadata>()
            .is_some_and(|m| !crate::retry::repeatable(m.name()));
        if once {
            // Into the interceptor state: it is searched first.
            cfg.interceptor_state()
                .store_put(RetryConfig::standard().with_max_attempts(1));
        }
        Ok(())
    }
}

/// One client per AWS service fastcart drives, sharing one configuration.
pub struct Clients {
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub sts: aws_sdk_sts::Client,
    /// The configuration the clients were made from (the S3 state backend
    /// makes its own client from it).
    pub config: SdkConfig,
    pub requests: Arc<RequestCounter>,
    pacers: BTreeMap<&'static str, Pacer>,
    /// Mutations sent (each paced call): a tag snapshot older than the last
    /// one is stale.
    mutations: AtomicU64,
    /// Tags by ARN, as the last stack-wide search saw them.
    tag_snapshot: Kept<HashMap<String, BTreeMap<String, String>>>,
    /// Every Elastic IP of the region, as the addresses' search saw them.
    pub(crate) addresses: Kept<Vec<aws_sdk_ec2::types::Address>>,
    /// Describes several types read through (see [`crate::batch`]).
    pub(crate) route_tables: Loader<aws_sdk_ec2::types::RouteTable>,
    pub(crate) internet_gateways: Loader<aws_sdk_ec2::types::InternetGateway>,
    pub(crate) secret_infos: Loader<crate::secretsmanager::Info>,
}

impl Clients {
    /// Loads the standard AWS configuration chain for `region`: environment,
    /// profile, container and instance credentials; `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_<SERVICE>` point it elsewhere (the local emulator).
    /// Nothing is sent until a driver makes a call.
    pub async fn connect(region: &str) -> Arc<Clients> {
        Arc::new(Self::from_config(&Self::loader(region).load().await))
    }

    /// The configuration `connect` loads, for callers that adjust it first
    /// (tests point it at the emulator).
    pub fn loader(region: &str) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(RetryConfig::standard().with_max_attempts(crate::retry::SDK_ATTEMPTS))
    }

    pub fn from_config(config: &SdkConfig) -> Clients {
        let requests = Arc::new(RequestCounter::default());
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(config)
                        .interceptor(Counting(requests.clone()))
                        .interceptor(SendOnce)
                        // No retry quota: under many lost answers the shared
                        // quota runs dry and reads that one more attempt would
                        // have saved fail. Attempts stay bounded per call.
                        .retry_partition(
                            $krate::config::retry::RetryPartition::custom("fastcart")
                                .token_bucket($krate::config::retry::TokenBucket::unlimited())
                                .build(),
                        )
                        .build(),
                )
            };
        }
        Clients {
            config: config.clone(),
            region: config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "eu-central-1".into()),
            ec2: client!(aws_sdk_ec2),
            kms: client!(aws_sdk_kms),
            iam: client!(aws_sdk_iam),
            secrets: client!(aws_sdk_secretsmanager),
            rds: client!(aws_sdk_rds),
            elasticache: client!(aws_sdk_elasticache),
            elbv2: client!(aws_sdk_elasticloadbalancingv2),
            autoscaling: client!(aws_sdk_applicationautoscaling),
            kinesis: client!(aws_sdk_kinesis),
            logs: client!(aws_sdk_cloudwatchlogs),
            ecr: client!(aws_sdk_ecr),
            ecs: client!(aws_sdk_ecs),
            cloudwatch: client!(aws_sdk_cloudwatch),
            tagging: client!(aws_sdk_resourcegroupstagging),
            sts: client!(aws_sdk_sts),
            requests: requests.clone(),
            pacers: crate::pace::pacers(),
            mutations: AtomicU64::new(0),
            tag_snapshot: Kept::default(),
            addresses: Kept::default(),
            route_tables: Loader::default(),
            internet_gateways: Loader::default(),
            secret_infos: Loader::default(),
        }
    }

    /// Clients that are never called: enough to list schemas offline.
    pub fn offline() -> Arc<Clients> {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .build();
        Arc::new(Self::from_config(&config))
    }

    /// Waits for the bucket of a mutation's service, and counts it (which
    /// makes the tag snapshot stale). [`crate::call::Call`] calls it for
    /// every mutation; every registered type's service has a bucket
    /// (`registry` checks at start).
    pub(crate) async fn pace(&self, op: &crate::call::Operation) {
        self.mutations.fetch_add(1, Ordering::SeqCst);
        let pacer = op.pacer.and_then(|p| self.pacers.get(p));
        debug_assert!(pacer.is_some(), "no pacing for {op}");
        if let Some(p) = pacer {
            p.acquire().await;
        }
    }

    pub(crate) fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::SeqCst)
    }

    /// Keeps what a stack-wide tag search sent at `generation` saw.
    pub(crate) fn keep_tags(&self, generation: u64, all: Vec<(String, BTreeMap<String, String>)>) {
        let tags = all
            .into_iter()
            .map(|(arn, t)| (crate::tagging::arn_key(&arn).to_string(), t))
            .collect();
        self.tag_snapshot.keep(generation, tags);
    }

    /// The tags of `arn` as the last stack-wide search saw them, when no
    /// mutation was sent since and the search listed it (it lists only what
    /// carries this stack's tags). `None`: ask the service.
    pub fn snapshot_tags(&self, arn: &str) -> Option<BTreeMap<String, String>> {
        let tags = self.tag_snapshot.get(self.mutations())?;
        tags.get(crate::tagging::arn_key(arn)).cloned()
    }

    /// The account, partition and availability zones of the region, for the
    /// pseudo parameters and `Fn::GetAZs`. `zones`, when given (the ones the
    /// state was applied in), are the zones: they are not looked up.
    pub async fn context(&self, zones: Option<&[String]>) -> Result<CloudContext, DriverError> {
        let who = self
            .sts
            .get_caller_identity()
            .send()
            .call(self, "the caller")
            .await?;
        let account_id = who.account().unwrap_or_default().to_string();
        let partition = who
            .arn()
            .and_then(|a| a.split(':').nth(1))
            .unwrap_or("aws")
            .to_string();
        let mut ctx = CloudContext::new(self.region.clone(), account_id);
        ctx.partition = partition;
        if let Some(zones) = zones {
            ctx.availability_zones = zones.to_vec();
            return Ok(ctx);
        }
        let azs = self
            .ec2
            .describe_availability_zones()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .send()
            .call(self, &self.region)
            .await?;
        let mut zones: Vec<String> = azs
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| z.zone_name().map(String::from))
            .collect();
        zones.sort();
        ctx.availability_zones = zones;
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs_write() -> crate::call::Operation {
        crate::call::operation_of::<
            aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError,
        >()
    }

    #[tokio::test]
    async fn kept_tags_go_stale_at_the_next_mutation() {
        let c = Clients::offline();
        let arn = "arn:aws:logs:eu-central-1:1:log-group:/a";
        let tags = BTreeMap::from([("k".to_string(), "v".to_string())]);
        c.keep_tags(c.mutations(), vec![(format!("{arn}:*"), tags.clone())]);
        assert_eq!(c.snapshot_tags(arn), Some(tags), "found without its :*");
        assert_eq!(
            c.snapshot_tags("arn:aws:logs:eu-central-1:1:log-group:/b"),
            None
        );
        c.pace(&logs_write()).await;
        assert_eq!(c.snapshot_tags(arn), None, "a mutation makes it stale");
        // A search sent before a mutation keeps nothing usable either.
        let before = c.mutations();
        c.pace(&logs_write()).await;
        c.keep_tags(before, vec![(arn.to_string(), BTreeMap::new())]);
        assert_eq!(c.snapshot_tags(arn), None);
    }
}
