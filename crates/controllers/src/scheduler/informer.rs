//! The watches that keep the scheduler's cache current: nodes, pods,
//! RuntimeClasses and namespaces (whose labels pod affinity terms select). Each event is folded into the shared state under its
//! lock; a re-list (watch restart) drops what the new listing lacks.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use super::cache::{pod_key, PodInfo};
use super::{Shared, State};

/// Start the watches; the future ends when one of them fails for good.
pub(super) async fn spawn(shared: Arc<Shared>) -> anyhow::Result<()> {
    let c = shared.client.clone();
    let nodes = follow(
        shared.clone(),
        watcher::watcher(Api::<Node>::all(c.clone()), Default::default()),
        Kind::Node,
    );
    let pods = follow(
        shared.clone(),
        watcher::watcher(Api::<Pod>::all(c.clone()), Default::default()),
        Kind::Pod,
    );
    let classes = follow(
        shared.clone(),
        watcher::watcher(Api::<RuntimeClass>::all(c.clone()), Default::default()),
        Kind::RuntimeClass,
    );
    let namespaces = follow(
        shared,
        watcher::watcher(Api::<Namespace>::all(c), Default::default()),
        Kind::Namespace,
    );
    tokio::try_join!(nodes, pods, classes, namespaces)?;
    Ok(())
}

/// Which kind a watch carries.
#[derive(Clone, Copy)]
enum Kind {
    Node,
    Pod,
    RuntimeClass,
    Namespace,
}

/// Objects the watch can fold into the state.
trait Watched: Send + 'static {
    fn key(&self) -> String;
    fn apply(self, st: &mut State, cfg_name: &str);
    fn delete(self, st: &mut State);
    fn retain(st: &mut State, seen: &HashSet<String>);
}

impl Watched for Node {
    fn key(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
    fn apply(self, st: &mut State, _: &str) {
        if st.cache.upsert_node(&self) {
            st.changed = true;
        }
    }
    fn delete(self, st: &mut State) {
        st.cache.remove_node(&self.key());
    }
    fn retain(st: &mut State, seen: &HashSet<String>) {
        st.cache.retain_nodes(seen);
    }
}

impl Watched for RuntimeClass {
    fn key(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
    fn apply(self, st: &mut State, _: &str) {
        st.cache.upsert_runtime_class(&self);
        st.changed = true;
    }
    fn delete(self, st: &mut State) {
        st.cache.remove_runtime_class(&self.key());
    }
    fn retain(st: &mut State, seen: &HashSet<String>) {
        st.cache.retain_runtime_classes(seen);
    }
}

impl Watched for Namespace {
    fn key(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
    fn apply(self, st: &mut State, _: &str) {
        if st.cache.upsert_namespace(&self) {
            st.changed = true;
        }
    }
    fn delete(self, st: &mut State) {
        st.cache.remove_namespace(&self.key());
    }
    fn retain(st: &mut State, seen: &HashSet<String>) {
        st.cache.retain_namespaces(seen);
    }
}

impl Watched for Pod {
    fn key(&self) -> String {
        pod_key(self)
    }
    fn apply(self, st: &mut State, cfg_name: &str) {
        apply_pod(st, self, cfg_name);
    }
    fn delete(self, st: &mut State) {
        forget_pod(st, &pod_key(&self));
    }
    fn retain(st: &mut State, seen: &HashSet<String>) {
        st.cache.retain_pods(seen);
        st.pending.retain(|k, _| seen.contains(k));
        st.reported.retain(|k, _| seen.contains(k));
    }
}

fn forget_pod(st: &mut State, key: &str) {
    st.pending.remove(key);
    st.queue.remove(key);
    st.reported.remove(key);
    if st.cache.pod_gone(key) {
        st.changed = true;
    }
}

/// Fold a pod into the state: bound pods count against their node,
/// pending pods of this scheduler wait in the queue.
fn apply_pod(st: &mut State, pod: Pod, scheduler: &str) {
    let key = pod_key(&pod);
    let spec = pod.spec.as_ref();
    let node = spec
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == scheduler);
    match node {
        Some(_) if finished => forget_pod(st, &key),
        Some(node) => {
            st.pending.remove(&key);
            st.queue.remove(&key);
            st.reported.remove(&key);
            st.cache.pod_bound(&PodInfo::new(pod), &node);
        }
        None if finished || deleting || !ours => forget_pod(st, &key),
        None => {
            let info = PodInfo::new(pod);
            let changed = st.pending.get(&key).is_none_or(|old| {
                old.pod.spec != info.pod.spec || old.pod.metadata.labels != info.pod.metadata.labels
            });
            let priority = info.priority;
            st.pending.insert(key.clone(), Arc::new(info));
            // A status write (our own Unschedulable report) must not
            // wake a parked pod; a spec change may make it fit.
            if !st.cache.is_assumed(&key) && (changed || !st.queue.is_parked(&key)) {
                st.queue.push(key, priority);
            }
        }
    }
}

/// Follow one watch until it fails for good (the watcher retries with
/// back-off on its own).
async fn follow<K, S>(shared: Arc<Shared>, stream: S, kind: Kind) -> anyhow::Result<()>
where
    K: Watched,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream.default_backoff());
    let mut relist: Option<HashSet<String>> = None;
    let name = shared.cfg.name.clone();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind = kind_name(kind), error = %e, "scheduler watch error");
                continue;
            }
        };
        {
            let mut st = shared.lock();
            match event {
                Event::Init => relist = Some(HashSet::new()),
                Event::InitApply(o) => {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(o.key());
                    }
                    o.apply(&mut st, &name);
                }
                Event::InitDone => {
                    if let Some(seen) = relist.take() {
                        K::retain(&mut st, &seen);
                    }
                }
                Event::Apply(o) => o.apply(&mut st, &name),
                Event::Delete(o) => o.delete(&mut st),
            }
        }
        shared.wake.notify_one();
    }
    anyhow::bail!("the {} watch ended", kind_name(kind))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Node => "node",
        Kind::Pod => "pod",
        Kind::RuntimeClass => "RuntimeClass",
        Kind::Namespace => "namespace",
    }
}
