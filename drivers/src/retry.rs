//! Who retries what: the one place that decides it.
//!
//! Every AWS call is retried by exactly one loop:
//! - **The SDK** (standard mode, [`SDK_ATTEMPTS`] attempts, no retry quota)
//!   retries the calls that are safe to send twice: reads, and writes whose
//!   repeat has the same effect (set an attribute, put a policy, tag,
//!   delete: a repeated delete finds the object gone, which counts as done).
//! - **The engine** retries the rest, the calls for which [`repeatable`] is
//!   false (creates, allocations, associations, authorizations, new
//!   revisions): the SDK sends them once, a missing answer comes back as
//!   `ErrorKind::OutcomeUnknown`, and the engine looks for what the call made
//!   before it sends it again (`fastcart_engine::apply`). A client token is
//!   still passed where the API takes one (it protects on AWS), but it is not
//!   relied on: the emulator ignores client tokens.
//! - **A driver's waits** (`wait.rs`) poll with their own deadline and stop
//!   at Ctrl-C; when they give up they say so with
//!   `ErrorKind::DeadlineExceeded`, which nobody retries again.

/// Attempts the SDK makes for a call that is safe to repeat. At 20% of
/// answers lost, eight attempts fail together once in 400,000 calls.
pub const SDK_ATTEMPTS: u32 = 8;

/// Operation-name prefixes of calls whose repeat is not the same as sending
/// them once: a second `CreateVpc` makes a second VPC, a second
/// `AuthorizeSecurityGroupIngress` fails as a duplicate.
const ONCE_PREFIXES: &[&str] = &[
    "Create",
    "Allocate",
    "Associate",
    "Attach",
    "Authorize",
    "Register",
    "Increase",
    "Decrease",
    "Replace",
    "Run",
    "Request",
    "Import",
    "Copy",
    "Restore",
    "Start",
    "Stop",
    "Rotate",
];

/// Calls with a once-prefix that are nevertheless idempotent.
const REPEATABLE_ANYWAY: &[&str] = &["CreateTags", "ReplaceRoute", "RegisterScalableTarget"];

/// Whether the SDK may send `operation` (`"ec2:CreateVpc"` or `"CreateVpc"`)
/// again when an attempt gets no answer.
pub fn repeatable(operation: &str) -> bool {
    let name = operation.rsplit(':').next().unwrap_or(operation);
    REPEATABLE_ANYWAY.contains(&name) || !ONCE_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_are_sent_once_and_reads_and_settings_are_repeatable() {
        for once in [
            "ec2:CreateVpc",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:AssociateRouteTable",
            "ec2:AllocateAddress",
            "ecs:RegisterTaskDefinition",
            "kinesis:IncreaseStreamRetentionPeriod",
            "CreateRoute",
        ] {
            assert!(!repeatable(once), "{once}");
        }
        for again in [
            "ec2:DescribeVpcs",
            "ec2:CreateTags",
            "ec2:ModifyVpcAttribute",
            "ec2:DeleteVpc",
            "iam:PutRolePolicy",
            "logs:PutRetentionPolicy",
            "tag:GetResources",
            "ec2:ReplaceRoute",
        ] {
            assert!(repeatable(again), "{again}");
        }
    }
}
