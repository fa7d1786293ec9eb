//! fastcart-stacks: FastCart's stacks, declared in Rust as data. No AWS SDK.
//!
//! A stack is a function from [`StackOptions`] to a `StackSpec`.

use fastcart_engine::{sub, StackSpec};
use serde_json::{json, Value};

pub mod fastcart;
pub mod flask_api;

/// The trust policy of a role ECS tasks take on (an execution or a task
/// role), shared by every stack that runs tasks.
pub(crate) fn ecs_tasks_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]
    })
}

/// AWS's managed policy for ECS task execution (pull images, write logs).
pub(crate) fn ecs_task_execution_policy() -> Value {
    json!([sub(
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    )])
}

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
    vec!["fastcart", flask_api::NAME]
}

/// The stack called `name`, or `None` when there is no such stack.
pub fn stack(name: &str, options: &StackOptions) -> Option<StackSpec> {
    match name {
        "fastcart" => Some(fastcart::stack(options)),
        flask_api::NAME => Some(flask_api::stack(options)),
        _ => None,
    }
}

/// The region a stack is deployed to when none is given.
pub fn home_region(name: &str) -> &'static str {
    match name {
        flask_api::NAME => flask_api::HOME_REGION,
        _ => "eu-central-1",
    }
}

/// The file, in the outputs directory, a successful apply of the stack
/// writes its outputs to: the order stack's automation reads
/// `flat-outputs.json`; every other stack has its own, so that none
/// overwrites another's.
pub fn outputs_file(name: &str) -> String {
    match name {
        "fastcart" => "flat-outputs.json".to_string(),
        other => format!("{other}-flat-outputs.json"),
    }
}
