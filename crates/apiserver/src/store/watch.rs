//! Fan-out of committed events to watchers, with a bounded history so that
//! watches can resume.
//!
//! The hub's lock is held both while an event is published and while a new
//! watcher replays history and registers, so a watcher sees every event
//! after its starting revision exactly once, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A committed change to one key.
#[derive(Debug)]
pub struct Event {
    pub rev: u64,
    pub kind: EventType,
    pub key: String,
    /// The object after the change (for deletions: its last state).
    pub object: Arc<Value>,
    /// `object` serialized once, shared by every watcher that sends it as is.
    pub raw: Bytes,
    /// The object before the change, so that selector watches can turn an
    /// update that leaves the selection into a DELETED event.
    pub prev: Option<Arc<Value>>,
}

/// A registered watch: receives events in revision order. The channel closes
/// when the watcher fell too far behind or the store shut down; the client
/// then resumes from the last revision it saw.
pub struct Watcher {
    pub events: mpsc::Receiver<Arc<Event>>,
}

struct Subscriber {
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

struct Inner {
    history: VecDeque<Arc<Event>>,
    /// Every event after this revision is in `history`.
    complete_after: u64,
    subscribers: Vec<Subscriber>,
}

/// Holds recent events and the live watchers.
pub struct WatchHub {
    inner: Mutex<Inner>,
    capacity: usize,
    queue: usize,
    published: AtomicU64,
}

impl WatchHub {
    /// `start` is the store's revision when the hub is created: history
    /// starts there. `capacity` events are kept for resumption; each watcher
    /// may have `queue` undelivered events before it is dropped.
    pub fn new(start: u64, capacity: usize, queue: usize) -> Self {
        WatchHub {
            inner: Mutex::new(Inner {
                history: VecDeque::new(),
                complete_after: start,
                subscribers: Vec::new(),
            }),
            capacity,
            queue,
            published: AtomicU64::new(start),
        }
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Hand committed events (in revision order) to history and watchers.
    pub fn publish(&self, events: Vec<Arc<Event>>) {
        let Some(last) = events.last().map(|e| e.rev) else {
            return;
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            inner.subscribers.retain(|s| {
                if !ev.key.starts_with(&s.prefix) {
                    return !s.tx.is_closed();
                }
                // A full queue means the client is not reading: drop it
                // rather than buffer without bound. It resumes from history.
                s.tx.try_send(ev.clone()).is_ok()
            });
            inner.history.push_back(ev);
            if inner.history.len() > self.capacity {
                if let Some(old) = inner.history.pop_front() {
                    inner.complete_after = old.rev;
                }
            }
        }
        self.published.store(last, Ordering::Release);
    }

    /// Register a watcher for keys under `prefix` that sees every event with
    /// a revision greater than `from`.
    pub fn subscribe(&self, prefix: &str, from: u64) -> Result<Watcher, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if from < inner.complete_after {
            return Err(StoreError::Expired {
                requested: from,
                oldest: inner.complete_after + 1,
            });
        }
        let backlog: Vec<Arc<Event>> = inner
            .history
            .iter()
            .filter(|e| e.rev > from && e.key.starts_with(prefix))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(self.queue.max(backlog.len() + 1));
        for ev in backlog {
            // Cannot fail: the channel was sized to hold the backlog.
            let _ = tx.try_send(ev);
        }
        inner.subscribers.push(Subscriber {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(Watcher { events: rx })
    }

    /// Number of live watchers (for metrics and tests).
    pub fn watchers(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .subscribers
            .iter()
            .filter(|s| !s.tx.is_closed())
            .count()
    }

    /// Close every watcher (shutdown).
    pub fn close_all(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rev: u64, key: &str) -> Arc<Event> {
        Arc::new(Event {
            rev,
            kind: EventType::Added,
            key: key.into(),
            object: Arc::new(Value::Null),
            raw: Bytes::new(),
            prev: None,
        })
    }

    #[tokio::test]
    async fn resumes_from_history_then_live_in_order() {
        let hub = WatchHub::new(10, 100, 100);
        hub.publish(vec![
            ev(11, "/core/pods/a/x"),
            ev(12, "/core/cm/a/y"),
            ev(13, "/core/pods/a/z"),
        ]);
        let mut w = hub.subscribe("/core/pods/", 11).expect("in history");
        hub.publish(vec![ev(14, "/core/pods/b/q")]);
        let revs: Vec<u64> = [w.events.recv().await, w.events.recv().await]
            .into_iter()
            .map(|e| e.expect("event").rev)
            .collect();
        assert_eq!(revs, vec![13, 14]);
    }

    #[test]
    fn too_old_revision_is_expired() {
        let hub = WatchHub::new(10, 2, 100);
        hub.publish(vec![ev(11, "/a"), ev(12, "/a"), ev(13, "/a")]);
        assert!(hub.subscribe("/", 11).is_ok());
        match hub.subscribe("/", 10) {
            Err(StoreError::Expired {
                requested: 10,
                oldest: 12,
            }) => {}
            other => panic!("expected Expired, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn slow_watcher_is_dropped_not_buffered() {
        let hub = WatchHub::new(0, 100, 2);
        let mut w = hub.subscribe("/", 0).expect("subscribe");
        hub.publish((1..=5).map(|r| ev(r, "/a")).collect());
        assert_eq!(hub.watchers(), 0);
        assert_eq!(w.events.try_recv().map(|e| e.rev).ok(), Some(1));
    }
}
