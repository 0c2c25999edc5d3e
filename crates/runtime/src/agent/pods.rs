//! The pods bound to this node: a watch (`spec.nodeName=<node>`) feeding
//! one task per pod.
//!
//! A pod's task prepares its volumes, runs its init containers in order,
//! then its containers side by side ([`super::container`]), and writes the
//! pod's status whenever its [`PodRecord`] changes. When the pod gets a
//! deletionTimestamp it stops the containers within the grace period and
//! confirms the deletion (`gracePeriodSeconds=0`); a pod that vanishes from
//! the API is simply stopped.
//!
//! The API server may be unreachable at any time: the watch re-connects
//! with back-off, running containers are left alone, and the status writer
//! keeps retrying with the latest state, so the API catches up when it
//! returns.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::container::{ContainerLoop, Outcome, BACKOFF_START};
use super::env::{self, PodAddresses};
use super::events::{EventType, PodEvent};
use super::sandbox::{self, Sandbox};
use super::status::{pod_status, PodRecord, State};
use super::Ctx;

/// A pod's record, shared by its container loops and its status writer.
pub(crate) struct PodShared {
    pub record: Mutex<PodRecord>,
    changed: Notify,
    /// A Linux pod's network namespace, made when its first Linux
    /// container is about to start.
    sandbox: tokio::sync::Mutex<Option<Sandbox>>,
}

