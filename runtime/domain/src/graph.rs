//! The dependency graph of a workflow's steps: a DAG whose edges run from a step to the steps
//! it `depends_on`.
//!
//! [`StepGraph`] answers the questions the validator and the state machine ask: a topological
//! order (ties broken by definition order, so it is deterministic), the roots (steps without
//! dependencies, which start at once), a step's dependencies and dependents, and whether one
//! step is an ancestor of another (templates may only read ancestors). Building it reports
//! every duplicate id, unknown dependency and cycle; a cycle is named by its steps, as in
//! `a -> b -> a` ("a depends on b, which depends on a").

use std::collections::BTreeMap;
use std::fmt;

use crate::id::StepId;

/// One thing wrong with a step's dependencies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Two steps share an id.
    #[error("duplicate step id `{id}`")]
    DuplicateId {
        /// The repeated id.
        id: StepId,
    },
    /// A `depends_on` entry names no step.
    #[error("step `{step}` depends on unknown step `{dependency}`")]
    UnknownDependency {
        /// The step with the bad entry.
        step: StepId,
        /// The name that matches no step.
        dependency: StepId,
    },
    /// The same dependency is listed twice.
    #[error("step `{step}` lists dependency `{dependency}` twice")]
    RepeatedDependency {
        /// The step with the repeated entry.
        step: StepId,
        /// The repeated dependency.
        dependency: StepId,
    },
    /// Steps depend on each other in a circle.
    #[error("dependency cycle: {}", CyclePath(.cycle))]
    Cycle {
        /// The steps of the cycle, starting and ending with the same step.
        cycle: Vec<StepId>,
    },
}

struct CyclePath<'a>(&'a [StepId]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(StepId::as_str).collect();
        f.write_str(&names.join(" -> "))
    }
}

/// Where a [`GraphError`] was found: the step's position in the definition and, for errors
/// about one `depends_on` entry, that entry's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphProblem {
    /// Index of the step in the definition's `steps`.
    pub step_index: usize,
    /// Index in the step's `depends_on`, when the problem is one entry.
    pub dependency_index: Option<usize>,
    /// What is wrong.
    pub error: GraphError,
}

