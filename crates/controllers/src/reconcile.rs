//! The reconcile machinery the workload controllers share: a work queue keyed
//! by namespace/name, the workers that drain it, and watches that feed a
//! cache and the queue.
//!
//! It follows client-go's work queue rather than kube-runtime's `Controller`
//! because the ReplicaSet and Deployment controllers need what `Controller`
//! keeps private: their own caches of the objects they own (to read pods and
//! ReplicaSets without listing), and the raw watch events (to map an orphan
//! to every owner whose selector matches it). The queue's guarantees are the
//! ones Kubernetes' controllers rely on:
//!
//! - a key is queued at most once however often it is added;
//! - a key is never processed by two workers at once; an add while it is
//!   being processed runs it once more afterwards;
//! - failures requeue with per-key exponential back-off, reset on success.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Which object a reconcile is about: its namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The namespace (workloads are always namespaced).
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl Key {
    /// The key of a cached object.
    pub fn of<K: Resource>(obj: &K) -> Key {
        Key {
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The cache reference for this key.
    pub fn object_ref<K>(&self) -> reflector::ObjectRef<K>
    where
        K: Resource,
        K::DynamicType: Default,
    {
        reflector::ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a reconcile asks of the queue once it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing more until a watch event adds the key again.
    Never,
    /// Look again after this long (e.g. when minReadySeconds will pass).
    After(Duration),
}

impl Requeue {
    /// The sooner of two requests.
    pub fn min(self, other: Requeue) -> Requeue {
        match (self, other) {
            (Requeue::Never, o) | (o, Requeue::Never) => o,
            (Requeue::After(a), Requeue::After(b)) => Requeue::After(a.min(b)),
        }
    }
}

#[derive(Default)]
struct QueueState {
    /// Keys waiting to be processed (each is in the channel exactly once).
    dirty: HashSet<Key>,
    /// Keys a worker holds right now.
    processing: HashSet<Key>,
    /// Consecutive failures per key, for the back-off.
    failures: HashMap<Key, u32>,
    /// The earliest delayed add pending per key: a later one is redundant,
    /// since the reconcile the earlier one triggers asks again.
    waiting: HashMap<Key, tokio::time::Instant>,
}

/// A deduplicating work queue of object keys (client-go's semantics).
#[derive(Clone)]
pub struct WorkQueue {
    state: Arc<Mutex<QueueState>>,
    tx: mpsc::UnboundedSender<Key>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Key>>>,
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// client-go's default per-item back-off: 5ms doubling up to 1000s.
fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms).min(Duration::from_secs(1000))
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        WorkQueue {
            state: Arc::new(Mutex::new(QueueState::default())),
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A worker that panicked while holding the lock left consistent
        // sets behind (every update is a single insert or remove).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a key unless it is already waiting.
    pub fn add(&self, key: Key) {
        let mut s = self.lock();
        if s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if !s.processing.contains(&key) {
            // The receiver lives as long as the queue; a send can only fail
            // while everything is shutting down.
            let _ = self.tx.send(key);
        }
    }

    /// Queue a key after a delay.
    pub fn add_after(&self, key: Key, after: Duration) {
        if after.is_zero() {
            return self.add(key);
        }
        let at = tokio::time::Instant::now() + after;
        {
            let mut s = self.lock();
            if s.waiting.get(&key).is_some_and(|w| *w <= at) {
                return;
            }
            s.waiting.insert(key.clone(), at);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let current = {
                let mut s = q.lock();
                let current = s.waiting.get(&key) == Some(&at);
                if current {
                    s.waiting.remove(&key);
                }
                current
            };
            if current {
                q.add(key);
            }
        });
    }

    /// Queue a key after its back-off, and lengthen the back-off.
    fn add_rate_limited(&self, key: Key) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let d = backoff(*n);
            *n = n.saturating_add(1);
            d
        };
        self.add_after(key, delay);
    }

    /// Forget a key's failures after it reconciled cleanly.
    fn forget(&self, key: &Key) {
        self.lock().failures.remove(key);
    }

    /// Wait for the next key and mark it as being processed.
    async fn get(&self) -> Option<Key> {
        let key = self.rx.lock().await.recv().await?;
        let mut s = self.lock();
        s.dirty.remove(&key);
        s.processing.insert(key.clone());
        Some(key)
    }

    /// Release a key; if it was added meanwhile, queue it again.
    fn done(&self, key: &Key) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            let _ = self.tx.send(key.clone());
        }
    }

    /// Run `workers` concurrent workers calling `reconcile` for each key
    /// until the queue closes. Errors are logged and retried with back-off.
    pub async fn run<F, Fut, E>(&self, workers: usize, reconcile: F)
    where
        F: Fn(Key) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Requeue, E>> + Send,
        E: fmt::Display + Send,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let q = self.clone();
            let f = reconcile.clone();
            tasks.spawn(async move {
                while let Some(key) = q.get().await {
                    match f(key.clone()).await {
                        Ok(requeue) => {
                            q.forget(&key);
                            if let Requeue::After(d) = requeue {
                                q.add_after(key.clone(), d);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "reconcile failed; will retry");
                            q.add_rate_limited(key.clone());
                        }
                    }
                    q.done(&key);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// A watch event reduced to what the controllers act on.
pub enum Seen<K> {
    /// An object was added or changed (or listed on a (re)start).
    Applied(K),
    /// An object was deleted.
    Deleted(K),
    /// A (re)list finished: the cache is whole again.
    Synced,
}

/// Watch every `K` in the cluster into a cache; the returned stream yields
/// each event after the cache has applied it, so handlers that read the cache
/// see the object they are told about. Retries the watch with back-off.
pub fn watch<K>(api: Api<K>) -> (Store<K>, impl Stream<Item = Seen<K>> + Send)
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => {
                Some(Seen::Applied(o))
            }
            Ok(watcher::Event::Delete(o)) => Some(Seen::Deleted(o)),
            Ok(watcher::Event::InitDone) => Some(Seen::Synced),
            Ok(watcher::Event::Init) => None,
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; retrying");
                None
            }
        }
    });
    (reader, events)
}

