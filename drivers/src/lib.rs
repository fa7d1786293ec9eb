//! fastcart-drivers: the AWS side of fastcart. One module per AWS service,
//! each implementing `fastcart_engine::Driver` for its resource types on the
//! official AWS SDK for Rust. SDK clients, retries, per-service pacing and
//! waiters live here and only here.

use std::collections::BTreeMap;
use std::sync::Arc;

use fastcart_engine::Registry;

pub mod autoscaling;
pub mod batch;
pub mod call;
pub mod cloudwatch;
pub mod dynamic;
pub mod each;
pub mod ec2;
pub mod ecr;
pub mod ecs;
pub mod elasticache;
pub mod elbv2;
pub mod error;
pub mod iam;
pub mod key;
pub mod kinesis;
pub mod kms;
pub mod logs;
pub mod pace;
pub mod props;
pub mod rds;
pub mod retry;
pub mod s3_backend;
pub mod sdk;
pub mod secretsmanager;
pub mod tagging;
pub mod tags;
pub mod wait;

pub use sdk::{Clients, RequestCounter};

/// Every AWS driver fastcart has, by CloudFormation type name, over `c`.
pub fn registry(c: &Arc<Clients>) -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(ec2::vpc::Vpc::new(c.clone())));
    r.register(Arc::new(ec2::internet_gateway::InternetGateway::new(
        c.clone(),
    )));
    r.register(Arc::new(ec2::gateway_attachment::GatewayAttachment::new(
        c.clone(),
    )));
    r.register(Arc::new(ec2::subnet::Subnet::new(c.clone())));
    r.register(Arc::new(ec2::eip::Eip::new(c.clone())));
    r.register(Arc::new(ec2::nat_gateway::NatGateway::new(c.clone())));
    r.register(Arc::new(ec2::route_table::RouteTable::new(c.clone())));
    r.register(Arc::new(ec2::route::Route::new(c.clone())));
    r.register(Arc::new(
        ec2::subnet_route_table_association::SubnetRouteTableAssociation::new(c.clone()),
    ));
    r.register(Arc::new(ec2::security_group::SecurityGroup::new(c.clone())));
    r.register(Arc::new(kms::Key::new(c.clone())));
    r.register(Arc::new(kms::Alias::new(c.clone())));
    r.register(Arc::new(iam::Role::new(c.clone())));
    r.register(Arc::new(secretsmanager::Secret::new(c.clone())));
    r.register(Arc::new(secretsmanager::RotationSchedule::new(c.clone())));
    r.register(Arc::new(rds::DbSubnetGroup::new(c.clone())));
    r.register(Arc::new(rds::DbCluster::new(c.clone())));
    r.register(Arc::new(rds::DbInstance::new(c.clone())));
    r.register(Arc::new(elasticache::CacheSubnetGroup::new(c.clone())));
    r.register(Arc::new(elasticache::ReplicationGroup::new(c.clone())));
    r.register(Arc::new(ecs::Cluster::new(c.clone())));
    r.register(Arc::new(ecs::TaskDefinition::new(c.clone())));
    r.register(Arc::new(ecs::Service::new(c.clone())));
    r.register(Arc::new(kinesis::Stream::new(c.clone())));
    r.register(Arc::new(logs::LogGroup::new(c.clone())));
    r.register(Arc::new(ecr::Repository::new(c.clone())));
    r.register(Arc::new(cloudwatch::Alarm::new(c.clone())));
    r.register(Arc::new(elbv2::LoadBalancer::new(c.clone())));
    r.register(Arc::new(elbv2::TargetGroup::new(c.clone())));
    r.register(Arc::new(elbv2::Listener::new(c.clone())));
    r.register(Arc::new(autoscaling::ScalableTarget::new(c.clone())));
    r.register(Arc::new(autoscaling::ScalingPolicy::new(c.clone())));
    let mut inventory = tagging::Inventory::new(c.clone());
    inventory
        .cover("AWS::EC2::VPC", &ec2::vpc::TAGGED)
        .cover("AWS::EC2::Subnet", &ec2::subnet::TAGGED)
        .cover("AWS::EC2::InternetGateway", &ec2::internet_gateway::TAGGED)
        .cover("AWS::EC2::NatGateway", &ec2::nat_gateway::TAGGED)
        .cover("AWS::EC2::RouteTable", &ec2::route_table::TAGGED)
        .cover("AWS::EC2::SecurityGroup", &ec2::security_group::TAGGED)
        .cover("AWS::KMS::Key", &kms::KEY_TAGGED)
        .cover(
            "AWS::SecretsManager::Secret",
            &secretsmanager::SECRET_TAGGED,
        )
        .cover("AWS::RDS::DBInstance", &rds::DB_INSTANCE_TAGGED)
        .cover("AWS::RDS::DBCluster", &rds::DB_CLUSTER_TAGGED)
        .cover(
            "AWS::ElastiCache::SubnetGroup",
            &elasticache::SUBNET_GROUP_TAGGED,
        )
        .cover(
            "AWS::ElastiCache::ReplicationGroup",
            &elasticache::REPLICATION_GROUP_TAGGED,
        )
        .cover("AWS::ECS::Cluster", &ecs::CLUSTER_TAGGED)
        .cover("AWS::ECS::TaskDefinition", &ecs::TASK_DEFINITION_TAGGED)
        .cover("AWS::ECS::Service", &ecs::SERVICE_TAGGED)
        .cover("AWS::Logs::LogGroup", &logs::LOG_GROUP_TAGGED)
        .cover("AWS::CloudWatch::Alarm", &cloudwatch::ALARM_TAGGED)
        .cover(
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            &elbv2::LOAD_BALANCER_TAGGED,
        )
        .cover(
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            &elbv2::TARGET_GROUP_TAGGED,
        );
    r.set_finder(Arc::new(inventory));
    if let Err(unpaced) = pace::check(r.type_names()) {
        // A driver added without its service's pacing: a mistake in this
        // crate, caught at start (and by its tests), never run unpaced.
        panic!("{unpaced}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_pattern_compiles() {
        for schema in offline_registry().schemas() {
            for (name, p) in &schema.properties {
                if let Some(pattern) = &p.constraints.pattern {
                    if let Err(e) = fastcart_engine::constraint::compile(pattern) {
                        panic!("{}.{name}: {e}", schema.type_name);
                    }
                }
            }
        }
    }

    #[test]
    fn every_driver_is_paced_and_every_batch_covered_type_is_registered() {
        // `registry` itself panics on an unpaced service.
        let r = offline_registry();
        assert_eq!(r.type_names().count(), 32);
        let finder = r.finder().expect("the tagging API's batch finder");
        let covered: Vec<&str> = r.type_names().filter(|t| finder.covers(t)).collect();
        assert_eq!(covered.len(), 19, "{covered:?}");
        for t in [
            "AWS::EC2::EIP",
            "AWS::IAM::Role",
            "AWS::Kinesis::Stream",
            "AWS::ECR::Repository",
        ] {
            assert!(
                !finder.covers(t),
                "{t}: moto's tagging API does not list it"
            );
        }
    }
}
