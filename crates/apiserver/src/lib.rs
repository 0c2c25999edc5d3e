//! skiff's Kubernetes-compatible API server.

pub mod error;
pub mod pki;
pub mod resources;
pub mod store;
