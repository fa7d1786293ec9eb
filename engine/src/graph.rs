//! The dependency graph of a stack, on petgraph.
//!
//! An edge `a -> b` means "b depends on a": a is created first and deleted
//! last. Edges come from references in properties and from `DependsOn`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

/// The graph of resources, keyed by logical id.
#[derive(Debug, Clone)]
pub struct StackGraph {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
    order: Vec<NodeIndex>,
}

/// A graph that is not a DAG: the resources of each cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycles(pub Vec<Vec<String>>);

impl StackGraph {
    /// Builds the graph from `(logical id, its dependencies)`. Dependencies
    /// must name nodes in the list (validation checks that first).
    pub fn build<'a>(
        nodes: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
    ) -> Result<StackGraph, Cycles> {
        let nodes: Vec<_> = nodes.into_iter().collect();
        let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
        let mut index = BTreeMap::new();
        for (id, _) in &nodes {
            index.insert(id.to_string(), graph.add_node(id.to_string()));
        }
        for (id, deps) in &nodes {
            let to = index[*id];
            for dep in deps {
                if let Some(&from) = index.get(*dep) {
                    graph.update_edge(from, to, ());
                }
            }
        }
        match toposort(&graph, None) {
            Ok(order) => Ok(StackGraph {
                graph,
                index,
                order,
            }),
            Err(_) => {
                let mut cycles: Vec<Vec<String>> = tarjan_scc(&graph)
                    .into_iter()
                    .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
                    .map(|scc| {
                        let mut names: Vec<String> =
                            scc.iter().map(|&n| graph[n].clone()).collect();
                        names.sort();
                        names
                    })
                    .collect();
                cycles.sort();
                Err(Cycles(cycles))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Logical ids in an order where every resource comes after its dependencies.
    pub fn topological(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.order.iter().map(|&n| self.graph[n].as_str())
    }

    /// Direct dependencies of a resource.
    pub fn dependencies(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, Direction::Incoming)
    }

    /// Direct dependents of a resource.
    pub fn dependents(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, Direction::Outgoing)
    }

    fn neighbors(&self, id: &str, dir: Direction) -> Vec<&str> {
        let Some(&n) = self.index.get(id) else {
            return Vec::new();
        };
        let mut v: Vec<&str> = self
            .graph
            .neighbors_directed(n, dir)
            .map(|m| self.graph[m].as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// The longest chain of resources by total weight: the lower bound on how
    /// long an apply of everything can take, however parallel.
    pub fn critical_path(&self, weight: impl Fn(&str) -> Duration) -> (Duration, Vec<String>) {
        let mut finish: BTreeMap<NodeIndex, (Duration, Option<NodeIndex>)> = BTreeMap::new();
        for &n in &self.order {
            let best = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .map(|p| (finish[&p].0, Some(p)))
                .max_by_key(|(d, _)| *d)
                .unwrap_or((Duration::ZERO, None));
            finish.insert(n, (best.0 + weight(&self.graph[n]), best.1));
        }
        let Some((&last, &(total, _))) = finish.iter().max_by_key(|(_, (d, _))| *d) else {
            return (Duration::ZERO, Vec::new());
        };
        let mut path = vec![self.graph[last].clone()];
        let mut cur = finish[&last].1;
        while let Some(n) = cur {
            path.push(self.graph[n].clone());
            cur = finish[&n].1;
        }
        path.reverse();
        (total, path)
    }

    /// Graphviz DOT, with each node labelled by `label(id)`.
    pub fn to_dot(&self, label: impl Fn(&str) -> String) -> String {
        let mut s = String::from("digraph stack {\n  rankdir=LR;\n  node [shape=box];\n");
        for id in self.sorted_ids() {
            let _ = writeln!(s, "  \"{id}\" [label=\"{}\"];", label(id).replace('"', "'"));
        }
        for (from, to) in self.sorted_edges() {
            let _ = writeln!(s, "  \"{from}\" -> \"{to}\";");
        }
        s.push_str("}\n");
        s
    }

    /// A Mermaid flowchart, with each node labelled by `label(id)`.
    pub fn to_mermaid(&self, label: impl Fn(&str) -> String) -> String {
        let mut s = String::from("flowchart LR\n");
        for id in self.sorted_ids() {
            let _ = writeln!(s, "  {id}[\"{}\"]", label(id).replace('"', "'"));
        }
        for (from, to) in self.sorted_edges() {
            let _ = writeln!(s, "  {from} --> {to}");
        }
        s
    }

    fn sorted_ids(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    fn sorted_edges(&self) -> Vec<(&str, &str)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (self.graph[a].as_str(), self.graph[b].as_str()))
            .collect();
        edges.sort_unstable();
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_path_follows_the_heaviest_chain() {
        let g = StackGraph::build([
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["a"]),
            ("d", vec!["b", "c"]),
        ])
        .unwrap();
        let w = |id: &str| Duration::from_secs(if id == "c" { 10 } else { 1 });
        let (total, path) = g.critical_path(w);
        assert_eq!(total, Duration::from_secs(12));
        assert_eq!(path, vec!["a", "c", "d"]);
    }

    #[test]
    fn cycles_name_their_members() {
        let err = StackGraph::build([
            ("a", vec!["c"]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec!["d"]),
            ("e", vec![]),
        ])
        .unwrap_err();
        assert_eq!(
            err.0,
            vec![
                vec!["a".to_string(), "b".into(), "c".into()],
                vec!["d".into()]
            ]
        );
    }
}
