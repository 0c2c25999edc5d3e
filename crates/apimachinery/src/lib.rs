//! Kubernetes API machinery for skiff, with no I/O.
//!
//! Everything here works on objects in the Kubernetes JSON wire format
//! (`serde_json::Value`) and is shared by the API server, controllers and
//! tests:
//!
//! - [`schema`]: a structural schema of every served kind (field names,
//!   list semantics, merge keys), the one source for strategic merge patch,
//!   server-side apply and unknown-field validation.
//! - [`patch`]: JSON merge patch, JSON patch and strategic merge patch.
//! - [`apply`]: server-side apply with `managedFields` and conflicts.
//! - [`fields`]: unknown-field detection for strict field validation.
//! - [`selector`]: label and field selectors.
//! - [`protobuf`]: decoding the Kubernetes protobuf envelope that newer
//!   kubectl versions send for a few requests.
//! - [`validation`]: names, defaulting and per-kind validation with errors
//!   that name the field.
//! - [`table`]: `meta.k8s.io/v1` Table rows for `kubectl get`.

pub mod apply;
pub mod fields;
pub mod patch;
pub mod protobuf;
pub mod schema;
pub mod selector;
pub mod table;
pub mod validation;

/// The common name of the client certificate the API server presents to
/// node agents (logs, exec): agents serve only that certificate, signed by
/// the cluster CA.
pub const NODE_CLIENT_COMMON_NAME: &str = "skiff-apiserver-node-client";
