//! State: what fastcart has applied, per logical id.
//!
//! The state is a fold over the journal: [`State::record`] applies one
//! journal entry, both live during an apply and when a later run replays the
//! entries a cut-off apply wrote after the last saved state. So the state on
//! disk may lag the journal, but never disagrees with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::journal::{Entry, Op, Phase};
use crate::model::hex;
use crate::resolve::{Known, Published};
use crate::schema::TypeSchema;

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Identity of this state's history; a saved plan for another lineage is refused.
    pub lineage: String,
    /// Bumped by every save; a saved plan for an older serial is refused.
    pub serial: u64,
    pub stack: String,
    pub env: String,
    /// The sequence number of the last journal entry folded into this state.
    pub journal_seq: u64,
    pub resources: BTreeMap<String, ResourceState>,
    /// Mutations that were sent (their intent journaled) and have not been
    /// seen to finish. The next run resolves each of them before planning.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Pending>,
    /// The stack's outputs after the last successful apply.
    #[serde(default)]
    pub outputs: Map<String, Value>,
    /// The availability zones the stack was applied in (`Fn::GetAZs`), kept
    /// so that later runs use the same ones: a zone AWS adds, or one it
    /// briefly reports as impaired, never moves subnets (and everything in
    /// them) to other zones. Set by an apply; dropped when nothing is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Zones>,
}

