//! The EndpointSlice and Endpoints controllers: which pods back each
//! Service, written where proxies, DNS and clients look for them.
//!
//! Kubernetes runs these as two controllers over the same caches; skiff runs
//! them as one, because everything but the final write is shared. For every
//! Service that selects pods (a non-empty `spec.selector`, not ExternalName)
//! one reconcile:
//!
//! 1. finds its backends in the pod cache ([`pods`]): selected, with an IP,
//!    not finished, each with its Service ports resolved;
//! 2. brings its EndpointSlices (labelled with the Service's name and this
//!    controller as manager, owned by the Service) to those backends with
//!    the fewest writes ([`slices::plan`]), once the cache has caught up
//!    with the previous writes ([`tracker`]);
//! 3. writes its core/v1 Endpoints of the same name ([`endpoints`]) when it
//!    differs.
//!
//! A Service is reconciled when it changes and when a pod changes that it
//! selects or selected before (the controller remembers which Services each
//! pod matched, so a relabelled pod leaves the old one). When a Service is
//! deleted, or stops selecting pods, its managed slices and its Endpoints
//! are deleted. Endpoints carry no manager label, so "its Endpoints" after
//! a selector is removed means one this process wrote: a selector removed
//! while the controller was not running leaves the old Endpoints in place,
//! as Kubernetes (which never deletes them then) would.
//!
//! An endpoint's zone is its node's `topology.kubernetes.io/zone` label,
//! read from the node cache when the Service is reconciled; relabelling a
//! node does not by itself requeue Services.
//!
//! Unlike Kubernetes, skiff does not set topology hints, the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation, or cap
//! Endpoints at 1000 addresses (slices have no such limit).

pub mod endpoints;
pub mod pods;
pub mod slices;
pub mod tracker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::reconcile::{self, Key, Owner, Requeue, Seen, WorkQueue};
use pods::Backend;
use slices::{Content, MANAGED_BY, MANAGED_BY_LABEL, MAX_ENDPOINTS, SERVICE_NAME_LABEL};
use tracker::Tracker;

/// Workers reconciling different Services at once.
const WORKERS: usize = 4;
/// The label marking the outputs of a headless Service.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The node label an endpoint's zone comes from.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// How soon to look again when the cache lags the controller's own writes
/// (the watch event that ends the lag usually queues the Service sooner).
const STALE_RETRY: Duration = Duration::from_millis(500);

