//! Building the DAG of cloud operations from a plan's steps.

use super::*;

/// The DAG of cloud operations for a plan.
///
/// Hard edges: forward operations (create, update, create-replacement)
/// follow the stack's dependencies; deletes of old objects follow the *old*
/// dependencies (from state) in reverse; a delete-before-create replacement's
/// create waits for its delete; a create-before-destroy replacement's delete
/// waits for its create. Soft edges: the delete of an old object also waits
/// for the resources that used it to move off it (their forward operations).
/// Soft edges avoid dependency violations; where they close a cycle (a
/// delete-before-create upstream of a resource that moves), they are dropped.
pub(super) fn build_tasks(
    plan: &Plan,
    graph: &StackGraph,
    state: &State,
) -> Result<(Vec<Task>, Dag)> {
    let mut tasks = Vec::new();
    let mut forward: BTreeMap<&str, usize> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut delete_first: BTreeMap<usize, bool> = BTreeMap::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let id = s.logical_id.as_str();
        let mut push = |op: Operation| {
            tasks.push(Task { step: i, op });
            tasks.len() - 1
        };
        match s.action {
            Action::Create => {
                forward.insert(id, push(Operation::Create));
            }
            Action::Update => {
                forward.insert(id, push(Operation::Update));
            }
            Action::Replace => {
                forward.insert(id, push(Operation::CreateReplacement));
                let d = push(Operation::DeleteReplaced);
                deletes.entry(id).or_default().push(d);
                delete_first.insert(d, s.replace_order == Some(ReplaceOrder::DeleteBeforeCreate));
            }
            Action::Delete => {
                let d = push(Operation::Delete);
                deletes.entry(id).or_default().push(d);
            }
        }
    }
    let n = tasks.len();
    let mut hard: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut soft: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (&id, &t) in &forward {
        for dep in graph.dependencies(id) {
            if let Some(&f) = forward.get(dep) {
                hard[t].push(f);
            }
        }
    }
    // Who used each old object: the dependencies recorded in state.
    let mut old_dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, r) in &state.resources {
        for d in &r.dependencies {
            old_dependents
                .entry(d.as_str())
                .or_default()
                .push(id.as_str());
        }
    }
    for (&id, dels) in &deletes {
        for &del in dels {
            let first = delete_first.get(&del).copied().unwrap_or(false);
            let deposed = plan.steps[tasks[del].step].deposed;
            match forward.get(id) {
                Some(&f) if first => hard[f].push(del),
                Some(&f) if deposed => soft[del].push(f),
                Some(&f) => hard[del].push(f),
                None => {}
            }
            for y in old_dependents.get(id).into_iter().flatten() {
                if *y == id {
                    continue;
                }
                for &yd in deletes.get(y).into_iter().flatten() {
                    hard[del].push(yd);
                }
                if let Some(&yf) = forward.get(y) {
                    soft[del].push(yf);
                }
            }
        }
    }
    let deps = break_soft_cycles(&tasks, plan, hard, soft)?;
    let services = tasks
        .iter()
        .map(|t| service_of(&plan.steps[t.step].type_name).to_string())
        .collect();
    Ok((tasks, Dag { deps, services }))
}

/// Joins hard and soft edges, dropping the soft edges that lie on a cycle.
/// A cycle of hard edges alone is a bug, reported without running anything.
pub(super) fn break_soft_cycles(
    tasks: &[Task],
    plan: &Plan,
    hard: Vec<Vec<usize>>,
    soft: Vec<Vec<usize>>,
) -> Result<Vec<Vec<usize>>> {
    use petgraph::graph::{DiGraph, NodeIndex};
    let sccs = |edges: &[Vec<usize>]| {
        let mut g = DiGraph::<(), ()>::with_capacity(edges.len(), 0);
        let nodes: Vec<NodeIndex> = (0..edges.len()).map(|_| g.add_node(())).collect();
        for (t, ds) in edges.iter().enumerate() {
            for &d in ds {
                g.add_edge(nodes[d], nodes[t], ());
            }
        }
        let mut component = vec![usize::MAX; edges.len()];
        for (c, scc) in petgraph::algo::tarjan_scc(&g).into_iter().enumerate() {
            if scc.len() > 1 {
                for node in scc {
                    component[node.index()] = c;
                }
            }
        }
        component
    };
    let mut all: Vec<Vec<usize>> = hard
        .iter()
        .zip(&soft)
        .map(|(h, s)| h.iter().chain(s).copied().collect())
        .collect();
    let component = sccs(&all);
    if component.iter().any(|&c| c != usize::MAX) {
        all = hard
            .iter()
            .zip(&soft)
            .enumerate()
            .map(|(t, (h, s))| {
                let kept = s
                    .iter()
                    .filter(|&&d| component[d] == usize::MAX || component[d] != component[t]);
                h.iter().chain(kept).copied().collect()
            })
            .collect();
        let left = sccs(&all);
        if let Some(t) = left.iter().position(|&c| c != usize::MAX) {
            let members: Vec<String> = (0..tasks.len())
                .filter(|&u| left[u] == left[t])
                .map(|u| {
                    let step = &plan.steps[tasks[u].step];
                    format!("{} {:?}", step.logical_id, tasks[u].op)
                })
                .collect();
            return Err(crate::Error::Internal {
                message: format!(
                    "the plan's operations wait on each other in a cycle: {}",
                    members.join(", ")
                ),
            });
        }
    }
    for d in &mut all {
        d.sort_unstable();
        d.dedup();
    }
    Ok(all)
}
