//! The garbage collector: deletes objects whose owners are gone and carries
//! out the `orphan` and `foregroundDeletion` finalizers, with the semantics
//! of Kubernetes' garbage collector
//! (<https://kubernetes.io/docs/concepts/architecture/garbage-collection/>).
//!
//! - **Background**: an object all of whose `ownerReferences` name owners
//!   that no longer exist is deleted. References to owners that are gone are
//!   dropped from objects that still have a live owner.
//! - **Orphan**: an owner being deleted with the `orphan` finalizer first
//!   loses its references from every dependent, then the finalizer goes.
//! - **Foreground**: an owner being deleted with `foregroundDeletion` has its
//!   dependents deleted; once none with `blockOwnerDeletion` remains, the
//!   finalizer goes.
//!
//! The collector keeps an in-memory graph (uid → key, owner uid → dependent
//! keys) built from one listing and kept current from a watch on every key.
//! Events put keys on a work queue; each item is decided on a fresh read of
//! the store, so a stale graph can delay a decision but never make a wrong
//! one. Writes carry the revision they were decided on; a conflict puts the
//! key back on the queue with a backoff, to be decided again.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;

use crate::registry::{self, name_of};
use crate::resources::{self, Resource};
use crate::store::{Event, EventType, Store, StoreError, Stored, WriteOp};

/// Finalizer asking the collector to orphan an owner's dependents.
pub const ORPHAN: &str = "orphan";
/// Finalizer asking the collector to delete an owner's dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Objects read per page while building the graph, so that a large store
/// is never held in memory at once.
const PAGE: usize = 500;
/// How long the loop sleeps when nothing is queued; any event wakes it.
const IDLE: Duration = Duration::from_secs(60);