/// Why a reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("service {key}: {action}: {source}")]
    Api {
        /// The Service.
        key: Key,
        /// What the controller was doing.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

fn api_error(key: &Key, action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    let key = key.clone();
    move |source| Error::Api {
        key,
        action,
        source,
    }
}

/// Whether an API error means the object is already gone.
fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

struct Ctx {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
    nodes: Store<Node>,
    tracker: Tracker,
    /// The Services each pod matched when last seen.
    pod_services: Mutex<HashMap<Key, Vec<Key>>>,
    /// Services whose Endpoints this process keeps, so that it may delete
    /// them when the Service stops selecting pods.
    managed_endpoints: Mutex<HashSet<Key>>,
    queue: WorkQueue,
}

/// Run the controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    let (services, service_events) = informers.watch::<Service>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let (slices, slice_events) = informers.watch::<EndpointSlice>(None);
    let (endpoints, endpoints_events) = informers.watch::<Endpoints>(None);
    // Nodes are only read (for zones): their events are not needed.
    let nodes = informers.cache::<Node>(None);
    let ctx = Arc::new(Ctx {
        client,
        services,
        pods,
        slices,
        endpoints,
        nodes,
        tracker: Tracker::default(),
        pod_services: Mutex::new(HashMap::new()),
        managed_endpoints: Mutex::new(HashSet::new()),
        queue: WorkQueue::new(),
    });
    let service_loop = service_events.for_each(|ev| {
        ctx.service_seen(ev);
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        ctx.pod_seen(ev);
        std::future::ready(())
    });
    let slice_loop = slice_events.for_each(|ev| {
        match ev {
            Seen::Applied(s) => {
                if let Some(key) = managed_slice_owner(&s) {
                    ctx.queue.add(key);
                }
            }
            Seen::Deleted(s) => {
                if let Some(key) = managed_slice_owner(&s) {
                    ctx.tracker.observe_deleted(&key, &s);
                    ctx.queue.add(key);
                }
            }
            Seen::Synced => {}
        }
        std::future::ready(())
    });
    let endpoints_loop = endpoints_events.for_each(|ev| {
        // Someone else changed or deleted the Endpoints of a Service this
        // controller keeps: put it back. Others' Endpoints are left alone.
        if let Seen::Applied(e) | Seen::Deleted(e) = ev {
            let key = Key::of(&e);
            if ctx
                .services
                .get(&key.object_ref())
                .is_some_and(|s| pods::selects_pods(&s))
            {
                ctx.queue.add(key);
            }
        }
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        // A reconcile on a half-listed cache would delete the slices of
        // pods not listed yet.
        let synced = ctx.services.wait_until_ready().await.is_ok()
            && ctx.pods.wait_until_ready().await.is_ok()
            && ctx.slices.wait_until_ready().await.is_ok()
            && ctx.endpoints.wait_until_ready().await.is_ok()
            && ctx.nodes.wait_until_ready().await.is_ok();
        if synced {
            ctx.queue
                .run(WORKERS, move |key| {
                    let ctx = worker_ctx.clone();
                    async move { ctx.reconcile(key).await }
                })
                .await;
        }
    };
    tokio::select! {
        () = service_loop => anyhow::bail!("the Service watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = slice_loop => anyhow::bail!("the EndpointSlice watch ended"),
        () = endpoints_loop => anyhow::bail!("the Endpoints watch ended"),
        () = workers => anyhow::bail!("the endpoint workers stopped"),
    }
}

/// The Service a slice managed by this controller belongs to.
fn managed_slice_owner(slice: &EndpointSlice) -> Option<Key> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    Some(Key {
        namespace: slice.metadata.namespace.clone()?,
        name: labels.get(SERVICE_NAME_LABEL)?.clone(),
    })
}

/// The labels of a Service's outputs: the Service's own, plus whether it is
/// headless.
fn output_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if pods::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// The labels of a Service's slices.
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = output_labels(svc);
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

impl Ctx {
    fn service_seen(&self, ev: Seen<Service>) {
        match ev {
            Seen::Applied(s) | Seen::Deleted(s) => self.queue.add(Key::of(&s)),
            // After a relist, deletions missed while the watch was down show
            // only as slices whose Service is gone.
            Seen::Synced => {
                for s in self.slices.state() {
                    if let Some(key) = managed_slice_owner(&s) {
                        self.queue.add(key);
                    }
                }
            }
        }
    }

    /// Queue the Services a pod event concerns: those it matches now, and
    /// those it matched when last seen.
    fn pod_seen(&self, ev: Seen<Pod>) {
        let (pod, deleted) = match ev {
            Seen::Applied(p) => (p, false),
            Seen::Deleted(p) => (p, true),
            // A relist may hide deletions: look at every Service again.
            Seen::Synced => {
                for s in self.services.state() {
                    self.queue.add(Key::of(s.as_ref()));
                }
                return;
            }
        };
        let ns = pod.metadata.namespace.as_deref();
        let matching: Vec<Key> = self
            .services
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == ns)
            .filter(|s| pods::selector_matches(s, pod.metadata.labels.as_ref()))
            .map(|s| Key::of(s.as_ref()))
            .collect();
        let before = {
            let mut seen = self.pod_services.lock().unwrap_or_else(|e| e.into_inner());
            // Pods that match nothing are not remembered.
            if deleted || matching.is_empty() {
                seen.remove(&Key::of(&pod))
            } else {
                seen.insert(Key::of(&pod), matching.clone())
            }
        };
        for key in before.into_iter().flatten().chain(matching) {
            self.queue.add(key);
        }
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let svc = self.services.get(&key.object_ref());
        let managed = self.slices.state_filter(|s| {
            s.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                && managed_slice_owner(s).is_some_and(|k| k.name == key.name)
        });
        let Some(svc) = svc.filter(|s| pods::selects_pods(s)) else {
            let gone = self.services.get(&key.object_ref()).is_none();
            self.delete_slices(&key, &managed).await?;
            self.delete_endpoints(&key, gone).await?;
            return Ok(Requeue::Never);
        };
        self.lock_managed().insert(key.clone());
        let ns_pods = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(key.namespace.as_str()));
        let backends = pods::backends(&svc, ns_pods.iter().map(Arc::as_ref), |node| {
            self.nodes
                .get(&ObjectRef::new(node))?
                .metadata
                .labels
                .as_ref()?
                .get(ZONE_LABEL)
                .cloned()
        });
        let slices = self.sync_slices(&key, &svc, &backends, &managed).await;
        let endpoints = self.sync_endpoints(&key, &svc, &backends).await;
        endpoints?;
        slices
    }

    fn lock_managed(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.managed_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Bring the Service's slices to its backends.
    async fn sync_slices(
        &self,
        key: &Key,
        svc: &Service,
        backends: &[Backend],
        managed: &[Arc<EndpointSlice>],
    ) -> Result<Requeue, Error> {
        let existing: Vec<&EndpointSlice> = managed.iter().map(Arc::as_ref).collect();
        if !self.tracker.caught_up(key, &existing) {
            return Ok(Requeue::After(STALE_RETRY));
        }
        let plan = slice_plan(svc, backends, &existing);
        if plan.is_empty() {
            return Ok(Requeue::Never);
        }
        let labels = slice_labels(svc);
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), &key.namespace);
        // Creates and updates before deletes, so that a backend moving
        // between slices is never absent from all of them.
        for content in &plan.create {
            let slice = new_slice(svc, &labels, content);
            let created = api
                .create(&PostParams::default(), &slice)
                .await
                .map_err(api_error(key, "creating an EndpointSlice"))?;
            self.tracker.written(key, &created);
        }
        for (name, content) in &plan.update {
            let Some(current) = existing
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            else {
                continue;
            };
            let slice = updated_slice(current, svc, &labels, content);
            match api.replace(name, &PostParams::default(), &slice).await {
                Ok(written) => self.tracker.written(key, &written),
                Err(e) if is_not_found(&e) => self.tracker.deleted(key, name),
                Err(e) => return Err(api_error(key, "updating an EndpointSlice")(e)),
            }
        }
        for name in &plan.delete {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => self.tracker.deleted(key, name),
                Err(e) if is_not_found(&e) => self.tracker.deleted(key, name),
                Err(e) => return Err(api_error(key, "deleting an EndpointSlice")(e)),
            }
        }
        tracing::debug!(
            %key,
            created = plan.create.len(),
            updated = plan.update.len(),
            deleted = plan.delete.len(),
            "synced EndpointSlices"
        );
        Ok(Requeue::Never)
    }

    /// Delete every managed slice of a Service that no longer wants them.
    async fn delete_slices(&self, key: &Key, managed: &[Arc<EndpointSlice>]) -> Result<(), Error> {
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), &key.namespace);
        for s in managed {
            let name = s.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(api_error(key, "deleting an EndpointSlice")(e)),
            }
        }
        self.tracker.forget(key);
        Ok(())
    }

    /// Write the Service's Endpoints when they differ from its backends.
    async fn sync_endpoints(
        &self,
        key: &Key,
        svc: &Service,
        backends: &[Backend],
    ) -> Result<(), Error> {
        let subsets = endpoint_subsets(svc, backends);
        let labels = output_labels(svc);
        let api = Api::<Endpoints>::namespaced(self.client.clone(), &key.namespace);
        let current = self.endpoints.get(&key.object_ref());
        let result = match current {
            Some(cur) if endpoints_current(&cur, svc, backends) => return Ok(()),
            Some(cur) => {
                let mut obj = (*cur).clone();
                obj.metadata.labels = (!labels.is_empty()).then_some(labels);
                obj.subsets = (!subsets.is_empty()).then_some(subsets);
                // The cached resourceVersion guards against overwriting a
                // change not seen yet: a conflict retries on fresher data.
                api.replace(&key.name, &PostParams::default(), &obj)
                    .await
                    .map_err(api_error(key, "updating Endpoints"))
            }
            None => {
                let obj = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(key.name.clone()),
                        namespace: Some(key.namespace.clone()),
                        labels: (!labels.is_empty()).then_some(labels),
                        ..ObjectMeta::default()
                    },
                    subsets: (!subsets.is_empty()).then_some(subsets),
                };
                api.create(&PostParams::default(), &obj)
                    .await
                    .map_err(api_error(key, "creating Endpoints"))
            }
        };
        result.map(|_| ())
    }

    /// Delete a Service's Endpoints: always once the Service is gone (as
    /// Kubernetes does), otherwise only if this process kept them.
    async fn delete_endpoints(&self, key: &Key, service_gone: bool) -> Result<(), Error> {
        let ours = self.lock_managed().remove(key);
        if !(service_gone || ours) || self.endpoints.get(&key.object_ref()).is_none() {
            return Ok(());
        }
        let api = Api::<Endpoints>::namespaced(self.client.clone(), &key.namespace);
        match api.delete(&key.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                if ours {
                    self.lock_managed().insert(key.clone());
                }
                Err(api_error(key, "deleting Endpoints")(e))
            }
        }
    }
}