/// A shared watch's identity: the kind, and the namespace it is limited to.
type InformerKey = (std::any::TypeId, Option<String>);

/// Watches shared by every controller of a process, as client-go's shared
/// informers are: one watch and one cache per kind (and namespace), however
/// many controllers read it. With seven controllers watching pods, private
/// watches cost the API server seven encodings and this process seven
/// decodings and caches of every pod change.
///
/// Each subscriber gets its own event stream: after every (re)list, an
/// `Applied` for each cached object and then `Synced`; after that, changes
/// as they come. Handlers read the shared cache, which is updated before
/// any subscriber hears of a change.
pub struct Informers {
    client: kube::Client,
    by_kind: Mutex<HashMap<InformerKey, Arc<dyn std::any::Any + Send + Sync>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

struct Shared<K: Resource + 'static>
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    subscribers: Mutex<Subscribers<K>>,
}

struct Subscribers<K> {
    senders: Vec<mpsc::UnboundedSender<Seen<K>>>,
    synced: bool,
}

impl Informers {
    pub fn new(client: kube::Client) -> Arc<Informers> {
        Arc::new(Informers {
            client,
            by_kind: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The shared cache of every `K` (in `namespace`, or cluster-wide) and
    /// a stream of its events for this subscriber.
    ///
    /// The stream is unbounded: every change waits in it until read, so a
    /// subscriber must keep reading it or drop it. One that only reads the
    /// cache takes [`Informers::cache`] instead.
    pub fn watch<K>(
        &self,
        namespace: Option<&str>,
    ) -> (Store<K>, impl Stream<Item = Seen<K>> + Send)
    where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let shared = self.shared::<K>(namespace);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut subs = shared.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            if subs.synced {
                send_snapshot(&shared.store, &tx);
            }
            subs.senders.push(tx);
        }
        let events =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        (shared.store.clone(), events)
    }

    /// The shared cache of every `K` (in `namespace`, or cluster-wide),
    /// without an event stream: for readers that look at the cache from
    /// time to time. (A stream kept but never read would hold a copy of
    /// every change for as long as the process runs.)
    pub fn cache<K>(&self, namespace: Option<&str>) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        self.shared::<K>(namespace).store.clone()
    }

