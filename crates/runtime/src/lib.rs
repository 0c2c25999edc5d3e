//! skiff's node agent and the runtimes it drives.
//!
//! - [`agent`]: registers the Node, heartbeats through a Lease, watches the
//!   pods bound to this node and drives each through its lifecycle,
//!   reporting status and Events through the Kubernetes API (kube-rs).
//! - [`cri`]: the contract between the agent and a container runtime: what
//!   one container needs to start, and how it ends.
//! - [`wasm`]: the `wasmtime` handler: one Engine per node, modules compiled
//!   once per digest and cached on disk, WASI command modules and
//!   components run in-process with memory and CPU limits.
//! - [`images`]: OCI images and Wasm artifacts: pulls, a content-addressed
//!   store, platform selection, import for air-gapped nodes.
//! - [`dns`]: cluster DNS (`cluster.local`) from Services and EndpointSlices,
//!   answered by every node for its pods; the rest forwarded upstream.
//! - [`gateway`]: the node's built-in Ingress controller (class `skiff`):
//!   routes to Services' endpoints, calling local Wasm functions in-process.
//! - [`linux`]: the `linux` handler: Linux images as real containers
//!   (namespaces, overlay root, cgroups) started by skiff itself.
//! - [`proxy`]: the service proxy (kube-proxy's role): nftables rules that
//!   send ClusterIP, NodePort and external-IP traffic to ready endpoints.
//! - [`service`]: Services and their ready endpoints as node components
//!   see them, shared by the gateway and the proxy.
//! - [`logs`]: per-container log files in the CRI format, written by the
//!   runtimes and read back for `kubectl logs`.

pub mod agent;
pub mod cri;
pub mod dns;
pub mod gateway;
pub mod images;
pub mod linux;
pub mod logs;
pub mod proxy;
pub mod service;
pub mod wasm;
