//! skiff's scheduler: places pending pods on nodes, shaped like
//! kube-scheduler.
//!
//! - [`cache`]: nodes, what is placed on them, RuntimeClass handlers, fed by
//!   watches ([`informer`]); pods the scheduler bound are assumed at once.
//! - [`queue`]: pending pods by priority; unschedulable pods park until the
//!   cluster changes (at most once a second) or 30 s pass.
//! - [`framework`] and [`plugins`]: PreFilter, Filter, Score per plugin.
//! - this module: the loop — one cycle at a time under the cache lock
//!   (pure computation, no API calls), Reserve in the cache, then Bind
//!   (`pods/binding`) in a task, up to [`Config::parallelism`] at once. A
//!   failed bind un-reserves and requeues. A pod that fits nowhere gets
//!   `PodScheduled=False`, reason `Unschedulable`, and Kubernetes' message.
//! - image platforms: before a pod running Linux images is scheduled, each
//!   image's platforms are read from its registry once through the
//!   [`ImageResolver`] (the pod waits at most [`IMAGE_WAIT`] for it), kept
//!   for [`IMAGE_TTL`], and the `ImagePlatform` filter compares them with
//!   the nodes' os/arch labels.

pub mod bench;
pub mod cache;
pub mod framework;
mod informer;
pub mod plugins;
pub mod queue;
pub mod resources;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use cache::{Cache, ImageTarget, PodInfo, PodKey};
use framework::Framework;
use queue::Queue;

/// Reads what platforms an image provides from its registry. The binary
/// supplies one backed by skiff's image client; without one, the
/// `ImagePlatform` filter has nothing to compare and rules nothing out.
pub trait ImageResolver: Send + Sync + 'static {
    /// The platforms of `image`, for a pod in `namespace` with these
    /// `imagePullSecrets` names; an error is a message for the log.
    fn resolve(
        &self,
        image: &str,
        namespace: &str,
        pull_secrets: &[String],
    ) -> Pin<Box<dyn Future<Output = Result<ImageTarget, String>> + Send>>;
}

/// How the scheduler runs.
#[derive(Clone)]
pub struct Config {
    /// The `spec.schedulerName` this scheduler serves ("default-scheduler").
    pub name: String,
    /// Bindings in flight at once.
    pub parallelism: usize,
    /// Where image platforms come from.
    pub images: Option<Arc<dyn ImageResolver>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("parallelism", &self.parallelism)
            .field("images", &self.images.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default-scheduler".to_string(),
            parallelism: 64,
            images: None,
        }
    }
}

/// The longest a pod waits for its images' platforms before it is
/// scheduled without them.
pub const IMAGE_WAIT: Duration = Duration::from_secs(2);
/// How long an image's platforms are trusted (a tag may move).
pub const IMAGE_TTL: Duration = Duration::from_secs(600);
/// How long a failed lookup is remembered before it is tried again.
const IMAGE_RETRY: Duration = Duration::from_secs(60);

/// How long a pod whose bind failed waits before it is tried again.
const BIND_RETRY: Duration = Duration::from_secs(1);
/// The least time between two wake-ups of every parked pod.
const UNPARK_INTERVAL: Duration = Duration::from_secs(1);

/// Everything the loop and the watches share.
#[derive(Default)]
struct State {
    cache: Cache,
    queue: Queue,
    /// Pods waiting for a node, as last seen.
    pending: HashMap<PodKey, Arc<PodInfo>>,
    /// The Unschedulable message last written per pod, to write it once.
    reported: HashMap<PodKey, String>,
    /// The cluster changed in a way that may help parked pods.
    changed: bool,
    /// Images being looked up → pods waiting for the answer.
    resolving: HashMap<String, Vec<PodKey>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    client: kube::Client,
    cfg: Config,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent-enough cache;
        // keep scheduling rather than poisoning every later cycle.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the loop decided for one pod.
enum Decision {
    Bind(Arc<PodInfo>, String),
    Unschedulable(Arc<PodInfo>, String),
}

/// Run the scheduler until a watch fails for good.
pub async fn run(client: kube::Client, cfg: Config) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Notify::new(),
        client,
        cfg,
    });
    let watches = informer::spawn(shared.clone());
    tokio::select! {
        r = watches => r,
        r = schedule_loop(shared) => r,
    }
}

async fn schedule_loop(shared: Arc<Shared>) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(shared.cfg.parallelism.max(1)));
    let mut framework = plugins::default_framework();
    let mut last_unpark = Instant::now();
    loop {
        let permit = permits.clone().acquire_owned().await?;
        let decision = loop {
            if let Some(d) = next_decision(&shared, &mut framework, &mut last_unpark) {
                break d;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(UNPARK_INTERVAL) => {}
            }
        };
        let shared = shared.clone();
        match decision {
            Decision::Bind(pod, node) => {
                tokio::spawn(bind(shared, pod, node, permit));
            }
            Decision::Unschedulable(pod, message) => {
                tokio::spawn(report_unschedulable(shared, pod, message, permit));
            }
        }
    }
}

