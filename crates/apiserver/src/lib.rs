//! skiff's Kubernetes-compatible API server.

pub mod resources;
