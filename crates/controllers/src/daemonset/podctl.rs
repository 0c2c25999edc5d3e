//! Creating and deleting a controller's pods with its expectations kept,
//! shared by the DaemonSet and Job controllers.
//!
//! Unlike a ReplicaSet's pods, theirs are not interchangeable (one per
//! node, one per completion index), so the pods to create are given one by
//! one. Creates go in slow-start batches (1, 2, 4, …) so a template the API
//! server refuses costs one call; deletes carry the pod's UID as a
//! precondition so a recreated namesake is never hit.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;

use crate::reconcile::Key;
use crate::replicaset::expectations::Expectations;

/// Concurrent API calls within one batch.
const CALL_CONCURRENCY: usize = 64;

/// Create the pods in slow-start batches, recording each created pod as an
/// expectation of `owner`; stops at the first batch with a failure.
pub async fn create_pods(
    api: &Api<Pod>,
    owner: &Key,
    expectations: &Expectations,
    pods: Vec<Pod>,
) -> Result<(), kube::Error> {
    let mut pods = pods.into_iter();
    let mut batch = 1usize;
    loop {
        let chunk: Vec<Pod> = pods.by_ref().take(batch).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(chunk)
            .map(|pod| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &pod).await }
            })
            .buffer_unordered(CALL_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => expectations.created(owner, p.metadata.name.unwrap_or_default()),
                // A terminating namespace refuses new pods; nothing to retry.
                Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("terminat") => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        batch = batch.saturating_mul(2);
    }
}

/// Delete the pods concurrently, each guarded by its UID. A pod already
/// gone or replaced counts as deleted.
pub async fn delete_pods(
    api: &Api<Pod>,
    owner: &Key,
    expectations: &Expectations,
    doomed: Vec<Arc<Pod>>,
) -> Result<(), kube::Error> {
    for p in &doomed {
        expectations.deleting(
            owner,
            p.metadata.uid.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        );
    }
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(doomed)
        .map(|p| async move {
            let name = p.metadata.name.clone().unwrap_or_default();
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    expectations.delete_failed(owner, &uid);
                    match e {
                        kube::Error::Api(s) if s.code == 404 || s.code == 409 => Ok(()),
                        e => Err(e),
                    }
                }
            }
        })
        .buffer_unordered(CALL_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}