/// Run cycles until one needs an API call, or nothing is left to try.
fn next_decision(
    shared: &Arc<Shared>,
    framework: &mut Framework,
    last_unpark: &mut Instant,
) -> Option<Decision> {
    let mut st = shared.lock();
    let now = Instant::now();
    if now.duration_since(*last_unpark) >= UNPARK_INTERVAL {
        if std::mem::take(&mut st.changed) {
            st.queue.unpark_all();
        }
        st.queue.unpark_expired(now);
        *last_unpark = now;
    }
    while let Some(key) = st.queue.pop() {
        let Some(pod) = st.pending.get(&key).cloned() else {
            continue;
        };
        if st.cache.is_assumed(&key) {
            continue;
        }
        if let Some(resolver) = &shared.cfg.images {
            if hold_for_images(shared, resolver, &mut st, &pod) {
                continue;
            }
        }
        match framework.schedule(&pod, &st.cache) {
            Ok(node) => {
                st.cache.assume(&pod, &node);
                st.reported.remove(&key);
                return Some(Decision::Bind(pod, node));
            }
            Err(fit) => {
                st.queue.park(key.clone(), pod.priority);
                let message = fit.to_string();
                tracing::debug!(pod = %key, %message, "unschedulable");
                if st.reported.get(&key) != Some(&message) {
                    st.reported.insert(key, message.clone());
                    return Some(Decision::Unschedulable(pod, message));
                }
            }
        }
    }
    None
}

/// Start looking up the pod's images whose platforms are not known; the
/// pod waits (out of the queue) until they are, or [`IMAGE_WAIT`] passes.
/// Returns whether the pod is held.
fn hold_for_images(
    shared: &Arc<Shared>,
    resolver: &Arc<dyn ImageResolver>,
    st: &mut State,
    pod: &Arc<PodInfo>,
) -> bool {
    let missing: Vec<String> = plugins::image_platform::images_to_check(pod, &st.cache)
        .into_iter()
        .filter(|i| st.cache.image_target(i).is_none())
        .collect();
    for image in &missing {
        let waiting = st.resolving.entry(image.clone()).or_default();
        if waiting.is_empty() {
            let secrets: Vec<String> = pod
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.image_pull_secrets.as_ref())
                .into_iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect();
            let lookup = resolver.resolve(image, pod.namespace(), &secrets);
            tokio::spawn(resolve_image(shared.clone(), image.clone(), lookup));
        }
        if !waiting.contains(&pod.key) {
            waiting.push(pod.key.clone());
        }
    }
    !missing.is_empty()
}

/// Wait for one image lookup: record the answer, release the pods waiting
/// for it (after [`IMAGE_WAIT`] at the latest, as Unknown), and forget the
/// answer when it grows stale.
async fn resolve_image(
    shared: Arc<Shared>,
    image: String,
    lookup: Pin<Box<dyn Future<Output = Result<ImageTarget, String>> + Send>>,
) {
    let mut lookup = tokio::spawn(lookup);
    let result = match tokio::time::timeout(IMAGE_WAIT, &mut lookup).await {
        Ok(r) => r,
        Err(_) => {
            tracing::info!(%image, "image platforms not known within {IMAGE_WAIT:?}; scheduling without them");
            settle_image(&shared, &image, ImageTarget::Unknown);
            lookup.await
        }
    };
    let (target, ttl) = match result {
        Ok(Ok(t)) => (t, IMAGE_TTL),
        Ok(Err(e)) => {
            tracing::info!(%image, error = %e, "cannot read the image's platforms; any node may take it");
            (ImageTarget::Unknown, IMAGE_RETRY)
        }
        Err(e) => {
            tracing::warn!(%image, error = %e, "image platform lookup failed");
            (ImageTarget::Unknown, IMAGE_RETRY)
        }
    };
    settle_image(&shared, &image, target);
    tokio::time::sleep(ttl).await;
    shared.lock().cache.forget_image_target(&image);
}

/// Record an image's platforms and put the pods that waited back in line.
fn settle_image(shared: &Shared, image: &str, target: ImageTarget) {
    let mut st = shared.lock();
    st.cache.set_image_target(image, target);
    for key in st.resolving.remove(image).unwrap_or_default() {
        if let Some(p) = st.pending.get(&key) {
            let priority = p.priority;
            st.queue.push(key, priority);
        }
    }
    drop(st);
    shared.wake.notify_one();
}

/// Bind: `POST pods/NAME/binding`. The watch confirms the placement; on
/// failure the reservation is dropped and the pod tried again shortly.
async fn bind(shared: Arc<Shared>, pod: Arc<PodInfo>, node: String, _permit: OwnedSemaphorePermit) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), pod.namespace());
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name().to_string()),
            namespace: Some(pod.namespace().to_string()),
            uid: pod.pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let result = api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            pod.name(),
            &PostParams::default(),
            &binding,
        )
        .await;
    if let Err(e) = result {
        tracing::debug!(pod = %pod.key, %node, error = %e, "bind failed; will retry");
        shared.lock().cache.forget(&pod.key);
        tokio::spawn(async move {
            tokio::time::sleep(BIND_RETRY).await;
            let mut st = shared.lock();
            if st.pending.contains_key(&pod.key) {
                st.queue.push(pod.key.clone(), pod.priority);
            }
            drop(st);
            shared.wake.notify_one();
        });
    }
}

/// Record why a pod fits nowhere, as kube-scheduler does: the
/// `PodScheduled=False` condition with reason `Unschedulable`.
async fn report_unschedulable(
    shared: Arc<Shared>,
    pod: Arc<PodInfo>,
    message: String,
    _permit: OwnedSemaphorePermit,
) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), pod.namespace());
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }]}});
    if let Err(e) = api
        .patch_status(
            pod.name(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        tracing::debug!(pod = %pod.key, error = %e, "could not record Unschedulable");
        shared.lock().reported.remove(&pod.key);
    }
}
