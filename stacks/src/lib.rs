//! fastcart-stacks: FastCart's stacks, declared in Rust as data. No AWS SDK.
//!
//! A stack is a function from [`StackOptions`] to a `StackSpec`.

use fastcart_engine::StackSpec;

pub mod fastcart;

/// What a stack may vary on.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// The environment suffix carried by every name and tag.
    pub env: String,
    pub region: String,
    /// An existing database secret to use instead of an RDS-managed one.
    pub db_secret_arn: Option<String>,
}

/// The names of the stacks this build knows.
pub fn names() -> Vec<&'static str> {
    vec!["fastcart"]
}

/// The stack called `name`, or `None` when there is no such stack.
pub fn stack(name: &str, options: &StackOptions) -> Option<StackSpec> {
    match name {
        "fastcart" => Some(fastcart::stack(options)),
        _ => None,
    }
}
