//! Application Auto Scaling of an ECS service's task count.

use fastcart_engine::{r#ref, ResourceSpec, StackSpec};
use serde_json::json;

use crate::common::{cloud, lifecycle, Cloud};
use crate::compute::service_stack;

/// The service's scalable target (`min` to `max` tasks) and, when `target`
/// is given, a CPU target-tracking policy on it.
fn scaled(c: &Cloud, min: i64, max: i64, target: Option<f64>) -> StackSpec {
    let mut s = service_stack(c, "scaled", 2);
    s.add(
        ResourceSpec::new("Scaling", "AWS::ApplicationAutoScaling::ScalableTarget")
            .prop("ServiceNamespace", "ecs")
            .prop(
                "ResourceId",
                format!("service/{}/{}", c.name("svc"), c.name("scaled")),
            )
            .prop("ScalableDimension", "ecs:service:DesiredCount")
            .prop("MinCapacity", min)
            .prop("MaxCapacity", max)
            .depends_on("Service"),
    );
    if let Some(value) = target {
        s.add(
            ResourceSpec::new("Cpu", "AWS::ApplicationAutoScaling::ScalingPolicy")
                .prop("PolicyName", c.name("cpu"))
                .prop("PolicyType", "TargetTrackingScaling")
                .prop("ScalingTargetId", r#ref("Scaling"))
                .prop(
                    "TargetTrackingScalingPolicyConfiguration",
                    json!({
                        "TargetValue": value,
                        "PredefinedMetricSpecification": {
                            "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                        },
                        "ScaleInCooldown": 300,
                        "ScaleOutCooldown": 60
                    }),
                ),
        );
    }
    s
}

#[tokio::test]
async fn scalable_target() {
    let c = cloud("scaletarget").await;
    lifecycle(
        &c,
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "Scaling",
        &scaled(&c, 2, 10, None),
        Some(&scaled(&c, 3, 10, None)),
        None,
    )
    .await;
}

#[tokio::test]
async fn target_tracking_policy() {
    let c = cloud("scalepolicy").await;
    lifecycle(
        &c,
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Cpu",
        &scaled(&c, 2, 10, Some(70.0)),
        Some(&scaled(&c, 2, 10, Some(60.0))),
        None,
    )
    .await;
}
