//! fastcart-drivers: the AWS side of fastcart. One module per AWS service,
//! each implementing `fastcart_engine::Driver` for its resource types on the
//! official AWS SDK for Rust. SDK clients, retries, per-service pacing and
//! waiters live here and only here.
//!
//! This crate is a skeleton until the AWS drivers land: the registry it
//! returns is empty, so every stack fails validation with "unknown type".

use fastcart_engine::Registry;

/// Every AWS driver fastcart has, by CloudFormation type name.
pub fn registry() -> Registry {
    Registry::new()
}

/// Requests per second each AWS service accepts for mutations, used as the
/// walker's per-service concurrency caps until real token buckets exist.
pub fn service_limits() -> std::collections::BTreeMap<String, usize> {
    std::collections::BTreeMap::new()
}
