//! The frame under lost answers, call by call, through the project's fault
//! proxy in front of the emulator: a call the SDK must send once is sent
//! once and comes back as "outcome unknown"; a read is retried by the SDK
//! alone; and "already there" sub-items are success.

use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use fastcart_drivers::call::Call;
use fastcart_drivers::Clients;
use fastcart_engine::ErrorKind;

use crate::fault_proxy::FaultProxy;

/// Clients configured as the CLI configures them, through `proxy`.
async fn through(proxy: &FaultProxy) -> Arc<Clients> {
    let config = Clients::loader("eu-central-1")
        .endpoint_url(&proxy.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Arc::new(Clients::from_config(&config))
}

fn marked(value: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Vpc)
        .tags(Tag::builder().key("lost-answers").value(value).build())
        .build()
}

async fn vpcs_marked(c: &Clients, value: &str) -> usize {
    c.ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:lost-answers")
                .values(value)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpcs()
        .len()
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_sent_once_and_its_outcome_is_unknown() {
    let m = crate::moto::moto();
    let direct = m.clients().await;
    for (when, made) in [("after", 1), ("before", 0)] {
        let proxy = FaultProxy::start_losing(&m.venv, &m.endpoint, 1.0, 1, when);
        let c = through(&proxy).await;
        let mark = format!("create-{when}");
        let err = c
            .ec2
            .create_vpc()
            .cidr_block("10.77.0.0/16")
            .tag_specifications(marked(&mark))
            .send()
            .call(&c, "Vpc")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::OutcomeUnknown, "{err}");
        assert!(err.message.contains("may have taken effect"), "{err}");
        assert_eq!(
            c.requests.get("ec2:CreateVpc"),
            1,
            "sent once, not retried by the SDK"
        );
        assert_eq!(vpcs_marked(&direct, &mark).await, made, "lost {when}");
    }
}

#[tokio::test]
async fn a_read_is_retried_by_the_sdk_and_only_by_it() {
    let m = crate::moto::moto();
    let proxy = FaultProxy::start_losing(&m.venv, &m.endpoint, 1.0, 2, "both");
    let c = through(&proxy).await;
    let err = c
        .ec2
        .describe_vpcs()
        .send()
        .call(&c, "vpcs")
        .await
        .unwrap_err();
    assert_eq!(
        c.requests.get("ec2:DescribeVpcs"),
        u64::from(fastcart_drivers::retry::SDK_ATTEMPTS)
    );
    assert_ne!(
        err.kind,
        ErrorKind::OutcomeUnknown,
        "a read changes nothing"
    );
    assert!(
        !err.is_retryable(),
        "the engine does not retry it again: {err}"
    );
}
