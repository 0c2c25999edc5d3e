//! The scheduling framework: the extension points a plugin implements and
//! the cycle that runs them for one pod, shaped like Kubernetes'
//! scheduler framework.
//!
//! A cycle is PreFilter (per-pod work, once) → Filter (each node, the first
//! plugin to refuse names the reason) → Score (each feasible node, 0–100
//! per plugin, weighted) → pick the best node, ties broken at random.
//! Reserve and Bind live with the scheduler loop, which owns the cache.
//!
//! Like Kubernetes, a large cluster is not searched exhaustively: once
//! enough feasible nodes are found (`feasible_nodes_to_find`) the search
//! stops, and the next cycle starts where this one stopped, so load
//! spreads over the whole cluster.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};

use rand::Rng;

use super::cache::{Cache, NodeInfo, PodInfo};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a node cannot take the pod: one or more Kubernetes reason strings
/// (`Insufficient cpu`, `node(s) were unschedulable`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub Vec<String>);

impl Rejection {
    /// A single reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Rejection(vec![reason.into()])
    }
}

/// Data plugins compute once per cycle (PreFilter/PreScore) and read for
/// every node, keyed by plugin name.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Store a plugin's per-cycle data.
    pub fn write<T: Any + Send + Sync>(&mut self, plugin: &'static str, value: T) {
        self.data.insert(plugin, Box::new(value));
    }

    /// A plugin's per-cycle data, if it wrote any of this type.
    pub fn read<T: Any>(&self, plugin: &'static str) -> Option<&T> {
        self.data.get(plugin).and_then(|b| b.downcast_ref())
    }
}

/// A plugin that can rule nodes out.
pub trait FilterPlugin: Send + Sync {
    /// The plugin's name, also its key in [`CycleState`].
    fn name(&self) -> &'static str;

    /// Per-pod work before any node is looked at. An error makes the pod
    /// unschedulable on every node, with that message.
    fn pre_filter(
        &self,
        _pod: &PodInfo,
        _cache: &Cache,
        _state: &mut CycleState,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Whether the node can take the pod.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection>;
}

/// A plugin that ranks feasible nodes.
pub trait ScorePlugin: Send + Sync {
    /// The plugin's name, also its key in [`CycleState`].
    fn name(&self) -> &'static str;

    /// Per-pod work before scoring.
    fn pre_score(&self, _pod: &PodInfo, _cache: &Cache, _state: &mut CycleState) {}

    /// A raw score for one node.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64;

    /// Bring raw scores into 0..=[`MAX_NODE_SCORE`] across the nodes
    /// scored (e.g. "fewest of my pods" becomes 100). Default: already in
    /// range.
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Why a pod fits nowhere: the message Kubernetes puts on PodScheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Nodes considered.
    pub nodes: usize,
    /// A PreFilter refusal, which applies to every node.
    pub pre_filter: Option<String>,
    /// Reason → number of nodes that gave it.
    pub reasons: BTreeMap<String, usize>,
}

impl std::fmt::Display for FitError {
    /// `0/3 nodes are available: 1 node(s) ..., 2 Insufficient cpu.` —
    /// the histogram entries sorted as strings, as Kubernetes sorts them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.nodes)?;
        if let Some(m) = &self.pre_filter {
            return write!(f, " {m}.");
        }
        let mut entries: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        entries.sort();
        if !entries.is_empty() {
            write!(f, " {}.", entries.join(", "))?;
        }
        Ok(())
    }
}

/// The plugins, in the order they run, with score weights.
pub struct Framework {
    filters: Vec<Box<dyn FilterPlugin>>,
    scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    /// Where the next cycle's node search starts.
    next_start: usize,
}

impl Framework {
    /// A framework running these plugins.
    pub fn new(
        filters: Vec<Box<dyn FilterPlugin>>,
        scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    ) -> Self {
        Framework {
            filters,
            scores,
            next_start: 0,
        }
    }

    /// One scheduling cycle: the name of the node to bind to, or why none.
    pub fn schedule(&mut self, pod: &PodInfo, cache: &Cache) -> Result<String, FitError> {
        let nodes = cache.nodes();
        let mut state = CycleState::default();
        for f in &self.filters {
            if let Err(msg) = f.pre_filter(pod, cache, &mut state) {
                return Err(FitError {
                    nodes: cache.node_count(),
                    pre_filter: Some(msg),
                    reasons: BTreeMap::new(),
                });
            }
        }
        let feasible = self.find_feasible(pod, nodes, &state, cache.node_count())?;
        if feasible.len() == 1 {
            return Ok(nodes[feasible[0]].name.clone());
        }
        let totals = self.score(pod, cache, &feasible, &mut state);
        Ok(nodes[pick_best(&feasible, &totals)].name.clone())
    }

