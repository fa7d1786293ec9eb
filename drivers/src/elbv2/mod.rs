//! Elastic Load Balancing v2: `AWS::ElasticLoadBalancingV2::LoadBalancer`,
//! `::TargetGroup` and `::Listener`.
//!
//! Every object is known by its ARN (CloudFormation's `Ref`). The Describe
//! calls take up to 20 ARNs and fail as a whole when one of them no longer
//! exists (`*NotFound`): [`by_arns`] asks for 20 at a time and, when a chunk
//! fails that way, for each ARN of that chunk alone, so a deleted object
//! reads as gone and the others are still read. Tags come from the
//! stack-wide search (the tagging API lists load balancers and target
//! groups) or else from `DescribeTags`, one call per object.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_elasticloadbalancingv2::types::Tag;
use fastcart_engine::DriverError;

use crate::call::Call;
use crate::error::is_gone;
use crate::sdk::Clients;

pub mod listener;
pub mod load_balancer;
pub mod target_group;

pub use listener::Listener;
pub use load_balancer::{LoadBalancer, LOAD_BALANCER_TAGGED};
pub use target_group::{TargetGroup, TARGET_GROUP_TAGGED};

/// The most ARNs one Describe or `DescribeTags` call takes.
pub const ARNS_PER_CALL: usize = 20;

/// The most characters a load balancer's or target group's name may have.
pub const NAME_MAX: usize = 32;

/// The objects among `arns` that exist, by ARN: `describe` sends one call
/// for up to [`ARNS_PER_CALL`] ARNs; a chunk that fails as not found is
/// asked for again one ARN at a time.
pub(crate) async fn by_arns<T, F, Fut>(
    arns: &[&str],
    describe: F,
    arn_of: impl Fn(&T) -> Option<&str>,
) -> Result<HashMap<String, T>, DriverError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, DriverError>>,
{
    let mut found = HashMap::new();
    let keep = |items: Vec<T>, found: &mut HashMap<String, T>| {
        for item in items {
            if let Some(arn) = arn_of(&item).map(String::from) {
                found.insert(arn, item);
            }
        }
    };
    for chunk in arns.chunks(ARNS_PER_CALL) {
        match describe(chunk.iter().map(|a| a.to_string()).collect()).await {
            Ok(items) => keep(items, &mut found),
            Err(e) if is_gone(&e) && chunk.len() > 1 => {
                for arn in chunk {
                    match describe(vec![arn.to_string()]).await {
                        Ok(items) => keep(items, &mut found),
                        Err(e) if is_gone(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// [`by_arns`] over one Describe call: `describe!(clients, arns,
/// describe_listeners, set_listener_arns, listeners, AwsListener::listener_arn)`
/// names the call, its ARN-list parameter, the list it answers and an item's
/// ARN.
macro_rules! describe {
    ($c:expr, $arns:expr, $call:ident, $param:ident, $items:ident, $arn:path) => {
        crate::elbv2::by_arns(
            $arns,
            |chunk| async move {
                let target = chunk.join(",");
                let out = $c
                    .elbv2
                    .$call()
                    .$param(Some(chunk))
                    .send()
                    .call(&$c, &target)
                    .await?;
                Ok(out.$items().to_vec())
            },
            $arn,
        )
    };
}
pub(crate) use describe;

pub(crate) fn elb_tags(tags: &std::collections::BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// ELBv2's tag calls, by ARN.
pub(crate) struct ElbTags<'a>(pub(crate) &'a Clients);

impl crate::tags::TagApi for ElbTags<'_> {
    const PER_CALL: usize = 10;

    async fn list(&self, arn: &str) -> Result<crate::tags::Tags, DriverError> {
        let out = self
            .0
            .elbv2
            .describe_tags()
            .resource_arns(arn)
            .send()
            .call(self.0, arn)
            .await?;
        Ok(out
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
        self.0
            .elbv2
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(elb_tags(&tags.iter().cloned().collect())))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), DriverError> {
        self.0
            .elbv2
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .call(self.0, arn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use fastcart_engine::ErrorKind;

    use super::*;

    #[tokio::test]
    async fn describes_go_twenty_at_a_time_and_a_missing_arn_fails_only_itself() {
        let arns: Vec<String> = (0..45).map(|i| format!("arn-{i}")).collect();
        let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
        let calls = Mutex::new(Vec::new());
        let found = by_arns(
            &refs,
            |asked: Vec<String>| {
                calls.lock().unwrap().push(asked.len());
                async move {
                    if asked.iter().any(|a| a == "arn-7") {
                        return Err(DriverError::new(
                            ErrorKind::NotFound,
                            "elasticloadbalancing:DescribeTargetGroups",
                            "arn-7: TargetGroupNotFound",
                        ));
                    }
                    Ok(asked)
                }
            },
            |a: &String| Some(a.as_str()),
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 44);
        assert!(!found.contains_key("arn-7"));
        // The first chunk fails, then goes one by one; the others go whole.
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls[0], 20);
        assert_eq!(&calls[1..21], &[1; 20]);
        assert_eq!(&calls[21..], &[20, 5]);
    }
}