    /// The one watch and cache of `K` in `namespace`, started on first use.
    fn shared<K>(&self, namespace: Option<&str>) -> Arc<Shared<K>>
    where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let key = (std::any::TypeId::of::<K>(), namespace.map(str::to_string));
        let mut map = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let existing = map
            .get(&key)
            .cloned()
            .and_then(|a| a.downcast::<Shared<K>>().ok());
        match existing {
            Some(s) => s,
            None => {
                let s = self.start::<K>(namespace);
                map.insert(key, s.clone());
                s
            }
        }
    }

    /// How many event streams of `K` are open (tests).
    #[cfg(test)]
    fn subscribers<K>(&self, namespace: Option<&str>) -> usize
    where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let shared = self.shared::<K>(namespace);
        let subs = shared.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.senders.len()
    }

    fn start<K>(&self, namespace: Option<&str>) -> Arc<Shared<K>>
    where
        K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let api: Api<K> = Api::all_with(self.client.clone(), &Default::default());
        let config = match namespace {
            Some(ns) => watcher::Config::default().fields(&format!("metadata.namespace={ns}")),
            None => watcher::Config::default(),
        };
        let (reader, writer) = reflector::store();
        let shared = Arc::new(Shared {
            store: reader,
            subscribers: Mutex::new(Subscribers {
                senders: Vec::new(),
                synced: false,
            }),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let events = reflector::reflector(writer, watcher(api, config).default_backoff());
            let mut events = std::pin::pin!(events);
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o)) => s.broadcast(|| Seen::Applied(o.clone())),
                    Ok(watcher::Event::Delete(o)) => s.broadcast(|| Seen::Deleted(o.clone())),
                    Ok(watcher::Event::InitDone) => s.resynced(),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task.abort_handle());
        shared
    }
}

impl Drop for Informers {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.abort();
        }
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    fn broadcast(&self, event: impl Fn() -> Seen<K>) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.senders.retain(|tx| tx.send(event()).is_ok());
    }

    /// A (re)list finished: every subscriber hears of every object again.
    fn resynced(&self) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.synced = true;
        subs.senders.retain(|tx| send_snapshot(&self.store, tx));
    }
}

fn send_snapshot<K>(store: &Store<K>, tx: &mpsc::UnboundedSender<Seen<K>>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .iter()
        .all(|o| tx.send(Seen::Applied((**o).clone())).is_ok())
        && tx.send(Seen::Synced).is_ok()
}

/// Queue the owners (of kind `kind`) that an event about one of their
/// dependents concerns, as Kubernetes' controllers do: the dependent's
/// controller; for an orphan added or changed, every owner in its namespace
/// that `may_adopt` it; after a relist, every owner.
pub fn queue_owners<O, D>(
    queue: &WorkQueue,
    owners: &Store<O>,
    kind: &str,
    ev: Seen<D>,
    may_adopt: impl Fn(&O, &D) -> bool,
) where
    O: Resource + Clone + 'static,
    O::DynamicType: Default + Eq + std::hash::Hash + Clone,
    D: Resource,
{
    let (dependent, deleted) = match ev {
        Seen::Applied(d) => (d, false),
        Seen::Deleted(d) => (d, true),
        Seen::Synced => {
            for o in owners.state() {
                queue.add(Key::of(o.as_ref()));
            }
            return;
        }
    };
    let meta = dependent.meta();
    let ns = meta.namespace.clone().unwrap_or_default();
    if let Some(owner) = controller_of(meta) {
        if owner.kind == kind {
            queue.add(Key {
                namespace: ns,
                name: owner.name.clone(),
            });
        }
        return;
    }
    if deleted {
        return;
    }
    for o in owners.state() {
        if o.meta().namespace.as_deref() == Some(ns.as_str()) && may_adopt(&o, &dependent) {
            queue.add(Key::of(o.as_ref()));
        }
    }
}

/// The ownerReference with `controller: true`, if any (Kubernetes'
/// `metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether the object is being deleted.
pub fn is_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// The owner a claim is made for.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `apps/v1`.
    pub api_version: String,
    /// `ReplicaSet` or `Deployment`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's UID: ownership is by UID, never by name.
    pub uid: String,
    /// An owner being deleted adopts nothing and releases nothing.
    pub deleting: bool,
}

impl Owner {
    /// The owner of a cached object of kind `K` (`apps/v1` kinds).
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Owner {
        Owner {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.meta().name.clone().unwrap_or_default(),
            uid: obj.meta().uid.clone().unwrap_or_default(),
            deleting: is_deleting(obj.meta()),
        }
    }