impl PodShared {
    /// The pod's sandbox, made (or taken over from a previous agent) on
    /// first use; its address becomes the pod's IP. A Wasm address the pod
    /// held on the bridge is given back first.
    pub async fn sandbox(&self, ctx: &Ctx) -> Result<Sandbox, String> {
        let mut slot = self.sandbox.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let (uid, known, local) = {
            let r = self
                .record
                .lock()
                .map_err(|_| "pod record poisoned".to_string())?;
            let ip = r
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
            let known = r.sandbox.clone().zip(ip);
            let local = if r.sandbox.is_none() {
                ip.filter(|ip| *ip != ctx.node_ip)
            } else {
                None
            };
            (r.uid.clone(), known, local)
        };
        if let Some(ip) = local {
            ctx.network.release(ip).await;
        }
        let s = sandbox::ensure(&ctx.network, &uid, known).await?;
        let (ns, ip) = (s.netns.clone(), s.ip.to_string());
        self.update(|r| {
            r.sandbox = Some(ns);
            r.pod_ip = Some(ip);
        });
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Change the record and wake the status writer.
    /// The pod's address: its own, or the node's.
    pub fn pod_ip(&self, ctx: &Ctx) -> std::net::IpAddr {
        self.record
            .lock()
            .ok()
            .and_then(|r| r.pod_ip.as_deref().and_then(|ip| ip.parse().ok()))
            .unwrap_or(ctx.node_ip)
    }

    pub fn update(&self, f: impl FnOnce(&mut PodRecord)) {
        if let Ok(mut r) = self.record.lock() {
            f(&mut r);
        }
        self.changed.notify_one();
    }
}

/// A task that ends with its owner (the pod task being cancelled with
/// the agent must not leave its status writer behind).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where the agent keeps pod `uid`'s state file and volumes.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

/// Where pod `uid`'s container logs go:
/// `<data>/logs/<namespace>_<name>_<uid>/<container>/<restartCount>.log`,
/// the kubelet's layout, which the node endpoint finds by name.
pub fn log_dir(data_dir: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    data_dir.join("logs").join(format!("{ns}_{name}_{uid}"))
}

fn uid_of(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// Watch the node's pods and keep one task per pod, for as long as the
/// agent runs.
pub(crate) async fn run(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.cfg.node_name);
    let open = || {
        watcher(api.clone(), watcher::Config::default().fields(&selector))
            .default_backoff()
            .boxed()
    };
    let mut stream = open();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    // Owned, so that stopping the agent stops its pods' tasks.
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = ctx.reconnected.notified() => {
                // The old watch may hang on a dead connection: list anew
                // (pods deleted meanwhile are found missing at InitDone).
                tracing::info!("the API server is back: watching this node's pods afresh");
                stream = open();
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                }
            }
            ev = stream.next() => match ev {
                None => return,
                Some(Err(e)) => tracing::warn!(error = %e, "watching this node's pods; retrying"),
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitApply(p))) => {
                    listed.insert(uid_of(&p));
                    dispatch(&ctx, &mut workers, &mut tasks, p);
                }
                Some(Ok(Event::InitDone)) => {
                    // Pods deleted while the watch was down.
                    for (uid, tx) in &workers {
                        if !listed.contains(uid) {
                            tx.send_replace(None);
                        }
                    }
                    let sandboxes = remove_orphans(&ctx.cfg.data_dir, &listed, &workers);
                    let mut keep = listed.clone();
                    keep.extend(workers.keys().cloned());
                    let c = ctx.clone();
                    tokio::spawn(async move {
                        // Containers first: a namespace lives while a
                        // process is in it.
                        for rt in &c.runtimes {
                            rt.retain_pods(&keep).await;
                        }
                        for (netns, ip) in sandboxes {
                            sandbox::remove_named(&netns).await;
                            if let Some(ip) = ip {
                                c.network.release_veth(ip);
                            }
                        }
                    });
                }
                Some(Ok(Event::Apply(p))) => dispatch(&ctx, &mut workers, &mut tasks, p),
                Some(Ok(Event::Delete(p))) => {
                    if let Some(tx) = workers.get(&uid_of(&p)) {
                        tx.send_replace(None);
                    }
                }
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Ctx>,
    workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    tasks: &mut JoinSet<String>,
    pod: Pod,
) {
    let uid = uid_of(&pod);
    if let Some(tx) = workers.get(&uid) {
        tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    let ctx = ctx.clone();
    tasks.spawn(async move {
        pod_task(ctx, rx).await;
        uid
    });
}

/// Files of pods the API no longer has (deleted while the agent was
/// down). Their in-process guests died with the previous agent; their
/// Linux containers and sandboxes are removed by the caller (the
/// returned namespaces and addresses).
fn remove_orphans(
    data_dir: &Path,
    listed: &HashSet<String>,
    workers: &HashMap<String, watch::Sender<Option<Pod>>>,
) -> Vec<(String, Option<std::net::IpAddr>)> {
    let mut sandboxes = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("pods")) else {
        return sandboxes;
    };
    for e in entries.flatten() {
        let uid = e.file_name().to_string_lossy().into_owned();
        if listed.contains(&uid) || workers.contains_key(&uid) {
            continue;
        }
        if let Some(r) = PodRecord::load(&e.path().join("state.json")) {
            let _ = std::fs::remove_dir_all(log_dir(data_dir, &r.namespace, &r.name, &uid));
            if let Some(netns) = r.sandbox {
                sandboxes.push((netns, r.pod_ip.and_then(|ip| ip.parse().ok())));
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
    sandboxes
}

/// The grace period a stop gets: the deletion's, else the pod's
/// `terminationGracePeriodSeconds`, else Kubernetes' default of 30 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// One pod from its first sight to its deletion.
async fn pod_task(ctx: Arc<Ctx>, mut rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let (ns, name, uid) = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        uid_of(&pod),
    );
    let dir = pod_dir(&ctx.cfg.data_dir, &uid);
    let logs = log_dir(&ctx.cfg.data_dir, &ns, &name, &uid);
    let state_path = dir.join("state.json");
    let adopted = PodRecord::load(&state_path);
    let already_done = adopted.is_none()
        && matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
    let mut record = adopted.map_or_else(
        || PodRecord::new(&ns, &name, &uid, &pod.spec.clone().unwrap_or_default()),
        |mut r| {
            r.adopt_after_restart();
            r
        },
    );
    let own_ip = if already_done {
        None
    } else {
        pod_address(&ctx, &pod, &mut record).await
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(pod = %name, error = %e, "creating the pod's directory");
    }
    let shared = Arc::new(PodShared {
        record: Mutex::new(record),
        changed: Notify::new(),
        sandbox: tokio::sync::Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(None);
    let writer = (!already_done).then(|| {
        AbortOnDrop(tokio::spawn(status_writer(
            ctx.clone(),
            shared.clone(),
            pod.clone(),
            state_path,
        )))
    });
    shared.changed.notify_one();
    let lifecycle = run_containers(
        ctx.clone(),
        pod.clone(),
        shared.clone(),
        stop_rx,
        dir.clone(),
        logs.clone(),
    );
    tokio::pin!(lifecycle);
    let mut finished = already_done;
    // The first sight may already carry a deletionTimestamp (the agent
    // restarted during a deletion), so the pod is checked before waiting.
    let mut current = Some(pod.clone());
    let last = loop {
        match current {
            None => break None,
            Some(p) if p.metadata.deletion_timestamp.is_some() => break Some(p),
            Some(_) => {}
        }
        tokio::select! {
            _ = &mut lifecycle, if !finished => { finished = true; current = rx.borrow().clone(); }
            changed = rx.changed() => {
                current = if changed.is_err() { None } else { rx.borrow_and_update().clone() };
            }
        }
    };
    let _ = stop_tx.send(Some(grace_period(last.as_ref().unwrap_or(&pod))));
    if !finished {
        lifecycle.await;
    }
    drop(writer);
    if let Some(p) = last {
        confirm_deletion(&ctx, &p).await;
    }
    for rt in &ctx.runtimes {
        rt.remove_pod(&uid).await;
    }
    let recorded = shared
        .record
        .lock()
        .ok()
        .and_then(|r| r.sandbox.clone().zip(r.pod_ip.clone()));
    if let Some((netns, ip)) = recorded {
        // The containers are gone, so the namespace (and its veth) go too.
        sandbox::remove_named(&netns).await;
        if let Ok(ip) = ip.parse() {
            ctx.network.release_veth(ip);
        }
    } else if let Some(ip) = own_ip {
        ctx.network.release(ip).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&logs);
}

/// Whether the pod needs an address of its own: a container that serves
/// ports. (Wasm pods that serve nothing cannot be connected to, so they
/// report the node's address.)
fn serves_ports(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
    })
}

/// Give the pod its address (or keep the one an adopted pod had); the
/// address to release when the pod is gone.
async fn pod_address(ctx: &Ctx, pod: &Pod, record: &mut PodRecord) -> Option<std::net::IpAddr> {
    if let Some(ip) = record.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) {
        if record.sandbox.is_some() {
            // On a veth in the pod's namespace, not on the bridge.
            ctx.network.adopt_veth(ip);
            return None;
        }
        ctx.network.adopt_local(ip).await;
        return (ip != ctx.node_ip).then_some(ip);
    }
    if !serves_ports(pod) || ctx.network.range().is_none() {
        return None;
    }
    match ctx.network.assign_local().await {
        Ok(ip) => {
            record.pod_ip = Some(ip.to_string());
            Some(ip)
        }
        Err(e) => {
            // Reported on the pod; it still runs, on the node's address.
            ctx.recorder.record(
                pod,
                PodEvent {
                    kind: EventType::Warning,
                    reason: "FailedCreatePodSandBox",
                    message: format!("no pod address, using the node's: {e}"),
                    field_path: None,
                },
            );
            None
        }
    }
}

/// The pod addresses in the state files under `data_dir`: those of pods
/// an agent restart adopts.
pub fn adopted_addresses(data_dir: &Path) -> HashSet<std::net::Ipv4Addr> {
    let mut out = HashSet::new();
    let Ok(dirs) = std::fs::read_dir(data_dir.join("pods")) else {
        return out;
    };
    for d in dirs.flatten() {
        if let Some(ip) = PodRecord::load(&d.path().join("state.json"))
            .and_then(|r| r.pod_ip)
            .and_then(|ip| ip.parse().ok())
        {
            out.insert(ip);
        }
    }
    out
}

/// Volumes, then init containers in order, then the containers together.
async fn run_containers(
    ctx: Arc<Ctx>,
    pod: Pod,
    shared: Arc<PodShared>,
    stop: watch::Receiver<Option<Duration>>,
    dir: PathBuf,
    logs: PathBuf,
) {
    let Some((sources, volumes, handler)) =
        prepare_pod(&ctx, &pod, &shared, &dir, stop.clone()).await
    else {
        return;
    };
    // Renews the projected ServiceAccount tokens until the pod is done.
    let _tokens = (!sources.tokens.is_empty()).then(|| {
        AbortOnDrop(tokio::spawn(env::keep_tokens_fresh(
            ctx.client.clone(),
            pod.clone(),
            dir.clone(),
        )))
    });
    let spec = pod.spec.clone().unwrap_or_default();
    let make = |c: &k8s_openapi::api::core::v1::Container, init: bool| ContainerLoop {
        ctx: ctx.clone(),
        pod: pod.clone(),
        spec: c.clone(),
        init,
        shared: shared.clone(),
        stop: stop.clone(),
        sources: sources.clone(),
        volumes: volumes.clone(),
        handler: handler.clone(),
        log_dir: logs.clone(),
    };
    for c in spec.init_containers.iter().flatten() {
        if make(c, true).run().await != Outcome::Succeeded {
            return;
        }
    }
    // Main containers wait in PodInitializing until the init containers are done.
    shared.update(|r| {
        for c in &mut r.containers {
            if matches!(&c.state, State::Waiting { reason, .. } if reason == "PodInitializing") {
                c.state = State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                };
            }
        }
    });
    futures::future::join_all(spec.containers.iter().map(|c| make(c, false).run())).await;
}

