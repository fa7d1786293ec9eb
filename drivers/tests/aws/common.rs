//! The one helper every driver test goes through.
#![allow(dead_code)]

use std::sync::Arc;

use fastcart_drivers::Clients;
use fastcart_engine::{
    Action, ApplyOptions, CloudContext, Driver, Found, Observed, Ownership, Plan, Registry,
    ResourceHandle, Session, StackSpec,
};

pub struct Cloud {
    pub clients: Arc<Clients>,
    pub registry: Registry,
    pub ctx: CloudContext,
    pub env: String,
    pub dir: tempfile::TempDir,
}

/// Clients on the shared emulator, and a state directory of the test's own.
/// `env` must be unique per test: it names every resource and tag.
pub async fn cloud(env: &str) -> Cloud {
    let clients = crate::moto::moto().clients().await;
    let ctx = clients
        .context(None)
        .await
        .expect("account and zones from the emulator");
    Cloud {
        registry: fastcart_drivers::registry(&clients),
        clients,
        ctx,
        env: env.to_string(),
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Cloud {
    pub fn stack(&self) -> StackSpec {
        let mut s = StackSpec::new("drivers", &self.env);
        s.tag("Environment", &self.env);
        s
    }

    /// A name carrying the test's suffix.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.env)
    }

    pub fn session(&self, s: &StackSpec) -> Session {
        Session::open(self.dir.path(), &s.name, &s.env, "test").expect("open session")
    }

    pub async fn plan(&self, s: &StackSpec) -> Plan {
        self.session(s)
            .plan(s, &self.registry, &self.ctx)
            .await
            .unwrap_or_else(|e| panic!("plan: {e:?}"))
    }

    /// Plans and applies; panics unless every step succeeded. Then plans
    /// again: what was read back must equal what was asked for. The tests
    /// mean every replacement they plan, of data stores too
    /// (`--allow-replace` for each).
    pub async fn converge(&self, s: &StackSpec) -> Plan {
        let mut session = self.session(s);
        let plan = session
            .plan(s, &self.registry, &self.ctx)
            .await
            .unwrap_or_else(|e| panic!("plan: {e:?}"));
        let opts = ApplyOptions {
            retry_base: std::time::Duration::from_millis(50),
            allow_replace: plan
                .steps
                .iter()
                .filter(|step| step.action == Action::Replace)
                .map(|step| step.logical_id.clone())
                .collect(),
            ..ApplyOptions::default()
        };
        let report = session
            .apply(s, &self.registry, &self.ctx, &plan, opts)
            .await
            .unwrap_or_else(|e| panic!("apply: {e:?}"));
        assert!(report.succeeded(), "apply failed: {report:#?}");
        drop(session);
        let again = self.plan(s).await;
        assert!(
            !again.has_changes(),
            "read back differs from what was applied:\n{}",
            fastcart_engine::render_plan(&again)
        );
        plan
    }

    pub fn physical_id(&self, s: &StackSpec, logical_id: &str) -> String {
        self.session(s)
            .state()
            .resources
            .get(logical_id)
            .unwrap_or_else(|| panic!("{logical_id} is not in state"))
            .physical_id
            .clone()
    }

    pub fn driver(&self, type_name: &str) -> &Arc<dyn Driver> {
        self.registry
            .get(type_name)
            .unwrap_or_else(|| panic!("no driver for {type_name}"))
    }

    /// Reads one resource straight through its driver.
    pub async fn read(&self, type_name: &str, physical_id: &str) -> Option<Observed> {
        self.read_with(type_name, physical_id, serde_json::Map::new())
            .await
    }

    pub async fn read_with(
        &self,
        type_name: &str,
        physical_id: &str,
        properties: serde_json::Map<String, serde_json::Value>,
    ) -> Option<Observed> {
        let h = ResourceHandle {
            logical_id: "probe".into(),
            physical_id: physical_id.into(),
            properties,
            attributes: Default::default(),
        };
        self.driver(type_name)
            .read(std::slice::from_ref(&h))
            .await
            .unwrap_or_else(|e| panic!("read {type_name} {physical_id}: {e}"))
            .pop()
            .flatten()
    }

    pub async fn find(&self, type_name: &str) -> Vec<Found> {
        let owner = Ownership {
            stack: "drivers".into(),
            env: self.env.clone(),
        };
        self.driver(type_name)
            .find_by_tags(&owner)
            .await
            .unwrap_or_else(|e| panic!("find {type_name}: {e}"))
    }
}

/// The life of one resource `target` of type `type_name` through the engine:
/// create (and read back equal), found by its tags, an in-place update
/// (same physical id), a create-only change (a replacement: new physical id,
/// the old one gone), and destroy (gone).
pub async fn lifecycle(
    c: &Cloud,
    type_name: &str,
    target: &str,
    create: &StackSpec,
    update: Option<&StackSpec>,
    replace: Option<&StackSpec>,
) {
    let plan = c.converge(create).await;
    assert_eq!(plan.step(target).map(|s| s.action), Some(Action::Create));
    let first = c.physical_id(create, target);
    assert!(
        c.read(type_name, &first).await.is_some(),
        "{first} cannot be read after creation"
    );
    if c.registry.schema(type_name).is_some_and(|s| s.taggable) {
        let found = c.find(type_name).await;
        assert!(
            found
                .iter()
                .any(|f| f.logical_id == target && f.physical_id == first),
            "find_by_tags did not find {target} ({first}): {found:?}"
        );
        // The stack-wide search finds it too, under the same ids.
        if let Some(finder) = c.registry.finder().filter(|f| f.covers(type_name)) {
            let owner = Ownership {
                stack: "drivers".into(),
                env: c.env.clone(),
            };
            let all = finder
                .find(&owner, &[type_name.to_string()])
                .await
                .unwrap_or_else(|e| panic!("batch find {type_name}: {e}"));
            assert!(
                all.iter().any(|(t, f)| t == type_name
                    && f.logical_id == target
                    && f.physical_id == first),
                "the batch search did not find {target} ({first}): {all:?}"
            );
        }
    }
    let mut last = create;
    if let Some(u) = update {
        let plan = c.plan(u).await;
        let step = plan.step(target).expect("the update changes the target");
        assert_eq!(
            step.action,
            Action::Update,
            "{}",
            fastcart_engine::render_plan(&plan)
        );
        c.converge(u).await;
        assert_eq!(
            c.physical_id(u, target),
            first,
            "an update kept the same resource"
        );
        last = u;
    }
    if let Some(r) = replace {
        let plan = c.plan(r).await;
        let step = plan.step(target).expect("the edit changes the target");
        assert_eq!(
            step.action,
            Action::Replace,
            "{}",
            fastcart_engine::render_plan(&plan)
        );
        c.converge(r).await;
        let second = c.physical_id(r, target);
        assert_ne!(second, first, "a replacement makes a new resource");
        if c.read(type_name, &second).await.is_none() {
            panic!("the replacement {second} cannot be read");
        }
        let old = c.read(type_name, &first).await;
        assert!(old.is_none(), "the replaced {first} still exists: {old:?}");
        last = r;
    }
    let gone = c.physical_id(last, target);
    let empty = StackSpec::new(&last.name, &last.env);
    c.converge(&empty).await;
    assert!(c.session(&empty).state().resources.is_empty());
    assert!(
        c.read(type_name, &gone).await.is_none(),
        "{gone} still exists after destroy"
    );
}
