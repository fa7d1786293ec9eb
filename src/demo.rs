//! A [`Provider`] over the engine's in-memory fake cloud, with a small stack
//! called `shop`: for the walkthrough example and the CLI tests. Nothing in
//! it reaches a network.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fastcart_engine::fake::{demo_schemas, FakeCloud};
use fastcart_engine::{
    get_att, get_azs, r#ref, select, sub, tag_list, CloudContext, Registry, ResourceSpec, StackSpec,
};
use fastcart_stacks::StackOptions;
use serde_json::json;

use crate::run::Provider;

pub struct Demo {
    pub cloud: Arc<FakeCloud>,
    registry: Registry,
    /// Which edit of the stack to serve: 0 is the original; 1 changes a
    /// retention (update), a subnet range (replacement) and a policy.
    pub edition: AtomicU8,
}

impl Demo {
    /// A fake cloud whose operations take `scale` times a plausible duration.
    pub fn new(scale: f64) -> Self {
        let cloud = FakeCloud::new();
        let ms = |m: f64| Duration::from_millis((m * scale) as u64);
        cloud.set_default_latency(ms(300.0));
        cloud.set_latency("Fake::Db::Instance", ms(4000.0));
        cloud.set_latency("Fake::Queue::Stream", ms(1500.0));
        Demo {
            // The database holds data: apply asks for --allow-replace
            // before replacing it.
            registry: cloud.registry(demo_schemas().into_iter().map(
                |s| match s.type_name.as_str() {
                    "Fake::Db::Instance" => s.holds_data(),
                    _ => s,
                },
            )),
            cloud,
            edition: AtomicU8::new(0),
        }
    }

    pub fn set_edition(&self, edition: u8) {
        self.edition.store(edition, Ordering::SeqCst);
    }
}

#[async_trait]
impl Provider for Demo {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn service_limits(&self) -> BTreeMap<String, usize> {
        BTreeMap::from([("Net".to_string(), 4), ("Db".to_string(), 2)])
    }

    async fn context(
        &self,
        region: &str,
        _zones: Option<&[String]>,
    ) -> miette::Result<CloudContext> {
        Ok(CloudContext::new(region, "123456789012"))
    }

    fn stack(&self, name: &str, o: &StackOptions) -> Option<StackSpec> {
        (name == "shop").then(|| shop(o, self.edition.load(Ordering::SeqCst)))
    }

    fn stack_names(&self) -> Vec<String> {
        vec!["shop".into()]
    }
}

/// The demo stack: a network, two subnets, a stream, a database with a
/// password, a role whose policy names the stream. Edition 1 edits it;
/// edition 2 also changes the database's engine, which replaces it.
pub fn shop(o: &StackOptions, edition: u8) -> StackSpec {
    let edited = edition > 0;
    let env = &o.env;
    let mut s = StackSpec::new("shop", env);
    s.tag("Environment", env.as_str());
    s.tag("Application", "ShopDemo");
    s.add(
        ResourceSpec::new("Network", "Fake::Net::Network")
            .prop("CidrBlock", "10.0.0.0/16")
            .prop("Tags", tag_list([("Name", format!("shop-{env}").as_str())])),
    );
    for (i, cidr) in [
        (0, "10.0.1.0/24"),
        (1, if edited { "10.0.4.0/24" } else { "10.0.2.0/24" }),
    ] {
        s.add(
            ResourceSpec::new(format!("Subnet{i}"), "Fake::Net::Subnet")
                .prop("NetworkId", r#ref("Network"))
                .prop("CidrBlock", cidr)
                .prop("Zone", select(i, get_azs())),
        );
    }
    s.add(
        ResourceSpec::new("Orders", "Fake::Queue::Stream")
            .prop("StreamName", format!("orders-{env}"))
            .prop("RetentionHours", if edited { 48 } else { 24 })
            .prop("Shards", 2),
    );
    s.add(
        ResourceSpec::new("Database", "Fake::Db::Instance")
            .prop("Identifier", format!("orders-db-{env}"))
            .prop("Engine", if edition > 1 { "mysql" } else { "postgres" })
            .prop("SubnetIds", json!([r#ref("Subnet0"), r#ref("Subnet1")]))
            .prop("Size", "small")
            .prop("MasterPassword", "demo-only-password"),
    );
    let mut actions = vec!["kinesis:GetRecords", "kinesis:DescribeStream"];
    if edited {
        actions.push("kinesis:GetShardIterator");
    }
    s.add(ResourceSpec::new("ReaderRole", "Fake::Iam::Role").prop(
        "PolicyDocument",
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": actions,
                "Resource": get_att("Orders", "Arn"),
            }],
        }),
    ));
    s.output("network_id", r#ref("Network"));
    s.output("database_endpoint", get_att("Database", "Endpoint.Address"));
    s.output("stream_arn", get_att("Orders", "Arn"));
    s.output("reader_role_arn", get_att("ReaderRole", "Arn"));
    s.output("region", sub("${AWS::Region}"));
    s
}