/// The validated dependency graph of a workflow; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepGraph {
    ids: Vec<StepId>,
    index: BTreeMap<StepId, usize>,
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl StepGraph {
    /// Builds the graph of `steps` (each id with its `depends_on`, in definition order), or
    /// returns every problem found.
    pub fn new(steps: &[(StepId, Vec<StepId>)]) -> Result<StepGraph, Vec<GraphProblem>> {
        let (graph, problems) = StepGraph::new_lenient(steps);
        if problems.is_empty() {
            Ok(graph)
        } else {
            Err(problems)
        }
    }

    /// Builds a graph that leaves out whatever is wrong (later duplicates, unknown dependencies)
    /// and returns it with the problems. Ancestry questions still work on it; its topological
    /// order leaves out the steps on or behind a cycle. The validator uses this to keep
    /// checking a definition that already has graph problems.
    pub fn new_lenient(steps: &[(StepId, Vec<StepId>)]) -> (StepGraph, Vec<GraphProblem>) {
        let mut problems = Vec::new();
        let mut index = BTreeMap::new();
        let mut ids = Vec::new();
        // Position in `ids` of each definition entry, or None for a duplicate.
        let mut slot_of_entry = Vec::with_capacity(steps.len());
        for (step_index, (id, _)) in steps.iter().enumerate() {
            if index.contains_key(id) {
                let error = GraphError::DuplicateId { id: id.clone() };
                problems.push(GraphProblem {
                    step_index,
                    dependency_index: None,
                    error,
                });
                slot_of_entry.push(None);
            } else {
                index.insert(id.clone(), ids.len());
                slot_of_entry.push(Some(ids.len()));
                ids.push(id.clone());
            }
        }
        let mut dependencies = vec![Vec::new(); ids.len()];
        for (step_index, (id, depends_on)) in steps.iter().enumerate() {
            for (dependency_index, dependency) in depends_on.iter().enumerate() {
                let at = |error| GraphProblem {
                    step_index,
                    dependency_index: Some(dependency_index),
                    error,
                };
                match index.get(dependency) {
                    None => problems.push(at(GraphError::UnknownDependency {
                        step: id.clone(),
                        dependency: dependency.clone(),
                    })),
                    Some(_) if depends_on[..dependency_index].contains(dependency) => problems
                        .push(at(GraphError::RepeatedDependency {
                            step: id.clone(),
                            dependency: dependency.clone(),
                        })),
                    Some(&target) => {
                        if let Some(slot) = slot_of_entry[step_index] {
                            dependencies[slot].push(target);
                        }
                    }
                }
            }
        }
        let mut dependents = vec![Vec::new(); ids.len()];
        for (node, deps) in dependencies.iter().enumerate() {
            for &dep in deps {
                dependents[dep].push(node);
            }
        }
        let order = topological_order(&dependencies, &dependents);
        let mut graph = StepGraph {
            ids,
            index,
            dependencies,
            dependents,
            order,
        };
        problems.extend(graph.cycles(steps, &slot_of_entry));
        graph.order.shrink_to_fit();
        (graph, problems)
    }

    /// Finds cycles among the steps left out of the topological order; see [`GraphError::Cycle`].
    fn cycles(
        &self,
        steps: &[(StepId, Vec<StepId>)],
        slot_of_entry: &[Option<usize>],
    ) -> Vec<GraphProblem> {
        let mut in_order = vec![false; self.ids.len()];
        self.order.iter().for_each(|&node| in_order[node] = true);
        // 0 = not visited, 1 = on the current walk, 2 = done.
        let mut mark = vec![0u8; self.ids.len()];
        let mut problems = Vec::new();
        for start in 0..self.ids.len() {
            if in_order[start] || mark[start] != 0 {
                continue;
            }
            // Every node left out has a dependency that was left out too, so following the
            // first such dependency must come back to a node of this walk or an earlier one.
            let mut walk = vec![start];
            mark[start] = 1;
            let closing = loop {
                let node = *walk.last().unwrap_or(&start);
                let Some(&next) = self.dependencies[node].iter().find(|&&d| !in_order[d]) else {
                    break None;
                };
                match mark[next] {
                    0 => {
                        mark[next] = 1;
                        walk.push(next);
                    }
                    1 => break Some(next),
                    _ => break None,
                }
            };
            walk.iter().for_each(|&node| mark[node] = 2);
            let Some(closing) = closing else { continue };
            let from = walk.iter().position(|&node| node == closing).unwrap_or(0);
            let mut cycle = walk[from..].to_vec();
            // Start the cycle at its earliest-defined step, so the report does not depend on
            // where the walk began.
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            let head = cycle[0];
            let next = cycle.get(1).copied().unwrap_or(head);
            let step_index = slot_of_entry
                .iter()
                .position(|&slot| slot == Some(head))
                .unwrap_or(0);
            let dependency_index = steps[step_index]
                .1
                .iter()
                .position(|d| *d == self.ids[next]);
            cycle.push(head);
            let cycle = cycle
                .into_iter()
                .map(|node| self.ids[node].clone())
                .collect();
            problems.push(GraphProblem {
                step_index,
                dependency_index,
                error: GraphError::Cycle { cycle },
            });
        }
        problems
    }

    fn node(&self, id: &StepId) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn ids_of<'a>(&'a self, nodes: &'a [usize]) -> impl Iterator<Item = &'a StepId> + 'a {
        nodes.iter().map(|&node| &self.ids[node])
    }

    /// Whether the graph has a step with this id.
    pub fn contains(&self, id: &StepId) -> bool {
        self.index.contains_key(id)
    }

    /// Step ids in definition order.
    pub fn steps(&self) -> impl Iterator<Item = &StepId> {
        self.ids.iter()
    }

    /// Step ids so that every step comes after all its dependencies; among steps that could go
    /// in either order, the one defined first comes first.
    pub fn topological_order(&self) -> impl Iterator<Item = &StepId> {
        self.ids_of(&self.order)
    }

    /// Steps without dependencies, in definition order.
    pub fn roots(&self) -> impl Iterator<Item = &StepId> {
        self.ids
            .iter()
            .enumerate()
            .filter(|(node, _)| self.dependencies[*node].is_empty())
            .map(|(_, id)| id)
    }

    /// The steps `id` depends on directly, in `depends_on` order (empty for an unknown id).
    pub fn dependencies(&self, id: &StepId) -> impl Iterator<Item = &StepId> {
        self.ids_of(
            self.node(id)
                .map_or(&[][..], |node| &self.dependencies[node]),
        )
    }

    /// The steps that depend on `id` directly, in definition order (empty for an unknown id).
    pub fn dependents(&self, id: &StepId) -> impl Iterator<Item = &StepId> {
        self.ids_of(self.node(id).map_or(&[][..], |node| &self.dependents[node]))
    }

    /// Every step `id` depends on directly or indirectly, in definition order.
    pub fn ancestors(&self, id: &StepId) -> Vec<&StepId> {
        let Some(start) = self.node(id) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.ids.len()];
        let mut stack = self.dependencies[start].clone();
        while let Some(node) = stack.pop() {
            if !std::mem::replace(&mut seen[node], true) {
                stack.extend(&self.dependencies[node]);
            }
        }
        self.ids
            .iter()
            .zip(seen)
            .filter(|(_, seen)| *seen)
            .map(|(id, _)| id)
            .collect()
    }

    /// Whether `descendant` depends on `ancestor`, directly or indirectly.
    pub fn is_ancestor(&self, ancestor: &StepId, descendant: &StepId) -> bool {
        self.ancestors(descendant).contains(&ancestor)
    }
}

