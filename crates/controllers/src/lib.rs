//! skiff's scheduler and workload controllers.
//!
//! Every one of them is a client of the Kubernetes API (kube-rs), whether it
//! runs inside `skiff up` or elsewhere: watch, cache, reconcile
//! idempotently, requeue with back-off.

pub mod deployment;
pub mod hash;
pub mod reconcile;
pub mod replicaset;
pub mod scheduler;
#[cfg(test)]
pub(crate) mod testing;
