//! skiff's Kubernetes-compatible API server.

pub mod admission;
pub mod audit;
pub mod authn;
pub mod csr;
pub mod error;
pub mod gc;
pub mod handlers;
pub mod namespaces;
pub mod nodeauthz;
pub mod noderestriction;
pub mod openapi;
pub mod pki;
pub mod podsecurity;
pub mod rbac;
pub mod registry;
pub mod request;
pub mod resources;
pub mod server;
pub mod services;
pub mod store;
pub mod webhook;