/// Kahn's algorithm, always taking the earliest-defined step that is free. Steps on or behind
/// a cycle are left out.
fn topological_order(dependencies: &[Vec<usize>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting_on: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut free: std::collections::BTreeSet<usize> = (0..dependencies.len())
        .filter(|&node| waiting_on[node] == 0)
        .collect();
    let mut order = Vec::with_capacity(dependencies.len());
    while let Some(node) = free.pop_first() {
        order.push(node);
        for &dependent in &dependents[node] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                free.insert(dependent);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(spec: &[(&str, &[&str])]) -> Vec<(StepId, Vec<StepId>)> {
        spec.iter()
            .map(|(id, deps)| {
                (
                    StepId::new(*id).unwrap(),
                    deps.iter().map(|d| StepId::new(*d).unwrap()).collect(),
                )
            })
            .collect()
    }

    fn names<'a>(ids: impl IntoIterator<Item = &'a StepId>) -> Vec<&'a str> {
        ids.into_iter().map(StepId::as_str).collect()
    }

    fn id(text: &str) -> StepId {
        StepId::new(text).unwrap()
    }

    #[test]
    fn diamond_order_roots_dependents_ancestors() {
        let graph = StepGraph::new(&steps(&[
            ("notify", &["left", "right"]),
            ("right", &["start"]),
            ("left", &["start"]),
            ("start", &[]),
            ("audit", &[]),
        ]))
        .unwrap();
        assert_eq!(
            names(graph.topological_order()),
            ["start", "right", "left", "notify", "audit"]
        );
        assert_eq!(names(graph.roots()), ["start", "audit"]);
        assert_eq!(names(graph.dependents(&id("start"))), ["right", "left"]);
        assert_eq!(names(graph.dependencies(&id("notify"))), ["left", "right"]);
        assert_eq!(
            names(graph.ancestors(&id("notify"))),
            ["right", "left", "start"]
        );
        assert!(graph.is_ancestor(&id("start"), &id("notify")));
        assert!(!graph.is_ancestor(&id("notify"), &id("start")));
        assert!(!graph.is_ancestor(&id("audit"), &id("notify")));
        assert!(graph.ancestors(&id("nope")).is_empty());
    }

    #[test]
    fn reports_duplicates_unknown_and_repeated_dependencies() {
        let problems =
            StepGraph::new(&steps(&[("a", &[]), ("a", &[]), ("b", &["x", "a", "a"])])).unwrap_err();
        let found: Vec<(usize, Option<usize>, String)> = problems
            .iter()
            .map(|p| (p.step_index, p.dependency_index, p.error.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (1, None, "duplicate step id `a`".to_owned()),
                (
                    2,
                    Some(0),
                    "step `b` depends on unknown step `x`".to_owned()
                ),
                (2, Some(2), "step `b` lists dependency `a` twice".to_owned()),
            ]
        );
    }

    #[test]
    fn names_cycles_from_their_first_defined_step() {
        let problems = StepGraph::new(&steps(&[
            ("ok", &[]),
            ("later", &["c"]),
            ("c", &["a"]),
            ("a", &["b", "ok"]),
            ("b", &["c"]),
            ("self", &["self"]),
        ]))
        .unwrap_err();
        let found: Vec<(usize, Option<usize>, String)> = problems
            .iter()
            .map(|p| (p.step_index, p.dependency_index, p.error.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (2, Some(0), "dependency cycle: c -> a -> b -> c".to_owned()),
                (5, Some(0), "dependency cycle: self -> self".to_owned()),
            ]
        );
    }

    #[test]
    fn lenient_graph_still_answers_ancestry() {
        let (graph, problems) =
            StepGraph::new_lenient(&steps(&[("a", &["b"]), ("b", &["a"]), ("c", &["a", "zz"])]));
        assert_eq!(problems.len(), 2);
        assert!(graph.is_ancestor(&id("b"), &id("c")));
        assert_eq!(graph.topological_order().count(), 0);
    }
}
