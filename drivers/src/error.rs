//! AWS errors as the engine's `DriverError`: which operation, on what, what
//! AWS said, and whether it is worth retrying.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fastcart_engine::{DriverError, ErrorKind};

use crate::call::Operation;

/// Classifies an AWS error code.
pub fn classify(code: &str) -> ErrorKind {
    const THROTTLED: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "PriorRequestNotComplete",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
    ];
    const IN_USE: &[&str] = &[
        "DependencyViolation",
        "ResourceInUseException",
        "ResourceInUse",
        "DeleteConflict",
        "InvalidDBSubnetGroupStateFault",
        "InvalidCacheSubnetGroupState",
        "CacheSubnetGroupInUse",
        "InvalidDBInstanceState",
        "InvalidDBClusterStateFault",
        "InvalidReplicationGroupState",
        "ConcurrentModificationException",
        "ClusterContainsServicesException",
        "ClusterContainsTasksException",
        "IncorrectState",
    ];
    if THROTTLED.contains(&code) {
        ErrorKind::Throttled
    } else if IN_USE.contains(&code) {
        ErrorKind::DependencyViolation
    } else if code.ends_with("NotFound")
        || code.ends_with(".NotFound")
        || code.ends_with("NotFoundException")
        || code.ends_with("NotFoundFault")
        || code == "NoSuchEntity"
        || code == "RepositoryNotFoundException"
    {
        ErrorKind::NotFound
    } else if code.ends_with("AlreadyExists")
        || code.ends_with("AlreadyExistsFault")
        || code.ends_with("AlreadyExistsException")
        || code == "ResourceExistsException"
        || code == "InvalidGroup.Duplicate"
        || code == "RepositoryAlreadyExistsException"
        // ELBv2: `DuplicateLoadBalancerName`, `DuplicateTargetGroupName`,
        // `DuplicateListener`.
        || code.starts_with("Duplicate")
    {
        ErrorKind::AlreadyExists
    } else if code.starts_with("Invalid")
        || code.starts_with("Validation")
        || code.starts_with("MalformedPolicyDocument")
    {
        ErrorKind::InvalidRequest
    } else {
        ErrorKind::Other
    }
}

/// Turns an SDK error into a `DriverError` naming the operation and target.
///
/// A call that got no answer, a 5xx or a throttle may have taken effect. For
/// a call the SDK sends only once (see [`crate::retry`]) that is
/// `ErrorKind::OutcomeUnknown`, which the engine resolves by looking before
/// it retries. For a call the SDK already retried it is final: the engine
/// does not retry it a second time.
pub(crate) fn from_sdk<E>(
    e: SdkError<E, HttpResponse>,
    operation: &Operation,
    target: &str,
) -> DriverError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let status = e.raw_response().map(|r| r.status().as_u16());
    let message = match e.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        Some(m) => m.to_string(),
        None if !code.is_empty() => code.clone(),
        None => match status {
            Some(s) => format!("HTTP {s} with no error code ({})", DisplayErrorContext(&e)),
            None => DisplayErrorContext(&e).to_string(),
        },
    };
    let no_answer = matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let kind = if code.is_empty() {
        ErrorKind::Other
    } else {
        classify(&code)
    };
    // A quota hit (`LimitExceededException` in Logs, KMS, ECR, Secrets
    // Manager) is a clean refusal, not a lost answer.
    let throttled = kind == ErrorKind::Throttled && code != "LimitExceededException";
    let transient = no_answer || status.is_some_and(|s| s >= 500) || throttled;
    let (kind, message) = match (transient, crate::retry::repeatable(operation.name)) {
        (true, false) => (
            ErrorKind::OutcomeUnknown,
            format!(
                "{message} (the call may have taken effect; fastcart looks for what it made \
                 before it sends it again)"
            ),
        ),
        (true, true) => (
            ErrorKind::Other,
            format!(
                "{message} (after {} attempts; run the command again)",
                crate::retry::SDK_ATTEMPTS
            ),
        ),
        (false, _) => (kind, message),
    };
    DriverError::new(kind, operation.to_string(), format!("{target}: {message}")).with_code(&code)
}

/// `.op("vpc-123")` on an SDK call's result that was sent without
/// [`crate::call::Call`]: a page of a paginator. The operation is named by
/// the error's type, as `Call` names it; a mutation never comes this way
/// (it would go unpaced), which debug builds check.
pub trait SdkResultExt<T> {
    fn op(self, target: &str) -> Result<T, DriverError>;
}

impl<T, E> SdkResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn op(self, target: &str) -> Result<T, DriverError> {
        let op = crate::call::operation_of::<E>();
        debug_assert!(!op.mutates(), "{op} is sent unpaced: end it with .call()");
        self.map_err(|e| from_sdk(e, &op, target))
    }
}

/// Whether an error means the resource is gone.
pub fn is_gone(e: &DriverError) -> bool {
    e.kind == ErrorKind::NotFound
}

/// A delete's answer: done, whether it deleted the object or found it
/// already gone.
pub fn done_if_gone<T>(r: Result<T, DriverError>) -> Result<(), DriverError> {
    match r {
        Err(e) if !is_gone(&e) => Err(e),
        _ => Ok(()),
    }
}

/// A property the stack gave that the driver cannot use.
pub fn invalid(operation: &str, message: impl Into<String>) -> DriverError {
    DriverError::new(ErrorKind::InvalidRequest, operation, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(classify("RequestLimitExceeded"), ErrorKind::Throttled);
        assert_eq!(
            classify("DependencyViolation"),
            ErrorKind::DependencyViolation
        );
        assert_eq!(classify("InvalidVpcID.NotFound"), ErrorKind::NotFound);
        assert_eq!(classify("DBInstanceNotFound"), ErrorKind::NotFound);
        assert_eq!(classify("NoSuchEntity"), ErrorKind::NotFound);
        assert_eq!(classify("InvalidParameterValue"), ErrorKind::InvalidRequest);
        assert_eq!(
            classify("DBInstanceAlreadyExists"),
            ErrorKind::AlreadyExists
        );
        assert_eq!(classify("InvalidGroup.Duplicate"), ErrorKind::AlreadyExists);
        assert_eq!(classify("InternalError"), ErrorKind::Other);
    }
}
