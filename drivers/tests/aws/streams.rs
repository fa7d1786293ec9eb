//! The data path beside the shop: Kinesis streams, log groups, ECR
//! repositories and CloudWatch alarms.

use fastcart_engine::{get_att, r#ref, Action, ResourceHandle, ResourceSpec, StackSpec};
use serde_json::json;

use crate::common::{cloud, lifecycle, Cloud};

/// A KMS key the other resources encrypt with.
fn key() -> ResourceSpec {
    ResourceSpec::new("Key", "AWS::KMS::Key").prop("Description", "fastcart driver tests: data")
}

fn team() -> serde_json::Value {
    json!([{"Key": "Team", "Value": "data"}])
}

#[tokio::test]
async fn stream() {
    let c = cloud("kstream").await;
    let stack = |name: &str, hours: i64| {
        let mut s = c.stack();
        s.add(key());
        s.add(
            ResourceSpec::new("Stream", "AWS::Kinesis::Stream")
                .prop("Name", c.name(name))
                .prop("ShardCount", 2)
                .prop("RetentionPeriodHours", hours)
                .prop(
                    "StreamEncryption",
                    json!({"EncryptionType": "KMS", "KeyId": get_att("Key", "Arn")}),
                )
                // The update drops one metric and adds another; the
                // lifecycle's clean re-plans read them back.
                .prop(
                    "DesiredShardLevelMetrics",
                    match hours {
                        24 => json!(["IncomingBytes", "OutgoingBytes"]),
                        _ => json!(["IteratorAgeMilliseconds", "IncomingBytes"]),
                    },
                )
                .prop("Tags", team()),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::Kinesis::Stream",
        "Stream",
        &stack("events", 24),
        Some(&stack("events", 48)),
        Some(&stack("orders", 48)),
    )
    .await;
}

#[tokio::test]
async fn a_stream_changed_behind_fastcarts_back_is_seen() {
    let c = cloud("kdrift").await;
    let mut s = c.stack();
    s.add(
        ResourceSpec::new("Stream", "AWS::Kinesis::Stream")
            .prop("Name", c.name("events"))
            .prop("ShardCount", 1)
            .prop("RetentionPeriodHours", 24),
    );
    c.converge(&s).await;
    let name = c.physical_id(&s, "Stream");
    c.clients
        .kinesis
        .increase_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(48)
        .send()
        .await
        .expect("raise the retention period directly");
    let plan = c.plan(&s).await;
    assert!(
        plan.has_changes(),
        "a retention period raised outside fastcart went unseen:\n{}",
        fastcart_engine::render_plan(&plan)
    );
    // Applying puts it back (by lowering the retention period).
    c.converge(&s).await;

    // An adopted stream is waited for, and its attributes come back.
    let state = c.session(&s).state().resources["Stream"].clone();
    let h = ResourceHandle {
        logical_id: "Stream".into(),
        physical_id: name.clone(),
        properties: state.properties.clone(),
        attributes: Default::default(),
    };
    let ready = c
        .driver("AWS::Kinesis::Stream")
        .ready(&h)
        .await
        .expect("ready")
        .expect("a stream has attributes to give");
    assert_eq!(ready.get("Arn"), state.attributes.get("Arn"));
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn log_group() {
    let c = cloud("loggroup").await;
    let stack = |name: &str, days: i64| {
        let mut s = c.stack();
        s.add(key());
        s.add(
            ResourceSpec::new("Logs", "AWS::Logs::LogGroup")
                .prop("LogGroupName", format!("/fastcart/{}", c.name(name)))
                .prop("RetentionInDays", days)
                .prop("KmsKeyId", get_att("Key", "Arn"))
                .prop("Tags", team()),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::Logs::LogGroup",
        "Logs",
        &stack("app", 7),
        Some(&stack("app", 14)),
        Some(&stack("api", 14)),
    )
    .await;
}

#[tokio::test]
async fn repository() {
    let c = cloud("ecrrepo").await;
    let stack = |name: &str, mutability: &str| {
        let mut s = c.stack();
        s.add(key());
        s.add(
            ResourceSpec::new("Repo", "AWS::ECR::Repository")
                .prop("RepositoryName", c.name(name))
                .prop("ImageScanningConfiguration", json!({"ScanOnPush": true}))
                .prop("ImageTagMutability", mutability)
                .prop(
                    "EncryptionConfiguration",
                    json!({"EncryptionType": "KMS", "KmsKey": get_att("Key", "Arn")}),
                )
                .prop("EmptyOnDelete", true)
                .prop("Tags", team()),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::ECR::Repository",
        "Repo",
        &stack("web", "MUTABLE"),
        Some(&stack("web", "IMMUTABLE")),
        Some(&stack("api", "IMMUTABLE")),
    )
    .await;
}

#[tokio::test]
async fn reading_repositories_when_one_is_gone() {
    let c = cloud("ecrgone").await;
    let mut s = c.stack();
    for i in 0..2 {
        s.add(
            ResourceSpec::new(format!("Repo{i}"), "AWS::ECR::Repository")
                .prop("RepositoryName", c.name(&format!("repo{i}"))),
        );
    }
    c.converge(&s).await;
    let handle = |id: &str| ResourceHandle {
        logical_id: "probe".into(),
        physical_id: id.into(),
        properties: Default::default(),
        attributes: Default::default(),
    };
    let seen = c
        .driver("AWS::ECR::Repository")
        .read(&[
            handle(&c.physical_id(&s, "Repo0")),
            handle(&c.name("never-made")),
            handle(&c.physical_id(&s, "Repo1")),
        ])
        .await
        .expect("read with one repository missing");
    assert!(
        seen[0].is_some() && seen[1].is_none() && seen[2].is_some(),
        "{seen:?}"
    );
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

/// An alarm on how far readers of `stream` lag behind.
fn alarm(c: &Cloud, logical_id: &str, name: &str, threshold: i64) -> ResourceSpec {
    ResourceSpec::new(logical_id, "AWS::CloudWatch::Alarm")
        .prop("AlarmName", c.name(name))
        .prop("AlarmDescription", "Readers fall behind the stream")
        .prop("Namespace", "AWS/Kinesis")
        .prop("MetricName", "GetRecords.IteratorAgeMilliseconds")
        .prop(
            "Dimensions",
            json!([{"Name": "StreamName", "Value": r#ref("Stream")}]),
        )
        .prop("Statistic", "Average")
        .prop("Period", 300)
        .prop("EvaluationPeriods", 2)
        .prop("Threshold", threshold)
        .prop("ComparisonOperator", "GreaterThanThreshold")
        .prop("TreatMissingData", "notBreaching")
        .prop("Tags", team())
}

fn lagging_stream(c: &Cloud) -> ResourceSpec {
    ResourceSpec::new("Stream", "AWS::Kinesis::Stream")
        .prop("Name", c.name("events"))
        .prop("ShardCount", 1)
}

#[tokio::test]
async fn alarm_lifecycle() {
    let c = cloud("alarm").await;
    let stack = |name: &str, threshold: i64| {
        let mut s = c.stack();
        s.add(lagging_stream(&c));
        s.add(alarm(&c, "Lag", name, threshold));
        s
    };
    lifecycle(
        &c,
        "AWS::CloudWatch::Alarm",
        "Lag",
        &stack("lag", 60000),
        Some(&stack("lag", 120000)),
        Some(&stack("lag-high", 120000)),
    )
    .await;
}

#[tokio::test]
async fn reading_many_alarms_is_one_request() {
    let c = cloud("alarmbatch").await;
    let mut s = c.stack();
    s.add(lagging_stream(&c));
    for i in 0..3 {
        s.add(alarm(
            &c,
            &format!("Lag{i}"),
            &format!("lag{i}"),
            60000 * (i + 1),
        ));
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("cloudwatch:DescribeAlarms");
    c.plan(&s).await;
    assert_eq!(
        c.clients.requests.get("cloudwatch:DescribeAlarms") - before,
        1
    );
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn reading_many_log_groups_is_one_request() {
    let c = cloud("lgbatch").await;
    let mut s = c.stack();
    for i in 0..3 {
        s.add(
            ResourceSpec::new(format!("Logs{i}"), "AWS::Logs::LogGroup")
                .prop(
                    "LogGroupName",
                    format!("/fastcart/{}", c.name(&format!("g{i}"))),
                )
                .prop("RetentionInDays", 7),
        );
    }
    c.converge(&s).await;
    // The SDK names the service "CloudWatch Logs".
    let op = "cloudwatch logs:DescribeLogGroups";
    let before = c.clients.requests.get(op);
    c.plan(&s).await;
    assert_eq!(c.clients.requests.get(op) - before, 1);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}

#[tokio::test]
async fn a_plan_takes_tags_from_the_stack_wide_search_and_still_sees_them_change() {
    let c = cloud("lgtags").await;
    let mut s = c.stack();
    // A VPC makes the plan search the stack for twins: that one search
    // carries every tag the log groups' reads need.
    s.add(ResourceSpec::new("Vpc", "AWS::EC2::VPC").prop("CidrBlock", "10.40.0.0/16"));
    for i in 0..2 {
        s.add(
            ResourceSpec::new(format!("Logs{i}"), "AWS::Logs::LogGroup")
                .prop(
                    "LogGroupName",
                    format!("/fastcart/{}", c.name(&format!("t{i}"))),
                )
                .prop("Tags", json!([{"Key": "Team", "Value": "orders"}])),
        );
    }
    c.converge(&s).await;
    let list = "cloudwatch logs:ListTagsForResource";
    let search = "resource groups tagging api:GetResources";
    let (lists, searches) = (c.clients.requests.get(list), c.clients.requests.get(search));
    let plan = c.plan(&s).await;
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(c.clients.requests.get(search) - searches, 1);
    assert_eq!(c.clients.requests.get(list) - lists, 0, "no call per group");

    // Changed behind fastcart's back: the next plan's search sees it.
    let arn = format!(
        "arn:aws:logs:{}:{}:log-group:/fastcart/{}",
        c.ctx.region,
        c.ctx.account_id,
        c.name("t0")
    );
    c.clients
        .logs
        .tag_resource()
        .resource_arn(&arn)
        .tags("Team", "someone-else")
        .send()
        .await
        .unwrap();
    let plan = c.plan(&s).await;
    assert_eq!(plan.step("Logs0").map(|st| st.action), Some(Action::Update));
    assert!(plan.step("Logs1").is_none(), "{:?}", plan.steps);
    c.converge(&StackSpec::new(&s.name, &s.env)).await;
}
