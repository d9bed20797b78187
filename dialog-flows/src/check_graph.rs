//! Whole-bot checks over the control-flow graph of the loaded flows, run after every flow
//! is read: unreachable steps (warnings), cycles of steps that never wait for the user
//! (errors: they would spin until the per-turn step limit hands the user off) and
//! recursive sub-flow calls (errors: every round would stack another return address).
//!
//! The graph's nodes are `(flow, step index)`. An `ask` ends a path (the user answers
//! before anything else runs); `flow:` jumps lead to the target's first step; `call_flow`
//! leads to the callee's first step, and on to the next step only when the callee has no
//! `ask` at all (otherwise the user speaks in between).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::diagnostic::Pos;
use crate::load::Loader;
use crate::model::{FlowDef, OnFail, Route, StepKind};

type Node = (usize, usize); // (flow index, step index)

impl Loader {
    pub(crate) fn graph_checks(&mut self) {
        if self.diags.has_errors() {
            return; // the graph of a half-loaded bot would only produce noise
        }
        let names: Vec<String> = self.flows.keys().cloned().collect();
        if self.recursion_checks(&names) {
            return; // recursion is also a loop; one message for it is enough
        }
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let flows: Vec<&FlowDef> = names.iter().filter_map(|n| self.flows.get(n)).collect();
        let has_ask: Vec<bool> = flows
            .iter()
            .map(|f| f.steps.iter().any(|s| matches!(s.kind, StepKind::Ask(_))))
            .collect();
        let mut unreachable = Vec::new();
        let mut succ: BTreeMap<Node, Vec<Node>> = BTreeMap::new();
        for (fi, flow) in flows.iter().enumerate() {
            let mut reached = vec![false; flow.steps.len()];
            let mut todo = vec![0usize];
            while let Some(i) = todo.pop() {
                if i >= reached.len() || reached[i] {
                    continue;
                }
                reached[i] = true;
                todo.extend(local_successors(&flow.steps[i].kind, i));
            }
            unreachable.extend(
                reached
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !**r)
                    .map(|(i, _)| (names[fi].clone(), i)),
            );
            for (i, step) in flow.steps.iter().enumerate() {
                let mut out: Vec<Node> = Vec::new();
                match &step.kind {
                    StepKind::Ask(_) => {}
                    StepKind::Flow(t) => out.extend(index.get(t.as_str()).map(|t| (*t, 0))),
                    StepKind::CallFlow(t) => {
                        if let Some(t) = index.get(t.as_str()) {
                            out.push((*t, 0));
                            if !has_ask[*t] {
                                out.push((fi, i + 1));
                            }
                        }
                    }
                    kind => out.extend(local_successors(kind, i).into_iter().map(|j| (fi, j))),
                }
                out.retain(|(f, j)| flows.get(*f).is_some_and(|fl| *j < fl.steps.len()));
                succ.insert((fi, i), out);
            }
        }
        for (flow, i) in unreachable {
            if let Some((file, pos)) = self.step_position(&flow, i) {
                self.diags.warning(
                    &file,
                    pos,
                    format!("step {} of flow `{flow}` can never run", i + 1),
                    Some("the step before it never continues and nothing jumps to it: give it an `id:` and jump there, or remove it".into()),
                );
            }
        }
        for cycle in cycles(&succ) {
            let steps: Vec<String> = cycle
                .iter()
                .map(|(f, i)| format!("{} step {}", names[*f], i + 1))
                .collect();
            let Some(&(f, i)) = cycle.first() else {
                continue;
            };
            if let Some((file, pos)) = self.step_position(&names[f], i) {
                self.diags.error(
                    &file,
                    pos,
                    format!(
                        "these steps loop without waiting for the user: {} → {}",
                        steps.join(" → "),
                        steps[0]
                    ),
                    Some("each round of a loop must `ask` something, or the bot spins until it gives up and hands off".into()),
                );
            }
        }
    }

    /// Reports `call_flow` edges that lie on a cycle of calls and jumps between flows;
    /// true when there was one.
    fn recursion_checks(&mut self, names: &[String]) -> bool {
        let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, flow) in &self.flows {
            for s in &flow.steps {
                if let StepKind::Flow(t) | StepKind::CallFlow(t) = &s.kind {
                    edges.entry(name.as_str()).or_default().insert(t.as_str());
                }
            }
        }
        let reaches = |from: &str, to: &str| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(f) = todo.pop() {
                if f == to {
                    return true;
                }
                if seen.insert(f) {
                    todo.extend(edges.get(f).into_iter().flatten().copied());
                }
            }
            false
        };
        let mut found = Vec::new();
        for (caller, callee, file, pos) in &self.call_edges {
            if caller != callee && names.contains(caller) && reaches(callee, caller) {
                found.push((caller.clone(), callee.clone(), file.clone(), *pos));
            }
        }
        let any = !found.is_empty();
        for (caller, callee, file, pos) in found {
            self.diags.error(
                &file,
                pos,
                format!("`call_flow: {callee}` recurses: flow `{callee}` leads back to `{caller}`"),
                Some("sub-flows cannot call themselves, directly or through other flows".into()),
            );
        }
        any
    }

    fn step_position(&self, flow: &str, i: usize) -> Option<(std::path::PathBuf, Pos)> {
        let (file, positions) = self.step_pos.get(flow)?;
        Some((file.clone(), *positions.get(i)?))
    }
}