    /// The controller ownerReference Kubernetes' controllers set on what
    /// they create or adopt.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A `metav1.LabelSelector` compiled for matching label maps as they are
/// cached (Kubernetes' `LabelSelectorAsSelector`). Matching runs for every
/// pod on every reconcile, so it works on the cached map directly rather
/// than converting it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches nothing (a missing or invalid selector).
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Compile a selector. An unknown operator, or `In`/`NotIn` without
    /// values, is invalid and, as in Kubernetes, selects nothing.
    pub fn new(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> Selector {
        let mut requirements: Vec<Requirement> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let r = match e.operator.as_str() {
                "In" if !values.is_empty() => Requirement::In(e.key.clone(), values),
                "NotIn" if !values.is_empty() => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                _ => return Selector::nothing(),
            };
            requirements.push(r);
        }
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Whether a label set (absent: no labels) satisfies every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let labels = labels.unwrap_or(&EMPTY);
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether it selects everything (`{}`), which workload controllers
    /// refuse to act on.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether it selects nothing.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// A label every selected object must have one of these values for
    /// (its first `In` requirement), so that an index by label can narrow
    /// the candidates before [`Selector::matches`] decides.
    pub fn pinned(&self) -> Option<(&str, &[String])> {
        self.requirements.iter().find_map(|r| match r {
            Requirement::In(k, vs) => Some((k.as_str(), vs.as_slice())),
            _ => None,
        })
    }
}

/// Compile a `metav1.LabelSelector`.
pub fn selector(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> Selector {
    Selector::new(sel)
}

/// Whether a label set satisfies a selector.
pub fn selects(sel: &Selector, labels: Option<&BTreeMap<String, String>>) -> bool {
    sel.matches(labels)
}

/// How many adopt/release patches run at once.
const CLAIM_CONCURRENCY: usize = 16;

/// Claim objects for an owner, as Kubernetes' ControllerRefManager does:
/// keep what it controls and its selector still matches, adopt matching
/// orphans (set a controller ownerReference), release what it controls but
/// no longer matches (remove the ownerReference). Returns what it controls
/// afterwards. Objects controlled by someone else are never touched.
pub async fn claim<K>(
    api_for: impl Fn(&str) -> Api<K>,
    owner: &Owner,
    sel: &Selector,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
{
    let mut owned = Vec::new();
    let mut patches = Vec::new();
    for obj in candidates {
        let meta = obj.meta();
        let matches = selects(sel, meta.labels.as_ref());
        match controller_of(meta) {
            Some(r) if r.uid != owner.uid => {}
            Some(_) if matches => owned.push(obj),
            Some(_) if owner.deleting => owned.push(obj),
            Some(_) => patches.push((obj.clone(), release_patch(meta, &owner.uid))),
            None if matches && !owner.deleting && !is_deleting(meta) => {
                patches.push((obj.clone(), adopt_patch(meta, owner)))
            }
            None => {}
        }
    }
    let results: Vec<Result<Option<K>, kube::Error>> = futures::stream::iter(patches)
        .map(|(obj, patch)| {
            let api = api_for(obj.meta().namespace.as_deref().unwrap_or_default());
            let name = obj.meta().name.clone().unwrap_or_default();
            async move {
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(o) => Ok(Some(o)),
                    // Gone, or changed under us (the precondition failed): the
                    // next event brings the truth.
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 || s.code == 409 => {
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(CLAIM_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        if let Some(o) = r? {
            if controller_of(o.meta()).is_some_and(|c| c.uid == owner.uid) {
                owned.push(Arc::new(o));
            }
        }
    }
    Ok(owned)
}

/// A merge patch that sets the object's ownerReferences to `refs`, guarded
/// by its UID and resourceVersion (Kubernetes' adopt and release patches
/// carry the UID for the same reason: never claim a recreated namesake).
fn owner_refs_patch(meta: &ObjectMeta, refs: Vec<OwnerReference>) -> Value {
    json!({"metadata": {
        "uid": meta.uid,
        "resourceVersion": meta.resource_version,
        "ownerReferences": refs,
    }})
}

/// Add the controller reference to what the object already has.
fn adopt_patch(meta: &ObjectMeta, owner: &Owner) -> Value {
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.push(owner.reference());
    owner_refs_patch(meta, refs)
}

/// Drop the owner's reference, keep the others.
fn release_patch(meta: &ObjectMeta, owner_uid: &str) -> Value {
    let refs = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != owner_uid)
        .cloned()
        .collect();
    owner_refs_patch(meta, refs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn key(n: &str) -> Key {
        Key {
            namespace: "default".into(),
            name: n.into(),
        }
    }

    /// A reader of the cache alone holds no event stream, and a dropped
    /// stream is let go: nothing keeps copies of changes no one reads.
    #[tokio::test]
    async fn cache_readers_hold_no_event_stream() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let c = crate::testing::cluster().await;
        let informers = Informers::new(c.client.clone());
        let cache = informers.cache::<ConfigMap>(None);
        assert_eq!(informers.subscribers::<ConfigMap>(None), 0);
        let (_, events) = informers.watch::<ConfigMap>(None);
        assert_eq!(informers.subscribers::<ConfigMap>(None), 1);
        drop(events);
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "default"}}))
                .expect("configmap");
        Api::<ConfigMap>::namespaced(c.client.clone(), "default")
            .create(&Default::default(), &cm)
            .await
            .expect("create");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cache
            .state()
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("a"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the cache never saw a"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(informers.subscribers::<ConfigMap>(None), 0);
    }

    #[tokio::test]
    async fn a_key_added_twice_is_processed_once() {
        let q = WorkQueue::new();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        assert_eq!(q.get().await, Some(key("a")));
        assert_eq!(q.get().await, Some(key("b")));
        assert!(q.rx.lock().await.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_add_while_processing_runs_again_after_done() {
        // client-go: a key is never handed to two workers at once.
        let q = WorkQueue::new();
        q.add(key("a"));
        let k = q.get().await.unwrap();
        q.add(key("a"));
        assert!(q.rx.lock().await.try_recv().is_err());
        q.done(&k);
        assert_eq!(q.get().await, Some(key("a")));
    }

    #[tokio::test]
    async fn delayed_adds_keep_only_the_earliest() {
        let q = WorkQueue::new();
        q.add_after(key("a"), Duration::from_millis(300));
        q.add_after(key("a"), Duration::from_millis(50));
        q.add_after(key("a"), Duration::from_millis(200));
        assert_eq!(q.lock().waiting.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(q.get().await, Some(key("a")));
        q.done(&key("a"));
        // The superseded 300ms add does not fire again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(q.rx.lock().await.try_recv().is_err());
    }

    #[test]
    fn backoff_doubles_from_5ms_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }

    fn sel(v: serde_json::Value) -> Selector {
        Selector::new(&serde_json::from_value(v).unwrap())
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_like_kubernetes_label_selectors() {
        let s = sel(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}));
        assert!(s.matches(Some(&labels(&[("app", "web"), ("tier", "a")]))));
        assert!(!s.matches(Some(&labels(&[("app", "web"), ("tier", "c")]))));
        assert!(!s.matches(Some(&labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("canary", "1")
        ]))));
        assert!(!s.matches(None));
        let not_in =
            sel(json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["1"]}]}));
        assert!(not_in.matches(None), "NotIn matches a missing key");
        assert!(!not_in.matches(Some(&labels(&[("x", "1")]))));
        // {} selects everything; a bad operator or In without values nothing.
        assert!(sel(json!({})).is_empty() && sel(json!({})).matches(None));
        let bad = sel(json!({"matchExpressions": [{"key": "x", "operator": "Near"}]}));
        assert!(bad.matches_nothing() && !bad.matches(Some(&labels(&[("x", "1")]))));
        assert!(
            sel(json!({"matchExpressions": [{"key": "x", "operator": "In", "values": []}]}))
                .matches_nothing()
        );
    }

    #[test]
    fn requeue_min_prefers_the_sooner() {
        let a = Requeue::After(Duration::from_secs(3));
        let b = Requeue::After(Duration::from_secs(1));
        assert_eq!(a.min(b), b);
        assert_eq!(Requeue::Never.min(a), a);
        assert_eq!(Requeue::Never.min(Requeue::Never), Requeue::Never);
    }
}