type Prepared = (
    env::Sources,
    HashMap<String, env::HostVolume>,
    Option<String>,
);

/// What every container of the pod shares: the ConfigMaps and Secrets it
/// refers to, its volumes on disk and its runtime handler. Retried with
/// back-off (the ConfigMap may be created later); None when stopped.
async fn prepare_pod(
    ctx: &Ctx,
    pod: &Pod,
    shared: &PodShared,
    dir: &Path,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Option<Prepared> {
    let addrs = PodAddresses {
        pod_ip: shared.pod_ip(ctx).to_string(),
        host_ip: ctx.node_ip.to_string(),
    };
    loop {
        let attempt = async {
            let sources = env::fetch_sources(&ctx.client, pod)
                .await
                .map_err(|e| e.to_string())?;
            let volumes =
                env::materialize_volumes(pod, &sources, &addrs, dir).map_err(|e| e.to_string())?;
            let handler = runtime_handler(ctx, pod).await?;
            Ok::<_, String>((sources, volumes, handler))
        };
        match attempt.await {
            Ok(p) => return Some(p),
            Err(message) => {
                ctx.recorder.record(
                    pod,
                    PodEvent {
                        kind: EventType::Warning,
                        reason: "Failed",
                        message: format!("Error: {message}"),
                        field_path: None,
                    },
                );
                shared.update(|r| {
                    for c in r.init.iter_mut().chain(r.containers.iter_mut()) {
                        if matches!(c.state, State::Waiting { .. }) {
                            c.state = State::Waiting {
                                reason: "CreateContainerConfigError".into(),
                                message: Some(message.clone()),
                            };
                        }
                    }
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKOFF_START) => {}
            _ = stop.wait_for(|s| s.is_some()) => return None,
        }
    }
}

/// The handler of the pod's RuntimeClass, or None without one.
async fn runtime_handler(ctx: &Ctx, pod: &Pod) -> Result<Option<String>, String> {
    /// RuntimeClasses are immutable in their handler; a short cache only
    /// delays noticing one deleted and re-created with another handler.
    const FRESH: Duration = Duration::from_secs(10);
    let Some(name) = pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone()) else {
        return Ok(None);
    };
    let cached = ctx
        .runtime_classes
        .lock()
        .ok()
        .and_then(|m| m.get(&name).filter(|(_, at)| at.elapsed() < FRESH).cloned());
    if let Some((handler, _)) = cached {
        return Ok(Some(handler));
    }
    let api: Api<RuntimeClass> = Api::all(ctx.client.clone());
    match api.get_opt(&name).await {
        Ok(Some(rc)) => {
            if let Ok(mut m) = ctx.runtime_classes.lock() {
                m.insert(name, (rc.handler.clone(), std::time::Instant::now()));
            }
            Ok(Some(rc.handler))
        }
        Ok(None) => Err(format!("RuntimeClass \"{name}\" not found")),
        Err(e) => Err(format!("reading RuntimeClass \"{name}\": {e}")),
    }
}

/// Write the pod's status whenever its record changes, retrying with
/// back-off while the API server is unreachable; also saves the state file.
async fn status_writer(ctx: Arc<Ctx>, shared: Arc<PodShared>, pod: Pod, state_path: PathBuf) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let host_ip = ctx.node_ip.to_string();
    let mut sent: Option<Value> = None;
    loop {
        shared.changed.notified().await;
        let mut delay = Duration::from_millis(200);
        loop {
            let Some((status, record)) = shared.record.lock().ok().map(|mut r| {
                let ip = r.pod_ip.clone().unwrap_or_else(|| host_ip.clone());
                (pod_status(&mut r, &policy, &host_ip, &ip), r.clone())
            }) else {
                return;
            };
            if let Err(e) = record.save(&state_path) {
                tracing::warn!(pod = %name, error = %e, "saving the pod's state file");
            }
            if sent.as_ref() == Some(&status) {
                break;
            }
            let patch = json!({ "status": status });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    sent = Some(status);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "writing pod status; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shared.changed.notified() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Tell the API server the pod's containers are gone: delete it with
/// `gracePeriodSeconds=0`, for this uid only.
async fn confirm_deletion(ctx: &Ctx, pod: &Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match api.delete(&name, &params).await {
            Ok(_) => return,
            // Gone already.
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            // The name now belongs to a new pod — or, from an API server
            // that does not retry its own write conflicts, the pod was
            // written meanwhile: then it is still ours, so try again.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let ours = api
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|p| p.metadata.uid == pod.metadata.uid);
                if !ours {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "confirming pod deletion; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_period_prefers_the_deletions() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"deletionGracePeriodSeconds": 2}, "spec": {"terminationGracePeriodSeconds": 9, "containers": []}})).expect("pod");
        assert_eq!(grace_period(&p), Duration::from_secs(2));
        let p: Pod = serde_json::from_value(
            json!({"metadata": {}, "spec": {"terminationGracePeriodSeconds": 9, "containers": []}}),
        )
        .expect("pod");
        assert_eq!(grace_period(&p), Duration::from_secs(9));
        let p: Pod = serde_json::from_value(json!({"metadata": {}})).expect("pod");
        assert_eq!(
            grace_period(&p),
            Duration::from_secs(30),
            "Kubernetes' default"
        );
    }

    #[test]
    fn orphaned_pod_files_are_removed_listed_ones_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        for uid in ["keep", "gone"] {
            std::fs::create_dir_all(pod_dir(dir.path(), uid)).expect("mkdir");
        }
        let r = PodRecord {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "gone".into(),
            ..PodRecord::default()
        };
        r.save(&pod_dir(dir.path(), "gone").join("state.json"))
            .expect("save");
        let logs = log_dir(dir.path(), "ns", "p", "gone");
        std::fs::create_dir_all(&logs).expect("mkdir");
        remove_orphans(
            dir.path(),
            &HashSet::from(["keep".to_string()]),
            &HashMap::new(),
        );
        assert!(pod_dir(dir.path(), "keep").exists());
        assert!(!pod_dir(dir.path(), "gone").exists());
        assert!(!logs.exists());
    }
}
