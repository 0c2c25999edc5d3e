//! skiff's Kubernetes-compatible API server.

pub mod resources;
pub mod store;