/// Availability zones of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zones {
    pub region: String,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    #[serde(rename = "type")]
    pub type_name: String,
    pub physical_id: String,
    /// The properties last applied, resolved; secrets only as salted hashes.
    pub properties: Map<String, Value>,
    pub attributes: Map<String, Value>,
    /// Logical ids this resource depended on when it was applied; orders its
    /// deletion after it leaves the stack.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Earlier objects of this logical id still to delete: the old half of a
    /// create-before-destroy replacement, or twins found by ownership tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<Deposed>,
    /// Properties the stack set for creation only: drift-check does not
    /// compare them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_only: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposed {
    pub physical_id: String,
    pub properties: Map<String, Value>,
    /// Why it waits for deletion, when not the usual reason (an older
    /// object of a replacement): a twin found by its ownership tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub op: Op,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// The properties sent (secrets hashed), to adopt a resource whose create
    /// was cut off.
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl State {
    pub fn new(stack: &str, env: &str) -> Self {
        State {
            version: STATE_VERSION,
            lineage: random_hex(16),
            serial: 0,
            stack: stack.into(),
            env: env.into(),
            journal_seq: 0,
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            outputs: Map::new(),
            zones: None,
        }
    }

    /// The zones this state was applied in, when that was in `region`.
    pub fn zones_in(&self, region: &str) -> Option<&[String]> {
        self.zones
            .as_ref()
            .filter(|z| z.region == region && !z.names.is_empty())
            .map(|z| z.names.as_slice())
    }

    /// What resources in this state publish, for resolving references.
    pub fn known(&self) -> Known {
        self.resources
            .iter()
            .map(|(id, r)| {
                (
                    id.clone(),
                    Published {
                        physical_id: r.physical_id.clone(),
                        attributes: r.attributes.clone(),
                    },
                )
            })
            .collect()
    }

    /// Folds one journal entry into the state.
    pub fn record(&mut self, e: &Entry) {
        self.journal_seq = self.journal_seq.max(e.seq);
        let id = &e.logical_id;
        match e.phase {
            Phase::Intent => {
                self.pending.insert(
                    id.clone(),
                    Pending {
                        op: e.op,
                        type_name: e.type_name.clone(),
                        physical_id: e.physical_id.clone(),
                        properties: e.properties.clone().unwrap_or_default(),
                        dependencies: e.dependencies.clone(),
                    },
                );
            }
            Phase::Failed => {
                self.pending.remove(id);
            }
            Phase::Done => {
                self.pending.remove(id);
                match e.op {
                    Op::Create | Op::Update | Op::Import => {
                        let physical_id = e.physical_id.clone().unwrap_or_default();
                        let new = ResourceState {
                            type_name: e.type_name.clone(),
                            physical_id: physical_id.clone(),
                            properties: e.properties.clone().unwrap_or_default(),
                            attributes: e.attributes.clone().unwrap_or_default(),
                            dependencies: e.dependencies.clone(),
                            deposed: Vec::new(),
                            initial_only: e.initial_only.clone(),
                        };
                        match self.resources.get_mut(id) {
                            Some(old) => {
                                if old.physical_id != physical_id {
                                    // A create-before-destroy replacement: the
                                    // old object waits for its delete.
                                    old.deposed.push(Deposed {
                                        physical_id: old.physical_id.clone(),
                                        properties: old.properties.clone(),
                                        reason: None,
                                    });
                                }
                                let deposed = std::mem::take(&mut old.deposed);
                                *old = ResourceState { deposed, ..new };
                            }
                            None => {
                                self.resources.insert(id.clone(), new);
                            }
                        }
                    }
                    Op::Delete => {
                        let pid = e.physical_id.as_deref();
                        if let Some(r) = self.resources.get_mut(id) {
                            if r.deposed
                                .iter()
                                .any(|d| Some(d.physical_id.as_str()) == pid)
                            {
                                r.deposed.retain(|d| Some(d.physical_id.as_str()) != pid);
                            } else if pid.is_none() || Some(r.physical_id.as_str()) == pid {
                                if r.deposed.is_empty() {
                                    self.resources.remove(id);
                                } else {
                                    // Keep the entry so its deposed objects are
                                    // still deleted; promote one of them.
                                    let d = r.deposed.remove(0);
                                    r.physical_id = d.physical_id;
                                    r.properties = d.properties;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl ResourceState {
    /// Every cloud object this resource holds: the current one and those
    /// waiting for deletion.
    pub fn physical_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.physical_id.as_str())
            .chain(self.deposed.iter().map(|d| d.physical_id.as_str()))
    }
}

/// Salted hashes of the write-only (secret) properties, in place.
pub fn protect_secrets(props: &Map<String, Value>, schema: &TypeSchema) -> Map<String, Value> {
    props
        .iter()
        .map(|(k, v)| {
            if schema.is_sensitive(k) && !is_secret_hash(v) {
                (k.clone(), Value::String(secret_hash(v, &random_hex(8))))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

const HASH_PREFIX: &str = "fastcart-sha256:";

fn secret_hash(value: &Value, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(value.to_string().as_bytes());
    format!("{HASH_PREFIX}{salt}:{}", hex(&h.finalize()))
}

pub fn is_secret_hash(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with(HASH_PREFIX))
}

/// Whether `value` is the secret whose salted hash is `stored`.
pub fn secret_matches(stored: &Value, value: &Value) -> bool {
    let Some(rest) = stored.as_str().and_then(|s| s.strip_prefix(HASH_PREFIX)) else {
        return stored == value;
    };
    match rest.split_once(':') {
        Some((salt, _)) => stored.as_str() == Some(secret_hash(value, salt).as_str()),
        None => false,
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source works");
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kept_zones_are_those_of_the_region_and_old_states_have_none() {
        let mut st = State::new("s", "e");
        assert_eq!(st.zones_in("eu-central-1"), None);
        st.zones = Some(Zones {
            region: "eu-central-1".into(),
            names: vec!["eu-central-1a".into(), "eu-central-1b".into()],
        });
        assert_eq!(st.zones_in("eu-central-1").map(<[String]>::len), Some(2));
        assert_eq!(st.zones_in("eu-west-1"), None, "another region's zones");
        let text = serde_json::to_string(&st).unwrap();
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(back, st);
        let mut old: Value = serde_json::to_value(State::new("s", "e")).unwrap();
        old.as_object_mut().unwrap().remove("zones");
        let old: State = serde_json::from_value(old).unwrap();
        assert_eq!(old.zones, None, "a state written before zones were kept");
    }

    #[test]
    fn secrets_are_hashed_with_salt_and_still_comparable() {
        let schema = TypeSchema::new("T::X::Y").prop("Name").secret("Password");
        let props = json!({"Name": "n", "Password": "hunter2"})
            .as_object()
            .unwrap()
            .clone();
        let a = protect_secrets(&props, &schema);
        let b = protect_secrets(&props, &schema);
        assert_eq!(a["Name"], "n");
        assert!(!a["Password"].to_string().contains("hunter2"));
        assert_ne!(a["Password"], b["Password"], "salts differ");
        assert!(secret_matches(&a["Password"], &json!("hunter2")));
        assert!(!secret_matches(&a["Password"], &json!("hunter3")));
    }
}
