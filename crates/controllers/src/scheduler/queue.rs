//! Pods waiting to be scheduled: an active heap (highest priority first,
//! then first come), and the pods found unschedulable, parked until the
//! cluster changes in a way that could help them or a periodic retry.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::cache::PodKey;

/// How long an unschedulable pod waits at most before it is tried again.
pub const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(30);

/// The scheduling queue.
#[derive(Debug, Default)]
pub struct Queue {
    active: BinaryHeap<(i32, Reverse<u64>, PodKey)>,
    queued: HashSet<PodKey>,
    seq: u64,
    unschedulable: HashMap<PodKey, (i32, Instant)>,
}

impl Queue {
    /// Queue a pod to be tried (again) unless it already is.
    pub fn push(&mut self, key: PodKey, priority: i32) {
        self.unschedulable.remove(&key);
        if self.queued.insert(key.clone()) {
            self.seq += 1;
            self.active.push((priority, Reverse(self.seq), key));
        }
    }

    /// The next pod to try.
    pub fn pop(&mut self) -> Option<PodKey> {
        let (_, _, key) = self.active.pop()?;
        self.queued.remove(&key);
        Some(key)
    }

    /// Park a pod that fits nowhere.
    pub fn park(&mut self, key: PodKey, priority: i32) {
        self.unschedulable.insert(key, (priority, Instant::now()));
    }

    /// Whether a pod is parked.
    pub fn is_parked(&self, key: &str) -> bool {
        self.unschedulable.contains_key(key)
    }

    /// Forget a pod (deleted, or bound by someone else).
    pub fn remove(&mut self, key: &str) {
        self.unschedulable.remove(key);
        // A stale heap entry is skipped when popped: its pod is gone.
        self.queued.remove(key);
    }

    /// The cluster changed: every parked pod gets another try.
    pub fn unpark_all(&mut self) -> usize {
        let parked: Vec<_> = self.unschedulable.drain().collect();
        let n = parked.len();
        for (key, (prio, _)) in parked {
            self.push(key, prio);
        }
        n
    }

    /// Parked pods whose wait is over get another try.
    pub fn unpark_expired(&mut self, now: Instant) {
        let due: Vec<(PodKey, i32)> = self
            .unschedulable
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= UNSCHEDULABLE_RETRY)
            .map(|(k, (p, _))| (k.clone(), *p))
            .collect();
        for (key, prio) in due {
            self.push(key, prio);
        }
    }

    /// Pods waiting to be tried now.
    pub fn active_len(&self) -> usize {
        self.queued.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut q = Queue::default();
        q.push("a".into(), 0);
        q.push("b".into(), 10);
        q.push("c".into(), 0);
        q.push("a".into(), 0);
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.pop().as_deref(), Some("c"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn parked_pods_return_on_change_or_after_the_retry_period() {
        let mut q = Queue::default();
        q.park("a".into(), 0);
        assert!(q.is_parked("a"));
        q.unpark_expired(Instant::now());
        assert_eq!(q.pop(), None, "not yet due");
        q.unpark_expired(Instant::now() + UNSCHEDULABLE_RETRY);
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.park("b".into(), 0);
        assert_eq!(q.unpark_all(), 1);
        assert_eq!(q.pop().as_deref(), Some("b"));
    }
}