/// Run the garbage collector until the store closes.
pub async fn run(store: Arc<dyn Store>) {
    let mut gc = Collector {
        store,
        graph: Graph::default(),
        queue: WorkQueue::default(),
        since: 0,
    };
    loop {
        match gc.session().await {
            Err(StoreError::Closed) => {
                tracing::debug!("store closed; garbage collector stops");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector: rebuilding its graph"),
            Ok(()) => tracing::debug!("garbage collector: watch closed; rebuilding its graph"),
        }
        // A store that keeps failing is not hammered with full listings.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One reference from a dependent to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    block: bool,
}

/// An owner as seen from one of its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// Exists and is not waiting for its dependents: keeps the dependent.
    Solid,
    /// No object with the reference's uid where the owner must live.
    Dangling,
    /// Being deleted in the foreground: wants its dependents gone.
    Waiting,
    /// The reference names a kind skiff does not serve, or a namespaced
    /// owner of a cluster-scoped object. Kubernetes never collects through
    /// such a reference, so it keeps the dependent.
    Unresolvable,
}

/// What the graph remembers of one object.
#[derive(Debug, Clone)]
struct Entry {
    uid: String,
    rev: u64,
    namespace: Option<String>,
    owners: Vec<OwnerRef>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Entry {
    fn of(obj: &Value, rev: u64) -> Option<Entry> {
        Some(Entry {
            uid: obj["metadata"]["uid"].as_str()?.to_string(),
            rev,
            namespace: namespace_of(obj).map(str::to_string),
            owners: owner_refs(obj),
            deleting: is_deleting(obj),
            finalizers: finalizers(obj),
        })
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Whether the object is an owner the collector has work for.
    fn gc_finalizing(&self) -> bool {
        self.deleting && (self.has_finalizer(ORPHAN) || self.has_finalizer(FOREGROUND))
    }

    /// Whether a change from `self` to `other` can change a decision.
    fn same_for_gc(&self, other: &Entry) -> bool {
        self.uid == other.uid
            && self.owners == other.owners
            && self.deleting == other.deleting
            && self.finalizers == other.finalizers
    }
}

/// Who owns what, by key and uid.
#[derive(Debug, Default)]
struct Graph {
    objects: HashMap<String, Entry>,
    by_uid: HashMap<String, String>,
    /// Owner uid → keys of the objects that reference it.
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Read every stored object, a page at a time.
    fn build(store: &dyn Store, page: usize) -> Result<Graph, StoreError> {
        let mut g = Graph::default();
        for (prefix, r) in prefixes() {
            let mut after: Option<String> = None;
            loop {
                let l = store.list(prefix, after.as_deref(), Some(page))?;
                for s in l.items {
                    let key = registry::key(r, namespace_of(&s.value), name_of(&s.value));
                    if let Some(e) = Entry::of(&s.value, s.rev) {
                        g.insert(key, e);
                    }
                }
                match l.continue_after {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
        }
        Ok(g)
    }

    /// Add or replace an object; returns what it replaced.
    fn insert(&mut self, key: String, e: Entry) -> Option<Entry> {
        let old = self.remove(&key);
        self.by_uid.insert(e.uid.clone(), key.clone());
        for o in &e.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(key.clone());
        }
        self.objects.insert(key, e);
        old
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let old = self.objects.remove(key)?;
        if self.by_uid.get(&old.uid).is_some_and(|k| k == key) {
            self.by_uid.remove(&old.uid);
        }
        for o in &old.owners {
            if let Some(d) = self.dependents.get_mut(&o.uid) {
                d.remove(key);
                if d.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
        Some(old)
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Dependents of `uid` whose reference to it blocks its deletion.
    fn blocking_dependents(&self, uid: &str) -> Vec<String> {
        self.dependents_of(uid)
            .into_iter()
            .filter(|k| {
                self.objects
                    .get(k)
                    .is_some_and(|e| e.owners.iter().any(|o| o.uid == uid && o.block))
            })
            .collect()
    }

    /// Keys of the owners of `e` that the graph knows.
    fn owner_keys(&self, owners: &[OwnerRef]) -> Vec<String> {
        owners
            .iter()
            .filter_map(|o| self.by_uid.get(&o.uid).cloned())
            .collect()
    }

    /// Whether the graph alone shows `o` as a live owner of an object in
    /// `ns`; anything else is checked against the store.
    fn solid(&self, o: &OwnerRef, ns: Option<&str>) -> bool {
        let Some(k) = owner_key(o, ns) else {
            return false;
        };
        self.by_uid.get(&o.uid) == Some(&k)
            && self
                .objects
                .get(&k)
                .is_some_and(|x| !x.waiting_for_dependents())
    }

    /// Whether the collector may have something to do for `e`.
    fn needs_attention(&self, e: &Entry) -> bool {
        if e.gc_finalizing() {
            return true;
        }
        !e.deleting
            && e.owners
                .iter()
                .any(|o| !self.solid(o, e.namespace.as_deref()))
    }

    /// Every key that needs attention, in key order so that work is
    /// predictable.
    fn attention(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .objects
            .iter()
            .filter(|(_, e)| self.needs_attention(e))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

/// Keys waiting to be decided, each at most once, plus retries due later.
#[derive(Debug, Default)]
struct WorkQueue {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    later: Vec<(Instant, String)>,
    failures: HashMap<String, u32>,
}

impl WorkQueue {
    fn push(&mut self, key: String) {
        if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    fn pop(&mut self, now: Instant) -> Option<String> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.later = later;
        for (_, k) in due {
            self.push(k);
        }
        let k = self.ready.pop_front()?;
        self.queued.remove(&k);
        Some(k)
    }

    /// Try `key` again after a backoff that grows with its failures.
    fn retry(&mut self, key: String) {
        let n = self.failures.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let delay = Duration::from_millis(50)
            .saturating_mul(1 << (*n - 1).min(8))
            .min(Duration::from_secs(10));
        self.later.push((Instant::now() + delay, key));
    }

    fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    fn next_due(&self) -> Option<Instant> {
        self.later.iter().map(|(t, _)| *t).min()
    }
}

struct Collector {
    store: Arc<dyn Store>,
    graph: Graph,
    queue: WorkQueue,
    /// The revision the graph was built at: older events are in it.
    since: u64,
}

impl Collector {
    /// Build the graph, then follow the watch until it closes.
    async fn session(&mut self) -> Result<(), StoreError> {
        // Watch first, from a revision no later than the listing's, so no
        // event falls between the two.
        let from = self.store.revision();
        let mut watcher = self.store.watch("/", from)?;
        self.graph = Graph::build(&*self.store, PAGE)?;
        self.since = from;
        for key in self.graph.attention() {
            self.queue.push(key);
        }
        tracing::debug!(
            objects = self.graph.objects.len(),
            rev = from,
            "garbage collector graph built"
        );
        loop {
            loop {
                match watcher.events.try_recv() {
                    Ok(ev) => self.observe(&ev),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let now = Instant::now();
            if let Some(key) = self.queue.pop(now) {
                self.work(key).await?;
                continue;
            }
            let wait = self
                .queue
                .next_due()
                .map_or(IDLE, |t| t.saturating_duration_since(now));
            match tokio::time::timeout(wait, watcher.events.recv()).await {
                Ok(Some(ev)) => self.observe(&ev),
                Ok(None) => return Ok(()),
                // A retry is due.
                Err(_) => {}
            }
        }
    }

    /// Fold one event into the graph and queue what it may have changed.
    fn observe(&mut self, ev: &Event) {
        // Listings of later pages may already hold this change (or a
        // newer one); applying it again would roll the graph back.
        if ev.rev <= self.since || resource_of_key(&ev.key).is_none() {
            return;
        }
        let known = self.graph.objects.get(&ev.key).map(|e| e.rev);
        match ev.kind {
            EventType::Deleted => {
                if known.is_some_and(|r| r > ev.rev) {
                    return;
                }
                if let Some(old) = self.graph.remove(&ev.key) {
                    self.after_removal(&old);
                }
            }
            EventType::Added | EventType::Modified => {
                if known.is_some_and(|r| r >= ev.rev) {
                    return;
                }
                let Some(new) = Entry::of(&ev.object, ev.rev) else {
                    return;
                };
                let old = self.graph.insert(ev.key.clone(), new.clone());
                self.after_change(&ev.key, old, &new);
            }
        }
    }

    fn after_removal(&mut self, old: &Entry) {
        // Its dependents may have lost their last owner, and owners waiting
        // for it in the foreground may now go.
        for k in self.graph.dependents_of(&old.uid) {
            self.queue.push(k);
        }
        for k in self.graph.owner_keys(&old.owners) {
            self.queue.push(k);
        }
    }

    fn after_change(&mut self, key: &str, old: Option<Entry>, new: &Entry) {
        if let Some(old) = &old {
            if old.uid != new.uid {
                self.after_removal(old);
            } else if old.same_for_gc(new) {
                return;
            }
        }
        if self.graph.needs_attention(new) {
            self.queue.push(key.to_string());
        }
        // An owner waiting for this object may be free once it no longer
        // references it.
        if let Some(old) = old {
            let dropped: Vec<OwnerRef> = old
                .owners
                .into_iter()
                .filter(|o| o.block && !new.owners.iter().any(|n| n.uid == o.uid && n.block))
                .collect();
            for k in self.graph.owner_keys(&dropped) {
                self.queue.push(k);
            }
        }
    }

    async fn work(&mut self, key: String) -> Result<(), StoreError> {
        match self.process(&key).await {
            Ok(()) | Err(StoreError::NotFound) => {
                self.queue.forget(&key);
                Ok(())
            }
            Err(StoreError::Closed) => Err(StoreError::Closed),
            Err(e) => {
                tracing::debug!(%key, error = %e, "garbage collector: retrying later");
                self.queue.retry(key);
                Ok(())
            }
        }
    }

    /// Decide one key on a fresh read.
    async fn process(&mut self, key: &str) -> Result<(), StoreError> {
        let Some(r) = resource_of_key(key) else {
            return Ok(());
        };
        let Some(obj) = self.store.get(key)? else {
            return Ok(());
        };
        if !is_deleting(&obj.value) {
            return self.collect_if_unowned(key, r, &obj).await;
        }
        let fins = finalizers(&obj.value);
        if fins.iter().any(|f| f == ORPHAN) {
            self.orphan_dependents(key, r, &obj).await
        } else if fins.iter().any(|f| f == FOREGROUND) {
            self.delete_dependents_first(key, r, &obj).await
        } else {
            Ok(())
        }
    }

    /// Background collection: delete `obj` when none of its owners is live.
    async fn collect_if_unowned(
        &self,
        key: &str,
        r: &Resource,
        obj: &Stored,
    ) -> Result<(), StoreError> {
        let refs = owner_refs(&obj.value);
        if refs.is_empty() {
            return Ok(());
        }
        let ns = namespace_of(&obj.value);
        let mut keep = false;
        let mut waiting = false;
        let mut stale = Vec::new();
        for o in &refs {
            match self.classify(o, ns)? {
                OwnerState::Solid | OwnerState::Unresolvable => keep = true,
                OwnerState::Dangling => stale.push(o.uid.clone()),
                OwnerState::Waiting => {
                    waiting = true;
                    stale.push(o.uid.clone());
                }
            }
        }
        if keep {
            if stale.is_empty() {
                return Ok(());
            }
            // A live owner keeps the object. Kubernetes drops the references
            // to owners that are gone or waiting, so that those can finish.
            tracing::debug!(%key, dropped = ?stale, "dropping references to owners that are gone or going");
            let mut v = (*obj.value).clone();
            drop_owner_refs(&mut v, |o| stale.contains(&o.uid));
            return write_gone_ok(self.store.write(WriteOp::Update {
                key: key.to_string(),
                value: v,
                expected: Some(obj.rev),
            }))
            .await;
        }
        // An owner deleted in the foreground propagates that to dependents
        // that own others themselves, so the whole tree goes bottom-up.
        let uid = obj.value["metadata"]["uid"].as_str().unwrap_or("");
        let foreground = waiting && !self.graph.dependents_of(uid).is_empty();
        tracing::debug!(%key, foreground, "all owners gone or going; deleting");
        delete_object(&*self.store, key, r, obj, foreground).await
    }

    /// Check one owner against the store.
    fn classify(&self, o: &OwnerRef, ns: Option<&str>) -> Result<OwnerState, StoreError> {
        let Some(k) = owner_key(o, ns) else {
            tracing::debug!(kind = %o.kind, api_version = %o.api_version, name = %o.name, "owner reference cannot be resolved; keeping the dependent");
            return Ok(OwnerState::Unresolvable);
        };
        Ok(match self.store.get(&k)? {
            Some(owner) if owner.value["metadata"]["uid"].as_str() == Some(&o.uid) => {
                let deleting = is_deleting(&owner.value);
                if deleting && finalizers(&owner.value).iter().any(|f| f == FOREGROUND) {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    /// The `orphan` finalizer: drop this owner from every dependent, then
    /// drop the finalizer.
    async fn orphan_dependents(
        &self,
        key: &str,
        r: &Resource,
        owner: &Stored,
    ) -> Result<(), StoreError> {
        let uid = owner.value["metadata"]["uid"].as_str().unwrap_or("");
        for dep in self.graph.dependents_of(uid) {
            let Some(d) = self.store.get(&dep)? else {
                continue;
            };
            let mut v = (*d.value).clone();
            if !drop_owner_refs(&mut v, |o| o.uid == uid) {
                continue;
            }
            tracing::debug!(dependent = %dep, owner = %key, "orphaning");
            write_gone_ok(self.store.write(WriteOp::Update {
                key: dep,
                value: v,
                expected: Some(d.rev),
            }))
            .await?;
        }
        tracing::debug!(owner = %key, "dependents orphaned; removing the orphan finalizer");
        remove_finalizer(&*self.store, key, r, owner, ORPHAN).await
    }

    /// The `foregroundDeletion` finalizer: delete the dependents, and drop
    /// the finalizer once none that blocks is left.
    async fn delete_dependents_first(
        &mut self,
        key: &str,
        r: &Resource,
        owner: &Stored,
    ) -> Result<(), StoreError> {
        let uid = owner.value["metadata"]["uid"].as_str().unwrap_or("");
        for dep in self.graph.dependents_of(uid) {
            self.queue.push(dep);
        }
        let blocking = self.graph.blocking_dependents(uid);
        if !blocking.is_empty() {
            tracing::debug!(owner = %key, blocking = blocking.len(), "waiting for dependents");
            return Ok(());
        }
        tracing::debug!(owner = %key, "no blocking dependents left; removing the foregroundDeletion finalizer");
        remove_finalizer(&*self.store, key, r, owner, FOREGROUND).await
    }
}

/// Delete an object the way an API DELETE would: at once, or by marking
/// it when finalizers or a node must act first.
async fn delete_object(
    store: &dyn Store,
    key: &str,
    r: &Resource,
    obj: &Stored,
    foreground: bool,
) -> Result<(), StoreError> {
    if is_deleting(&obj.value) {
        return Ok(());
    }
    let mut v = (*obj.value).clone();
    let mut fins = finalizers(&v);
    if foreground && !fins.iter().any(|f| f == FOREGROUND) {
        fins.push(FOREGROUND.to_string());
    }
    let on_node = r.kind == "Pod" && pod_awaits_node(&v);
    if fins.is_empty() && !on_node {
        return write_gone_ok(store.write(WriteOp::Delete {
            key: key.to_string(),
            expected: Some(obj.rev),
        }))
        .await;
    }
    let grace = if r.kind == "Pod" {
        v["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
            .max(0)
    } else {
        0
    };
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    let m = registry::meta_mut(&mut v);
    m.insert(
        "deletionTimestamp".into(),
        json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    if !fins.is_empty() {
        m.insert("finalizers".into(), json!(fins));
    }
    write_gone_ok(store.write(WriteOp::Update {
        key: key.to_string(),
        value: v,
        expected: Some(obj.rev),
    }))
    .await
}

/// Drop `finalizer` from a deleting object; when it was the last one the
/// object goes (unless it is a pod its node must stop first).
async fn remove_finalizer(
    store: &dyn Store,
    key: &str,
    r: &Resource,
    obj: &Stored,
    finalizer: &str,
) -> Result<(), StoreError> {
    let mut v = (*obj.value).clone();
    let mut fins = finalizers(&v);
    fins.retain(|f| f != finalizer);
    let m = registry::meta_mut(&mut v);
    if fins.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(fins));
    }
    let key = key.to_string();
    let op = if fins.is_empty() && !(r.kind == "Pod" && pod_awaits_node(&v)) {
        WriteOp::Delete {
            key,
            expected: Some(obj.rev),
        }
    } else {
        WriteOp::Update {
            key,
            value: v,
            expected: Some(obj.rev),
        }
    };
    write_gone_ok(store.write(op)).await
}

/// A write whose object vanished meanwhile has nothing left to do.
async fn write_gone_ok(
    w: futures::future::BoxFuture<'static, Result<Stored, StoreError>>,
) -> Result<(), StoreError> {
    match w.await {
        Ok(_) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A pod bound to a node and still running: its node agent must stop it
/// before it disappears.
fn pod_awaits_node(pod: &Value) -> bool {
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    bound
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn namespace_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
}

/// The owner references of an object; ones without a uid cannot name an
/// owner and are skipped.
fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(owner_ref).collect())
        .unwrap_or_default()
}

fn owner_ref(r: &Value) -> Option<OwnerRef> {
    let text = |f: &str| r[f].as_str().unwrap_or("").to_string();
    Some(OwnerRef {
        api_version: text("apiVersion"),
        kind: text("kind"),
        name: text("name"),
        uid: r["uid"].as_str().filter(|u| !u.is_empty())?.to_string(),
        block: r["blockOwnerDeletion"].as_bool().unwrap_or(false),
    })
}

/// Remove the references `drop` selects; returns whether any went.
fn drop_owner_refs(obj: &mut Value, drop: impl Fn(&OwnerRef) -> bool) -> bool {
    let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else {
        return false;
    };
    let kept: Vec<Value> = refs
        .iter()
        .filter(|r| !owner_ref(r).is_some_and(|o| drop(&o)))
        .cloned()
        .collect();
    if kept.len() == refs.len() {
        return false;
    }
    let m = registry::meta_mut(obj);
    if kept.is_empty() {
        m.remove("ownerReferences");
    } else {
        m.insert("ownerReferences".into(), Value::Array(kept));
    }
    true
}

/// Where the owner a reference names must be stored, for a dependent in
/// namespace `ns` (`None`: cluster-scoped). A namespaced owner lives in its
/// dependent's namespace; cluster-scoped dependents cannot have one.
fn owner_key(o: &OwnerRef, ns: Option<&str>) -> Option<String> {
    let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let r = resources::all()
        .iter()
        .find(|r| !r.create_only && r.group == group && r.kind == o.kind)?;
    if r.namespaced() {
        Some(registry::key(r, Some(ns?), &o.name))
    } else {
        Some(registry::key(r, None, &o.name))
    }
}

/// Each stored collection once (a kind served in several versions shares
/// one prefix).
fn prefixes() -> &'static [(String, &'static Resource)] {
    static P: OnceLock<Vec<(String, &'static Resource)>> = OnceLock::new();
    P.get_or_init(|| {
        let mut out: Vec<(String, &'static Resource)> = Vec::new();
        for r in resources::all().iter().filter(|r| !r.create_only) {
            let p = r.store_prefix();
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, r));
            }
        }
        out
    })
}

fn resource_of_key(key: &str) -> Option<&'static Resource> {
    prefixes()
        .iter()
        .find(|(p, _)| key.starts_with(p.as_str()))
        .map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;

    struct Cluster {
        store: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    fn open() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("gc.redb"), 10_000).expect("open store"));
        Cluster { store, _dir: dir }
    }

    fn start() -> Cluster {
        let c = open();
        tokio::spawn(run(c.store.clone()));
        c
    }

    fn resource(group: &str, kind: &str) -> &'static Resource {
        resources::all()
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .expect("served kind")
    }

    fn key_of(obj: &Value) -> String {
        let api = obj["apiVersion"].as_str().expect("apiVersion");
        let group = api.rsplit_once('/').map_or("", |(g, _)| g);
        let r = resource(group, obj["kind"].as_str().expect("kind"));
        registry::key(r, namespace_of(obj), name_of(obj))
    }

    impl Cluster {
        async fn create(&self, mut obj: Value) -> Value {
            let api = obj["apiVersion"].as_str().expect("apiVersion").to_string();
            let group = api.rsplit_once('/').map_or("", |(g, _)| g).to_string();
            let r = resource(&group, obj["kind"].as_str().expect("kind"));
            registry::prepare_create(r, &mut obj);
            let key = key_of(&obj);
            let s = self
                .store
                .write(WriteOp::Create { key, value: obj })
                .await
                .expect("create");
            (*s.value).clone()
        }

        fn get(&self, obj: &Value) -> Option<Value> {
            self.store
                .get(&key_of(obj))
                .expect("get")
                .map(|s| (*s.value).clone())
        }

        async fn delete(&self, obj: &Value) {
            self.store
                .write(WriteOp::Delete {
                    key: key_of(obj),
                    expected: None,
                })
                .await
                .expect("delete");
        }

        /// What the API server does for DELETE with propagationPolicy
        /// Orphan or Foreground: mark the owner and add the finalizer.
        async fn delete_with(&self, obj: &Value, finalizers: &[&str]) {
            let s = self.store.get(&key_of(obj)).expect("get").expect("present");
            let mut v = (*s.value).clone();
            v["metadata"]["deletionTimestamp"] = json!(registry::now_rfc3339());
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            v["metadata"]["finalizers"] = json!(finalizers);
            self.store
                .write(WriteOp::Update {
                    key: key_of(obj),
                    value: v,
                    expected: Some(s.rev),
                })
                .await
                .expect("mark deleting");
        }

        /// Poll until `f` holds; fail the test after a bound.
        async fn eventually(&self, what: &str, f: impl Fn(&Cluster) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !f(self) {
                assert!(Instant::now() < deadline, "timed out waiting for: {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn owned_by(owner: &Value, block: bool) -> Value {
        json!({
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": true,
            "blockOwnerDeletion": block,
        })
    }

    fn deployment(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"}, "spec": {}})
    }

    fn replicaset(name: &str, owners: Vec<Value>) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default", "ownerReferences": owners}, "spec": {}})
    }

    fn pod(name: &str, owners: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "ownerReferences": owners}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    }

    fn bound_pod(name: &str, owners: Vec<Value>, phase: &str) -> Value {
        let mut p = pod(name, owners);
        p["spec"]["nodeName"] = json!("node-1");
        p["status"] = json!({"phase": phase});
        p
    }

    #[tokio::test]
    async fn background_deletes_pods_of_a_deleted_replicaset() {
        // `kubectl delete rs web` (propagationPolicy Background): the
        // ReplicaSet goes at once and the collector removes its pods.
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let p1 = c.create(pod("web-1", vec![owned_by(&rs, true)])).await;
        let p2 = c.create(pod("web-2", vec![owned_by(&rs, true)])).await;
        let loner = c.create(pod("loner", vec![])).await;
        c.delete(&rs).await;
        c.eventually("pods of the deleted ReplicaSet are collected", |c| {
            c.get(&p1).is_none() && c.get(&p2).is_none()
        })
        .await;
        assert!(
            c.get(&loner).is_some(),
            "a pod without owners is never collected"
        );
    }

    #[tokio::test]
    async fn dependent_with_a_live_owner_survives_and_loses_the_dangling_reference() {
        // Kubernetes keeps a dependent while any owner exists, and drops the
        // references to owners that are gone.
        let c = start();
        let a = c.create(replicaset("a", vec![])).await;
        let b = c.create(replicaset("b", vec![])).await;
        let p = c
            .create(pod(
                "shared",
                vec![owned_by(&a, false), owned_by(&b, false)],
            ))
            .await;
        c.delete(&a).await;
        c.eventually("the reference to the deleted owner is dropped", |c| {
            c.get(&p).is_some_and(|v| {
                v["metadata"]["ownerReferences"].as_array().map(Vec::len) == Some(1)
            })
        })
        .await;
        let v = c.get(&p).expect("the pod survives its first owner");
        assert_eq!(v["metadata"]["ownerReferences"][0]["name"], "b");
        c.delete(&b).await;
        c.eventually("the pod goes with its last owner", |c| c.get(&p).is_none())
            .await;
    }

    #[tokio::test]
    async fn orphan_drops_owner_references_then_the_owner_goes() {
        // `kubectl delete rs web --cascade=orphan`.
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let other = c.create(replicaset("other", vec![])).await;
        let p1 = c.create(pod("web-1", vec![owned_by(&rs, true)])).await;
        let p2 = c
            .create(pod(
                "web-2",
                vec![owned_by(&rs, true), owned_by(&other, false)],
            ))
            .await;
        c.delete_with(&rs, &[ORPHAN]).await;
        c.eventually("the orphaned owner disappears", |c| c.get(&rs).is_none())
            .await;
        let v1 = c.get(&p1).expect("orphaned pod stays");
        assert!(v1["metadata"].get("ownerReferences").is_none());
        assert!(v1["metadata"].get("deletionTimestamp").is_none());
        let v2 = c.get(&p2).expect("orphaned pod stays");
        assert_eq!(
            v2["metadata"]["ownerReferences"],
            json!([owned_by(&other, false)]),
            "only the orphaning owner's reference goes"
        );
    }

    #[tokio::test]
    async fn orphan_keeps_other_finalizers_and_the_owner() {
        // Removing `orphan` is the collector's only part; another finalizer
        // keeps the owner until its controller is done.
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let p = c.create(pod("web-1", vec![owned_by(&rs, true)])).await;
        c.delete_with(&rs, &[ORPHAN, "example.com/hold"]).await;
        c.eventually("the orphan finalizer goes", |c| {
            c.get(&rs)
                .is_some_and(|v| v["metadata"]["finalizers"] == json!(["example.com/hold"]))
        })
        .await;
        let v = c.get(&p).expect("the orphaned pod stays");
        assert!(v["metadata"].get("ownerReferences").is_none());
        assert!(is_deleting(
            &c.get(&rs).expect("held by its other finalizer")
        ));
    }

    #[tokio::test]
    async fn foreground_deletes_dependents_bottom_up_then_the_owner() {
        // `kubectl delete deploy web --cascade=foreground`: pods go first,
        // then the ReplicaSet, then the Deployment.
        let c = start();
        let d = c.create(deployment("web")).await;
        let rs = c
            .create(replicaset("web-1", vec![owned_by(&d, true)]))
            .await;
        let pods = [
            c.create(pod("web-1-a", vec![owned_by(&rs, true)])).await,
            c.create(pod("web-1-b", vec![owned_by(&rs, true)])).await,
        ];
        let mut w = c.store.watch("/", c.store.revision()).expect("watch");
        c.delete_with(&d, &[FOREGROUND]).await;
        let mut order = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !order.contains(&key_of(&d)) {
            let ev = tokio::time::timeout_at(deadline, w.events.recv())
                .await
                .expect("the deployment is deleted in time")
                .expect("watch open");
            if ev.kind == EventType::Deleted {
                order.push(ev.key.clone());
            }
        }
        let pos = |o: &Value| order.iter().position(|k| *k == key_of(o));
        assert_eq!(pos(&d), Some(3), "deployment last: {order:?}");
        assert_eq!(pos(&rs), Some(2), "replicaset after its pods: {order:?}");
        assert!(pods.iter().all(|p| pos(p).is_some_and(|i| i < 2)));
    }

    #[tokio::test]
    async fn foreground_owner_waits_for_a_blocking_pod_on_a_node() {
        // A bound pod is deleted gracefully; the owner keeps its finalizer
        // until the node agent has removed the pod.
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let p = c
            .create(bound_pod("web-1", vec![owned_by(&rs, true)], "Running"))
            .await;
        c.delete_with(&rs, &[FOREGROUND]).await;
        c.eventually("the pod is marked for deletion", |c| {
            c.get(&p).is_some_and(|v| is_deleting(&v))
        })
        .await;
        let owner = c.get(&rs).expect("the owner waits for its blocking pod");
        assert_eq!(owner["metadata"]["finalizers"], json!([FOREGROUND]));
        // The node agent stopped the containers and removes the pod.
        c.delete(&p).await;
        c.eventually("the owner goes once the pod is gone", |c| {
            c.get(&rs).is_none()
        })
        .await;
    }

    #[tokio::test]
    async fn foreground_does_not_wait_for_non_blocking_dependents() {
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let p = c
            .create(bound_pod("web-1", vec![owned_by(&rs, false)], "Running"))
            .await;
        c.delete_with(&rs, &[FOREGROUND]).await;
        c.eventually("the owner goes", |c| c.get(&rs).is_none())
            .await;
        c.eventually("the pod is marked for deletion", |c| {
            c.get(&p).is_some_and(|v| is_deleting(&v))
        })
        .await;
    }

    #[tokio::test]
    async fn bound_pod_is_deleted_gracefully_finished_pod_at_once() {
        // A running pod on a node gets a deletionTimestamp and its grace
        // period; one that has finished is simply removed.
        let c = start();
        let rs = c.create(replicaset("web", vec![])).await;
        let mut running = bound_pod("web-1", vec![owned_by(&rs, true)], "Running");
        running["spec"]["terminationGracePeriodSeconds"] = json!(7);
        let running = c.create(running).await;
        let done = c
            .create(bound_pod("web-2", vec![owned_by(&rs, true)], "Succeeded"))
            .await;
        // Creation resets status; the node agent reports the phase later.
        let mut finished = done.clone();
        finished["status"]["phase"] = json!("Succeeded");
        c.store
            .write(WriteOp::Update {
                key: key_of(&done),
                value: finished,
                expected: None,
            })
            .await
            .expect("report phase");
        c.delete(&rs).await;
        c.eventually("the running pod is marked", |c| {
            c.get(&running).is_some_and(|v| is_deleting(&v))
        })
        .await;
        let v = c.get(&running).expect("the running pod waits for its node");
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 7);
        assert!(v["metadata"].get("ownerReferences").is_some());
        c.eventually("the finished pod is removed", |c| c.get(&done).is_none())
            .await;
    }

    #[tokio::test]
    async fn cluster_scoped_owner_of_a_namespaced_dependent() {
        // A node's Lease in kube-node-lease is owned by the Node; deleting
        // the Node collects it.
        let c = start();
        let node = c
            .create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}))
            .await;
        let lease = c
            .create(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1", "namespace": "kube-node-lease", "ownerReferences": [owned_by(&node, false)]}}))
            .await;
        c.delete(&node).await;
        c.eventually("the node's lease is collected", |c| c.get(&lease).is_none())
            .await;
    }

    #[tokio::test]
    async fn startup_collects_what_was_orphaned_while_stopped() {
        // Objects whose owners went while the collector was not running are
        // found by the initial listing. A cluster-scoped object naming a
        // namespaced owner is never collected (Kubernetes treats that
        // reference as unresolvable).
        let c = open();
        let rs = c.create(replicaset("web", vec![])).await;
        let owned = c.create(pod("web-1", vec![owned_by(&rs, true)])).await;
        c.delete(&rs).await;
        let ghost = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ghost", "uid": "0000"}});
        let unresolvable = c
            .create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a", "ownerReferences": [owned_by(&deployment_with_uid(), true)]}}))
            .await;
        let dangling = c
            .create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "b", "ownerReferences": [owned_by(&ghost, true)]}}))
            .await;
        tokio::spawn(run(c.store.clone()));
        c.eventually("orphans are collected at startup", |c| {
            c.get(&owned).is_none() && c.get(&dangling).is_none()
        })
        .await;
        // Keys are worked in order, so "a" was decided before "b" went.
        assert!(c.get(&unresolvable).is_some());
    }

    fn deployment_with_uid() -> Value {
        let mut d = deployment("gone");
        d["metadata"]["uid"] = json!("1111");
        d
    }

    #[tokio::test]
    async fn graph_built_in_pages_links_owners_and_dependents() {
        let c = open();
        let rs = c.create(replicaset("web", vec![])).await;
        for i in 0..3 {
            c.create(pod(&format!("web-{i}"), vec![owned_by(&rs, true)]))
                .await;
        }
        c.create(pod("x", vec![owned_by(&rs, false)])).await;
        let g = Graph::build(&*c.store, 1).expect("build");
        let uid = rs["metadata"]["uid"].as_str().expect("uid");
        assert_eq!(g.dependents_of(uid).len(), 4);
        assert_eq!(g.blocking_dependents(uid).len(), 3);
        assert_eq!(g.by_uid.get(uid), Some(&key_of(&rs)));
        assert!(g.attention().is_empty(), "every owner is live");
    }

    fn event(kind: EventType, rev: u64, key: &str, obj: Value) -> Event {
        Event {
            rev,
            kind,
            key: key.into(),
            object: Arc::new(obj),
            raw: bytes::Bytes::new(),
            prev: None,
        }
    }

    #[test]
    fn events_older_than_the_graph_are_ignored() {
        // Pages of the initial listing are read at different revisions, so
        // the watch can replay changes the graph already holds.
        let c = open();
        let mut gc = Collector {
            store: c.store.clone(),
            graph: Graph::default(),
            queue: WorkQueue::default(),
            since: 10,
        };
        let key = "/core/pods/default/p";
        let obj =
            |uid: &str| json!({"metadata": {"name": "p", "namespace": "default", "uid": uid}});
        let entry = |uid: &str, rev| Entry::of(&obj(uid), rev).expect("entry");
        gc.graph.insert(key.into(), entry("new", 15));
        gc.observe(&event(EventType::Deleted, 12, key, obj("old")));
        gc.observe(&event(EventType::Added, 15, key, obj("new")));
        gc.observe(&event(EventType::Modified, 9, key, obj("older")));
        assert_eq!(gc.graph.objects[key].uid, "new");
        gc.observe(&event(EventType::Deleted, 16, key, obj("new")));
        assert!(gc.graph.objects.is_empty() && gc.graph.by_uid.is_empty());
        gc.observe(&event(
            EventType::Added,
            17,
            "/example.com/widgets/x",
            obj("w"),
        ));
        assert!(
            gc.graph.objects.is_empty(),
            "keys of unserved kinds are skipped"
        );
    }

    #[test]
    fn owner_keys_follow_scope() {
        let r = |api: &str, kind: &str| OwnerRef {
            api_version: api.into(),
            kind: kind.into(),
            name: "o".into(),
            uid: "u".into(),
            block: false,
        };
        assert_eq!(
            owner_key(&r("apps/v1", "ReplicaSet"), Some("ns")).as_deref(),
            Some("/apps/replicasets/ns/o")
        );
        assert_eq!(owner_key(&r("apps/v1", "ReplicaSet"), None), None);
        assert_eq!(
            owner_key(&r("v1", "Node"), Some("ns")).as_deref(),
            Some("/core/nodes/o")
        );
        assert_eq!(owner_key(&r("example.com/v1", "Widget"), Some("ns")), None);
    }

    #[test]
    fn retries_back_off_and_queue_deduplicates() {
        let mut q = WorkQueue::default();
        q.push("a".into());
        q.push("a".into());
        assert_eq!(q.pop(Instant::now()).as_deref(), Some("a"));
        assert_eq!(q.pop(Instant::now()), None);
        q.retry("a".into());
        q.retry("a".into());
        let due = q.next_due().expect("retry scheduled");
        assert!(q.pop(Instant::now()).is_none(), "not due yet");
        assert_eq!(
            q.pop(due + Duration::from_millis(100)).as_deref(),
            Some("a")
        );
    }
}
