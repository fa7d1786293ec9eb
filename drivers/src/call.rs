//! The service handle every AWS call goes through.
//!
//! A driver builds an SDK call and ends it with `.call(&clients, target)`
//! ([`Call`]); a page of a paginator ends with `.op(target)`
//! ([`crate::error::SdkResultExt`]). Both take the operation from the SDK's
//! own types, so no driver names an operation, paces one, or classifies an
//! error itself:
//! - **the operation's name** (`ec2:CreateVpc`) is read from the call's error
//!   type ([`operation_of`]); the same name decides whether the SDK may
//!   repeat the call ([`crate::retry`]), so the two never disagree;
//! - **pacing**: a call that mutates waits for its service's token bucket
//!   ([`crate::pace`]) and makes the tag snapshot stale; reads go unpaced;
//! - **errors** become a `DriverError` classified by AWS's error code, which
//!   it carries ([`crate::error::from_sdk`]).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fastcart_engine::DriverError;

use crate::sdk::Clients;

/// One AWS operation: the prefix its service's actions carry in IAM
/// (`ec2`), its name (`CreateVpc`), and the pacing bucket of its service
/// when it mutates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub prefix: &'static str,
    pub name: &'static str,
    pub pacer: Option<&'static str>,
}

impl Operation {
    /// Whether the call changes something: everything but the read verbs.
    pub fn mutates(&self) -> bool {
        !["Describe", "List", "Get", "BatchGet"]
            .iter()
            .any(|v| self.name.starts_with(v))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.prefix, self.name)
    }
}

/// The operation whose error type is `E`: every SDK operation has its own
/// (`aws_sdk_ec2::operation::create_vpc::CreateVpcError` is `ec2:CreateVpc`).
/// The crate gives the service ([`crate::pace::SERVICES`]).
pub fn operation_of<E>() -> Operation {
    let path = std::any::type_name::<E>();
    let krate = path.split("::").next().unwrap_or(path);
    let last = path.rsplit("::").next().unwrap_or(path);
    let name = last.strip_suffix("Error").unwrap_or(last);
    match crate::pace::SERVICES.iter().find(|s| s.0 == krate) {
        Some(&(_, prefix, pacer)) => Operation {
            prefix,
            name,
            pacer,
        },
        None => {
            debug_assert!(false, "{krate} is not in pace::SERVICES");
            Operation {
                prefix: krate.strip_prefix("aws_sdk_").unwrap_or(krate),
                name,
                pacer: None,
            }
        }
    }
}

/// Sending an SDK call through the frame: `builder.send().call(&c, target)`.
pub trait Call<T, E> {
    /// Paces the call if it mutates, sends it, and names its failure by
    /// operation and `target` (what it acts on, for the message).
    fn call(self, c: &Clients, target: &str)
        -> impl Future<Output = Result<T, DriverError>> + Send;
}

impl<F, T, E> Call<T, E> for F
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    async fn call(self, c: &Clients, target: &str) -> Result<T, DriverError> {
        let op = operation_of::<E>();
        if op.mutates() {
            c.pace(&op).await;
        }
        // The target is a name, id or ARN, never a value: safe to log.
        tracing::debug!(operation = %op, target, "aws call");
        let started = std::time::Instant::now();
        let result = self
            .await
            .map_err(|e| crate::error::from_sdk(e, &op, target));
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(operation = %op, target, ms, "aws call done"),
            Err(e) => tracing::info!(operation = %op, target, ms, error = %e, "aws call failed"),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_their_error_types() {
        use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
        use aws_sdk_ec2::operation::create_vpc::CreateVpcError;
        use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
        use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesError;

        let vpc = operation_of::<CreateVpcError>();
        assert_eq!(vpc.to_string(), "ec2:CreateVpc");
        assert_eq!(vpc.pacer, Some("EC2"));
        assert!(vpc.mutates());
        let describe = operation_of::<DescribeVpcsError>();
        assert_eq!(describe.to_string(), "ec2:DescribeVpcs");
        assert!(!describe.mutates());
        let logs = operation_of::<CreateLogGroupError>();
        assert_eq!(logs.to_string(), "logs:CreateLogGroup");
        assert_eq!(logs.pacer, Some("Logs"));
        let search = operation_of::<GetResourcesError>();
        assert_eq!(search.to_string(), "tag:GetResources");
        assert!(!search.mutates());
    }

    #[tokio::test]
    async fn a_mutation_is_paced_and_makes_the_tag_snapshot_stale_and_a_read_is_not() {
        use aws_sdk_ec2::operation::create_vpc::CreateVpcError;
        use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;

        let c = Clients::offline();
        let before = c.mutations();
        let read = async { Ok::<_, SdkError<DescribeVpcsError, HttpResponse>>(1) };
        assert_eq!(read.call(&c, "vpcs").await.unwrap(), 1);
        assert_eq!(c.mutations(), before, "a read is not a mutation");
        let write = async { Ok::<_, SdkError<CreateVpcError, HttpResponse>>(2) };
        assert_eq!(write.call(&c, "vpc").await.unwrap(), 2);
        assert_eq!(c.mutations(), before + 1);
    }
}
