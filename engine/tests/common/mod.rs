//! The one helper engine tests go through: a fake cloud, its registry, a
//! temporary state directory, and plan/apply on them.
#![allow(dead_code)]

use std::sync::Arc;

use fastcart_engine::fake::{demo_schemas, FakeCloud};
use fastcart_engine::{
    ApplyOptions, ApplyReport, CloudContext, Plan, Registry, Session, StackSpec, TypeSchema,
};

pub struct Harness {
    pub cloud: Arc<FakeCloud>,
    pub registry: Registry,
    pub ctx: CloudContext,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_schemas(demo_schemas())
    }

    /// The demo cloud with its database type holding data.
    pub fn with_data_stores() -> Self {
        let schemas = demo_schemas()
            .into_iter()
            .map(|s| match s.type_name.as_str() {
                "Fake::Db::Instance" => s.holds_data(),
                _ => s,
            })
            .collect();
        Self::with_schemas(schemas)
    }

    pub fn with_schemas(schemas: Vec<TypeSchema>) -> Self {
        let cloud = FakeCloud::new();
        let registry = cloud.registry(schemas);
        Harness {
            cloud,
            registry,
            ctx: CloudContext::new("eu-central-1", "123456789012"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn session(&self, stack: &StackSpec) -> Session {
        Session::open(self.dir.path(), &stack.name, &stack.env, "test").expect("open session")
    }

    pub async fn plan(&self, stack: &StackSpec) -> Plan {
        self.session(stack)
            .plan(stack, &self.registry, &self.ctx)
            .await
            .expect("plan")
    }

    pub async fn apply_with(&self, stack: &StackSpec, opts: ApplyOptions) -> (Plan, ApplyReport) {
        let mut s = self.session(stack);
        let plan = s
            .plan(stack, &self.registry, &self.ctx)
            .await
            .expect("plan");
        let report = s
            .apply(stack, &self.registry, &self.ctx, &plan, opts)
            .await
            .expect("apply");
        (plan, report)
    }

    /// Plans and applies; panics unless every step succeeded.
    pub async fn apply(&self, stack: &StackSpec) -> (Plan, ApplyReport) {
        let (plan, report) = self.apply_with(stack, fast_retries()).await;
        assert!(report.succeeded(), "apply failed: {report:#?}");
        (plan, report)
    }

    /// Makes a second object like `physical_id`, with its properties and
    /// tags, through its driver: what a create sent twice leaves behind.
    pub async fn twin_of(&self, physical_id: &str) -> fastcart_engine::Created {
        let original = self.cloud.get(physical_id).expect("the original exists");
        self.registry
            .get(&original.type_name)
            .expect("a driver for its type")
            .create(fastcart_engine::CreateRequest {
                logical_id: original.logical_id().expect("it carries ownership tags"),
                properties: &original.properties,
                tags: &original.tags,
                idempotency_token: "twin",
                context: &self.ctx,
            })
            .await
            .expect("the twin is made")
    }

    /// How many cloud objects carry each logical id.
    pub fn objects_per_logical_id(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for r in self.cloud.resources() {
            *m.entry(r.logical_id().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        m
    }
}

pub fn fast_retries() -> ApplyOptions {
    ApplyOptions {
        retry_base: std::time::Duration::from_millis(1),
        ..ApplyOptions::default()
    }
}