    /// Filter nodes from the rotating start until enough fit or all were
    /// seen; record every refusal for the error message.
    fn find_feasible(
        &mut self,
        pod: &PodInfo,
        nodes: &[NodeInfo],
        state: &CycleState,
        present: usize,
    ) -> Result<Vec<usize>, FitError> {
        let want = feasible_nodes_to_find(nodes.len());
        let mut feasible = Vec::with_capacity(want.min(nodes.len()));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let start = self.next_start % nodes.len().max(1);
        let mut seen = 0;
        for k in 0..nodes.len() {
            let i = (start + k) % nodes.len();
            seen += 1;
            let node = &nodes[i];
            if !node.present {
                continue;
            }
            match self
                .filters
                .iter()
                .try_for_each(|f| f.filter(pod, node, state))
            {
                Ok(()) => {
                    feasible.push(i);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(Rejection(rs)) => {
                    for r in rs {
                        *reasons.entry(r).or_default() += 1;
                    }
                }
            }
        }
        self.next_start = (start + seen) % nodes.len().max(1);
        if feasible.is_empty() {
            return Err(FitError {
                nodes: present,
                pre_filter: None,
                reasons,
            });
        }
        Ok(feasible)
    }

    /// Weighted sum of every score plugin's normalized scores, per
    /// feasible node.
    fn score(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        feasible: &[usize],
        state: &mut CycleState,
    ) -> Vec<i64> {
        let nodes = cache.nodes();
        let mut totals = vec![0i64; feasible.len()];
        let mut raw = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scores {
            plugin.pre_score(pod, cache, state);
            for (slot, &i) in raw.iter_mut().zip(feasible) {
                *slot = plugin.score(pod, &nodes[i], state);
            }
            plugin.normalize(&mut raw);
            for (t, s) in totals.iter_mut().zip(&raw) {
                *t += s.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        totals
    }
}

/// Index (into `nodes`) of the best-scored feasible node; ties are broken
/// uniformly at random, as Kubernetes does.
fn pick_best(feasible: &[usize], totals: &[i64]) -> usize {
    let mut rng = rand::rng();
    let mut best = feasible[0];
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    for (&i, &s) in feasible.iter().zip(totals) {
        if s > best_score {
            best = i;
            best_score = s;
            ties = 1;
        } else if s == best_score {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

/// How many feasible nodes a cycle looks for before it stops filtering:
/// every node in small clusters, then Kubernetes' adaptive percentage
/// (50% minus 1% per 125 nodes, at least 5%, at least 100 nodes).
pub fn feasible_nodes_to_find(all: usize) -> usize {
    const MIN_NODES: usize = 100;
    if all < MIN_NODES {
        return all;
    }
    let percentage = 50usize.saturating_sub(all / 125).max(5);
    (all * percentage / 100).max(MIN_NODES)
}

/// Scores where fewer is better (untolerated soft taints, pods of the same
/// owner) become 0–100 with the node having the fewest scoring 100.
pub fn normalize_reverse(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE - *s * MAX_NODE_SCORE / max
        };
    }
}

/// Scores that may be negative (preferred anti-affinity) become 0–100
/// between the worst node (0) and the best (100); all equal → 0.
pub fn normalize_min_max(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == min {
            0
        } else {
            (*s - min) * MAX_NODE_SCORE / (max - min)
        };
    }
}

/// Scores where more is better become 0–100 relative to the best node.
pub fn normalize_to_max(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return;
    }
    for s in scores.iter_mut() {
        *s = *s * MAX_NODE_SCORE / max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_reads_like_kubernetes() {
        let e = FitError {
            nodes: 3,
            pre_filter: None,
            reasons: [
                ("node(s) lack runtime handler \"wasmtime\"".to_string(), 2),
                (
                    "node(s) didn't match Pod's node affinity/selector".to_string(),
                    1,
                ),
            ]
            .into(),
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) lack runtime handler \"wasmtime\"."
        );
    }

    #[test]
    fn fit_error_sorts_counts_as_strings_like_kubernetes() {
        // Kubernetes sorts "N reason" strings, so "10 ..." precedes "2 ...".
        let e = FitError {
            nodes: 12,
            pre_filter: None,
            reasons: [
                ("Insufficient cpu".to_string(), 2),
                ("Too many pods".to_string(), 10),
            ]
            .into(),
        };
        assert_eq!(
            e.to_string(),
            "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu."
        );
    }

    #[test]
    fn fit_error_with_no_nodes_and_prefilter() {
        let empty = FitError {
            nodes: 0,
            pre_filter: None,
            reasons: BTreeMap::new(),
        };
        assert_eq!(empty.to_string(), "0/0 nodes are available:");
        let pre = FitError {
            nodes: 2,
            pre_filter: Some("RuntimeClass \"x\" not found".into()),
            reasons: BTreeMap::new(),
        };
        assert_eq!(
            pre.to_string(),
            "0/2 nodes are available: RuntimeClass \"x\" not found."
        );
    }

    #[test]
    fn feasible_nodes_follow_kubernetes_percentages() {
        assert_eq!(feasible_nodes_to_find(3), 3);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(10_000), 500);
    }

    #[test]
    fn normalizers() {
        let mut s = vec![0, 2, 4];
        normalize_reverse(&mut s);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        normalize_reverse(&mut s);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![1, 4];
        normalize_to_max(&mut s);
        assert_eq!(s, vec![25, 100]);
    }

    #[test]
    fn ties_are_broken_among_the_best_only() {
        let feasible = [5, 6, 7];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(pick_best(&feasible, &[10, 30, 30]));
        }
        assert_eq!(seen, [6, 7].into());
    }
}
