//! Rendering a plan for people, in the Terraform tradition: `+` create,
//! `~` update, `-/+` replace, `-` delete. Secrets show as `(sensitive)`; long
//! JSON documents are diffed line by line instead of printed whole.

use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::elements::{counts, write_diff, Terms};
use crate::plan::{is_document, Action, After, Change, Plan, ReplaceOrder, Step};
use crate::schema::ValueKind;

/// How long a list element may be on a line of the plan.
const SHORT: usize = 120;

/// The plan as text (no colours; the CLI may add them).
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Stack {}-{}", plan.stack, plan.env);
    for note in &plan.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if plan.steps.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes. {} resource{} up to date.",
            plan.summary.unchanged,
            plural(plan.summary.unchanged)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\nfastcart will perform these actions (+ create, ~ update, -/+ replace, - delete):"
    );
    for step in &plan.steps {
        out.push('\n');
        render_step(&mut out, step);
    }
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.unchanged
    );
    if let Some(cp) = &plan.critical_path {
        let _ = writeln!(
            out,
            "Critical path: {} (about {}).",
            cp.resources.join(" -> "),
            human_duration(cp.estimate_secs)
        );
    }
    out
}

fn render_step(out: &mut String, step: &Step) {
    let symbol = match step.action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "-/+",
        Action::Delete => "-",
    };
    let _ = write!(out, "  {symbol} {}  {}", step.logical_id, step.type_name);
    if let Some(pid) = &step.physical_id {
        let _ = write!(out, "  ({pid})");
    }
    match step.replace_order {
        Some(ReplaceOrder::CreateBeforeDestroy) => out.push_str("  create before destroy"),
        Some(ReplaceOrder::DeleteBeforeCreate) => out.push_str("  delete before create"),
        None => {}
    }
    out.push('\n');
    if step.action != Action::Create || step.physical_id.is_some() || step.deposed {
        let _ = writeln!(out, "      # {}", step.reason);
    }
    let width = step.changes.iter().map(|c| c.path.len()).max().unwrap_or(0);
    for c in &step.changes {
        render_change(out, step.action, c, width);
    }
}

fn render_change(out: &mut String, action: Action, c: &Change, width: usize) {
    let creating = action == Action::Create || c.before.is_none() && !c.sensitive;
    let sym = if action == Action::Create { "+" } else { "~" };
    let forces = if c.forces_replacement {
        "  # forces replacement"
    } else {
        ""
    };
    let after = match &c.after {
        After::Value(v) => Some(v),
        _ => None,
    };
    // A list whose elements differ: the elements, not the whole list. (A
    // policy document keeps its line diff below, which shows the lines of
    // each statement that change; its statement diff is in the JSON.)
    let listed = c
        .elements
        .as_ref()
        .filter(|_| !creating && c.kind != ValueKind::JsonDocument);
    if let Some(d) = listed {
        let _ = writeln!(
            out,
            "      ~ {}: {}{forces}",
            c.path,
            counts(d, Terms::Apply)
        );
        write_diff(out, "          ", d, Terms::Apply, SHORT);
        return;
    }
    // A document: print it whole on create, as a line diff on change.
    let doc = after.filter(|v| is_document(c.kind, v));
    if let Some(after) = doc {
        let _ = writeln!(out, "      {sym} {}:{forces}", c.path);
        let new = pretty(after);
        match c.before.as_ref().filter(|_| !creating) {
            Some(before) => line_diff(out, &pretty(&normalize_doc(before)), &new),
            None => {
                for line in new.lines() {
                    let _ = writeln!(out, "          {line}");
                }
            }
        }
        return;
    }
    let after_text = match &c.after {
        After::Value(v) => compact(v),
        After::KnownAfterApply => "(known after apply)".into(),
        After::Sensitive => "(sensitive)".into(),
    };
    if creating {
        let _ = writeln!(out, "      {sym} {:width$} = {after_text}{forces}", c.path);
    } else {
        let before_text = if c.sensitive {
            "(sensitive)".to_string()
        } else {
            c.before.as_ref().map_or("null".into(), compact)
        };
        let _ = writeln!(
            out,
            "      ~ {:width$} = {before_text} -> {after_text}{forces}",
            c.path
        );
    }
}

/// A document the cloud returned as a JSON string is shown parsed.
fn normalize_doc(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

fn line_diff(out: &mut String, old: &str, new: &str) {
    let diff = TextDiff::from_lines(old, new);
    for (i, group) in diff.grouped_ops(2).iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "          ...");
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => "-",
                    ChangeTag::Insert => "+",
                    ChangeTag::Equal => " ",
                };
                let _ = writeln!(
                    out,
                    "        {sign} {}",
                    change.value().trim_end_matches('\n')
                );
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("values serialize") + "\n"
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("values serialize")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `45s`, `3m10s`, `1h02m`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
