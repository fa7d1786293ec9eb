//! Pacing: a token bucket per AWS service for mutating calls, sized from
//! AWS's published request-rate limits (well under them, since other tools
//! share an account's budget). Reads are not paced: they are batched, and
//! the SDK's retry absorbs what still gets throttled.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Mutex;

pub struct Pacer {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens the bucket holds.
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(rate: f64, burst: f64) -> Pacer {
        Pacer {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token, waiting for it when the bucket is empty.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Mutations per second and burst, per service (the middle part of the type
/// name, as the walker names services).
pub const LIMITS: &[(&str, f64, f64)] = &[
    // EC2 mutating actions: bucket 50 refilled at 5/s per account and region.
    ("EC2", 5.0, 50.0),
    // IAM is global and slow to propagate: keep it gentle.
    ("IAM", 2.0, 10.0),
    ("KMS", 5.0, 20.0),
    ("SecretsManager", 5.0, 20.0),
    ("RDS", 2.0, 10.0),
    ("ElastiCache", 2.0, 10.0),
    // Kinesis control plane: CreateStream 5/s, UpdateShardCount 2/s and so on.
    ("Kinesis", 2.0, 5.0),
    ("Logs", 5.0, 20.0),
    ("ECR", 5.0, 20.0),
    ("ECS", 5.0, 20.0),
    ("CloudWatch", 3.0, 10.0),
    // ELBv2 publishes no per-action rates: as gentle as ECS.
    ("ElasticLoadBalancingV2", 5.0, 20.0),
    // Application Auto Scaling publishes no per-action rates either.
    ("ApplicationAutoScaling", 2.0, 10.0),
];

/// Every SDK crate fastcart calls: the prefix IAM names its actions by
/// (`ec2:CreateVpc`), and the bucket in [`LIMITS`] its mutations wait for
/// (`None`: fastcart only reads from it).
pub const SERVICES: &[(&str, &str, Option<&str>)] = &[
    ("aws_sdk_ec2", "ec2", Some("EC2")),
    ("aws_sdk_iam", "iam", Some("IAM")),
    ("aws_sdk_kms", "kms", Some("KMS")),
    (
        "aws_sdk_secretsmanager",
        "secretsmanager",
        Some("SecretsManager"),
    ),
    ("aws_sdk_rds", "rds", Some("RDS")),
    ("aws_sdk_elasticache", "elasticache", Some("ElastiCache")),
    ("aws_sdk_kinesis", "kinesis", Some("Kinesis")),
    ("aws_sdk_cloudwatchlogs", "logs", Some("Logs")),
    ("aws_sdk_ecr", "ecr", Some("ECR")),
    ("aws_sdk_ecs", "ecs", Some("ECS")),
    ("aws_sdk_cloudwatch", "cloudwatch", Some("CloudWatch")),
    (
        "aws_sdk_elasticloadbalancingv2",
        "elasticloadbalancing",
        Some("ElasticLoadBalancingV2"),
    ),
    (
        "aws_sdk_applicationautoscaling",
        "application-autoscaling",
        Some("ApplicationAutoScaling"),
    ),
    ("aws_sdk_resourcegroupstagging", "tag", None),
    ("aws_sdk_sts", "sts", None),
];

/// The service of a type name, as the walker and the pacer name it
/// (`AWS::EC2::VPC` → `EC2`).
pub fn service_of(type_name: &str) -> &str {
    type_name.split("::").nth(1).unwrap_or(type_name)
}

/// Every service of `types` has a pacing entry in [`LIMITS`]; else the
/// error names the types whose service has none.
pub fn check<'a>(types: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let unpaced: Vec<&str> = types
        .into_iter()
        .filter(|t| !LIMITS.iter().any(|(s, _, _)| *s == service_of(t)))
        .collect();
    if unpaced.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no pacing for the service of {} (add it to drivers/src/pace.rs LIMITS)",
            unpaced.join(", ")
        ))
    }
}

pub fn pacers() -> BTreeMap<&'static str, Pacer> {
    LIMITS
        .iter()
        .map(|&(s, rate, burst)| (s, Pacer::new(rate, burst)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_bucket_exists() {
        for (krate, _, pacer) in SERVICES {
            if let Some(p) = pacer {
                assert!(
                    LIMITS.iter().any(|l| l.0 == *p),
                    "{krate}: no {p} in LIMITS"
                );
            }
        }
    }

    #[test]
    fn a_service_without_pacing_is_named() {
        assert!(check(["AWS::EC2::VPC", "AWS::Logs::LogGroup"]).is_ok());
        let err = check(["AWS::EC2::VPC", "AWS::Route53::HostedZone"]).unwrap_err();
        assert!(err.contains("AWS::Route53::HostedZone"), "{err}");
        assert!(!err.contains("AWS::EC2::VPC"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_waits_for_its_refill() {
        let p = Pacer::new(2.0, 3.0);
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            p.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the burst is free"
        );
        p.acquire().await;
        p.acquire().await;
        // Two more tokens at 2/s: about a second.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
    }
}
