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
                .filter(|o| !new.owners.iter().any(|n| n.uid == o.uid && n.block))
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
