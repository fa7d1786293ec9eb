//! fastcart-drivers: the AWS side of fastcart. One module per AWS service,
//! each implementing `fastcart_engine::Driver` for its resource types on the
//! official AWS SDK for Rust. SDK clients, retries, per-service pacing and
//! waiters live here and only here.

use std::collections::BTreeMap;
use std::sync::Arc;

use fastcart_engine::Registry;

pub mod ec2;
pub mod error;
pub mod pace;
pub mod props;
pub mod sdk;
pub mod tagging;
pub mod wait;

pub use sdk::{Clients, RequestCounter};

/// Every AWS driver fastcart has, by CloudFormation type name, over `c`.
pub fn registry(c: &Arc<Clients>) -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(ec2::vpc::Vpc::new(c.clone())));
    r
}

/// The drivers over clients that are never called: for listing schemas and
/// validating stacks without AWS.
pub fn offline_registry() -> Registry {
    registry(&Clients::offline())
}

/// How many mutations of each service may be in flight at once: the walker's
/// per-service caps. Pacing (requests per second) is separate, in
/// [`pace::LIMITS`].
pub fn service_limits() -> BTreeMap<String, usize> {
    pace::LIMITS
        .iter()
        .map(|&(s, _, burst)| (s.to_string(), burst as usize))
        .collect()
}
