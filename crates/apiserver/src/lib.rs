//! skiff's Kubernetes-compatible API server.

pub mod openapi;
pub mod resources;
