//! OwnerSpread: replicas of one ReplicaSet (any controlling owner) prefer
//! nodes holding fewer of their siblings, so losing a node loses few
//! replicas — the per-node part of Kubernetes' default topology spreading
//! (`SelectorSpread` before it).

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{normalize_reverse, CycleState, ScorePlugin};

/// The OwnerSpread score.
pub struct OwnerSpread;

impl ScorePlugin for OwnerSpread {
    fn name(&self) -> &'static str {
        "OwnerSpread"
    }

    /// Pods on the node with the same controlling owner.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> i64 {
        pod.owner
            .as_ref()
            .and_then(|o| node.owners.get(o))
            .map_or(0, |n| i64::from(*n))
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_reverse(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn node_with_fewer_siblings_scores_higher() {
        let mut p = pod(json!({}));
        p.owner = Some("rs-uid".into());
        let empty = node("a", json!({}), json!({}), json!({}));
        let mut crowded = node("b", json!({}), json!({}), json!({}));
        crowded.owners.insert("rs-uid".into(), 3);
        let mut other_owner = node("c", json!({}), json!({}), json!({}));
        other_owner.owners.insert("else".into(), 5);
        let s = CycleState::default();
        let mut scores: Vec<i64> = [&empty, &crowded, &other_owner]
            .iter()
            .map(|n| OwnerSpread.score(&p, n, &s))
            .collect();
        assert_eq!(scores, vec![0, 3, 0]);
        OwnerSpread.normalize(&mut scores);
        assert_eq!(scores, vec![100, 0, 100]);
    }

    #[test]
    fn pod_without_owner_is_indifferent() {
        let p = pod(json!({}));
        let mut n = node("a", json!({}), json!({}), json!({}));
        n.owners.insert("x".into(), 2);
        assert_eq!(OwnerSpread.score(&p, &n, &CycleState::default()), 0);
    }
}