/// Steps of the same flow that may run right after step `i` (`ask` included: it is skipped
/// when its slot is filled, and its `on_fail` jumps).
fn local_successors(kind: &StepKind, i: usize) -> Vec<usize> {
    match kind {
        StepKind::Say(_) | StepKind::Set(_) | StepKind::Generate(_) | StepKind::CallFlow(_) => {
            vec![i + 1]
        }
        StepKind::Ask(a) => match a.on_fail {
            OnFail::Step(j) => vec![i + 1, j],
            _ => vec![i + 1],
        },
        StepKind::Branch {
            then, otherwise, ..
        } => vec![*then, otherwise.unwrap_or(i + 1)],
        StepKind::Goto(j) => vec![*j],
        StepKind::Call(c) => {
            let mut out: Vec<usize> = crate::model::Outcome::ALL
                .iter()
                .filter_map(|o| match c.route(*o) {
                    Route::Next => Some(i + 1),
                    Route::Step(j) => Some(j),
                    Route::Fallback | Route::Handoff => None,
                })
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        }
        StepKind::Flow(_) | StepKind::Handoff { .. } | StepKind::End(_) => Vec::new(),
    }
}

/// One cycle per strongly connected group of nodes, each listed from its smallest node.
fn cycles(succ: &BTreeMap<Node, Vec<Node>>) -> Vec<Vec<Node>> {
    let mut alive: BTreeSet<Node> = succ.keys().copied().collect();
    let mut out = Vec::new();
    loop {
        prune(succ, &mut alive);
        let Some(&start) = alive.iter().next() else {
            return out;
        };
        // Walk inside the pruned graph until a node repeats: that closes a cycle.
        let mut path: Vec<Node> = vec![start];
        let mut at = start;
        let cycle = loop {
            let Some(next) = succ
                .get(&at)
                .and_then(|s| s.iter().find(|n| alive.contains(n)))
                .copied()
            else {
                break Vec::new();
            };
            if let Some(p) = path.iter().position(|n| *n == next) {
                break path.split_off(p);
            }
            path.push(next);
            at = next;
        };
        if cycle.is_empty() {
            alive.remove(&start);
            continue;
        }
        let mut cycle = cycle;
        if let Some(min) = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .map(|(i, _)| i)
        {
            cycle.rotate_left(min);
        }
        // Drop the whole group so each loop is reported once.
        let group = reachable_within(succ, &alive, cycle[0]);
        for n in &group {
            alive.remove(n);
        }
        out.push(cycle);
    }
}

/// Removes nodes that cannot be on a cycle: no live successor or no live predecessor.
fn prune(succ: &BTreeMap<Node, Vec<Node>>, alive: &mut BTreeSet<Node>) {
    loop {
        let mut has_pred: BTreeSet<Node> = BTreeSet::new();
        for n in alive.iter() {
            for m in succ.get(n).into_iter().flatten() {
                if alive.contains(m) {
                    has_pred.insert(*m);
                }
            }
        }
        let dead: Vec<Node> = alive
            .iter()
            .filter(|n| {
                !has_pred.contains(n)
                    || !succ
                        .get(n)
                        .is_some_and(|s| s.iter().any(|m| alive.contains(m)))
            })
            .copied()
            .collect();
        if dead.is_empty() {
            return;
        }
        for n in dead {
            alive.remove(&n);
        }
    }
}

/// Nodes both reachable from `n` and reaching `n` (its strongly connected group).
fn reachable_within(
    succ: &BTreeMap<Node, Vec<Node>>,
    alive: &BTreeSet<Node>,
    n: Node,
) -> Vec<Node> {
    let walk = |forward: bool| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![n];
        while let Some(x) = todo.pop() {
            if !seen.insert(x) {
                continue;
            }
            if forward {
                todo.extend(
                    succ.get(&x)
                        .into_iter()
                        .flatten()
                        .filter(|m| alive.contains(m)),
                );
            } else {
                todo.extend(
                    succ.iter()
                        .filter(|(k, v)| alive.contains(k) && v.contains(&x))
                        .map(|(k, _)| *k),
                );
            }
        }
        seen
    };
    let fwd = walk(true);
    let back = walk(false);
    fwd.intersection(&back).copied().collect()
}
