//! skiff's scheduler and workload controllers.
//!
//! Every one of them is a client of the Kubernetes API (kube-rs), whether it
//! runs inside `skiff up` or elsewhere: watch, cache, reconcile
//! idempotently, requeue with back-off.

pub mod deployment;
pub mod replicaset;
pub mod scheduler;
#[cfg(test)]
pub(crate) mod testing;

/// Run every controller and the scheduler until one of them fails.
pub async fn run_all(client: kube::Client) -> anyhow::Result<()> {
    // Filled in as the controllers land; until then nothing to run.
    let _ = client;
    std::future::pending().await
}
