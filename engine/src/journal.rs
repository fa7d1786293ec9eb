//! The journal: one JSON line per mutation event, appended before a request
//! is sent (`intent`) and after it returns (`done` or `failed`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
    /// An existing object taken over by `fastcart import`: recorded like a
    /// create, though nothing was created.
    Import,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Intent,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub lineage: String,
    pub op: Op,
    pub phase: Phase,
    pub logical_id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// Properties sent or applied, secrets hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The properties the stack set for creation only (on a `Done`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_only: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    pub fn new(op: Op, phase: Phase, logical_id: &str, type_name: &str) -> Self {
        Entry {
            seq: 0,
            at_ms: 0,
            lineage: String::new(),
            op,
            phase,
            logical_id: logical_id.into(),
            type_name: type_name.into(),
            physical_id: None,
            properties: None,
            attributes: None,
            dependencies: Vec::new(),
            initial_only: Vec::new(),
            error: None,
        }
    }
}

/// Parses a journal file's text. A torn last line (the process died while
/// writing it) is dropped: its request was never sent. A bad line elsewhere
/// is an error naming its line number.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}