/// The slice writes a Service needs, given its backends and its managed
/// slices as the cache (or the API server) holds them. Empty when they are
/// current: comparing here is what keeps the controller from rewriting
/// unchanged slices.
fn slice_plan(svc: &Service, backends: &[Backend], existing: &[&EndpointSlice]) -> slices::Plan {
    let labels = slice_labels(svc);
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    let current_meta = |s: &EndpointSlice| {
        s.metadata.labels.as_ref() == Some(&labels)
            && reconcile::controller_of(&s.metadata).is_some_and(|o| o.uid == uid)
    };
    let desired = slices::desired(backends, pods::publishes_not_ready(svc));
    slices::plan(existing, desired, MAX_ENDPOINTS, current_meta)
}

/// The subsets of the Service's Endpoints.
fn endpoint_subsets(
    svc: &Service,
    backends: &[Backend],
) -> Vec<k8s_openapi::api::core::v1::EndpointSubset> {
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    endpoints::subsets(
        backends,
        pods::publishes_not_ready(svc),
        pods::is_headless(svc),
        has_ports,
    )
}

/// Whether a Service's Endpoints already say what they should.
fn endpoints_current(cur: &Endpoints, svc: &Service, backends: &[Backend]) -> bool {
    cur.subsets.as_deref().unwrap_or_default() == endpoint_subsets(svc, backends).as_slice()
        && cur.metadata.labels.clone().unwrap_or_default() == output_labels(svc)
}

/// A new slice for the Service, named by the API server after it.
fn new_slice(svc: &Service, labels: &BTreeMap<String, String>, content: &Content) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                svc.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![Owner::of(svc).reference()]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: content.endpoints.clone(),
        ports: Some(slices::slice_ports(&content.ports)),
    }
}

/// An existing slice rewritten with new content, labels and owner; other
/// owners' references are kept.
fn updated_slice(
    current: &EndpointSlice,
    svc: &Service,
    labels: &BTreeMap<String, String>,
    content: &Content,
) -> EndpointSlice {
    let mut slice = current.clone();
    let mut refs: Vec<_> = current
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.controller != Some(true))
        .cloned()
        .collect();
    refs.push(Owner::of(svc).reference());
    slice.metadata.owner_references = Some(refs);
    slice.metadata.labels = Some(labels.clone());
    slice.endpoints = content.endpoints.clone();
    slice.ports = Some(slices::slice_ports(&content.ports));
    slice
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
