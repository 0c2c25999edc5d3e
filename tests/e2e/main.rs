//! End-to-end tests: the real `skiff` binary driven by the real kubectl
//! (1.27 and 1.33, and the `/usr/bin/kubectl` dispatcher), the Python
//! `kubernetes` client and raw HTTPS requests with curl.
//!
//! One test binary with a module per area keeps link time down. Every test
//! starts its own server (`harness::Skiff`), so tests are independent and
//! run in parallel. Tools that a test needs are checked up front and a
//! missing one fails the test with what to install; nothing is skipped
//! silently. Assertions are Kubernetes' behaviour (wording, status codes,
//! list order), never whatever skiff happens to do.
//!
//! - `kubectl`: apply (client- and server-side), patch directives, get with
//!   Table columns, watch, describe, scale, delete, namespaces, auth.
//! - `python`: `tests/python/client_test.py` with the official client.
//! - `restart`: state and resourceVersions survive SIGKILL and Ctrl-C.
//! - `bad_input`: 4xx Status for bad requests, and nothing written.
//! - `secrets`: Secrets encrypted at rest, read back across a restart.
//! - `audit`: the audit log of mutating requests.
//! - `rbac`: ServiceAccount tokens and RBAC as kubectl sees them.
//! - `watch`: watch semantics over raw HTTPS.
//! - `fleet`: `skiff node` processes in network namespaces (two amd64, one
//!   arm64): RuntimeClass routing, Linux images placed by their platforms
//!   (pushed to a loopback registry from layouts `oci` builds), topology
//!   spread and pod anti-affinity, rollouts and undo, self-healing, a Job,
//!   a DaemonSet following a node that joins, a StatefulSet in order, and
//!   pods moving off a node whose agent died.
//! - `linux`: Linux-image pods as real containers on the local node: logs,
//!   exit codes, OOMKilled, a fork bomb held at the pids limit, pod-to-pod
//!   ping, a malicious layer refused, nothing left behind on delete, and
//!   `kubectl exec` (WebSocket, stdin, a terminal, RBAC).
//! - `dns`: the node's cluster DNS asked with `dig`: Services, headless
//!   endpoints and hostnames, SRV, ExternalName, NXDOMAIN/NODATA, SERVFAIL.
//! - `examples`: `examples/hello`, `sensor`, `stateful` and `mixed` (with
//!   the gateway) from their own manifests.
//! - `join`: nodes joining with a bootstrap token and a CA hash; their own
//!   credential, NodeRestriction.
//! - `cli`: every command's `--help` describes every option, and the docs
//!   mention every option.
//! - `podsecurity`: Pod Security admission: enforce, warn and audit from
//!   namespace labels, with Kubernetes' messages.
//! - `serviceaccounts`: the token, CA and namespace every pod gets at
//!   `/var/run/secrets/kubernetes.io/serviceaccount` (Wasm and Linux), the
//!   token working as the account and dying with its pod, opting out.
//! - `webhooks`: admission webhooks (a Python HTTPS webhook): refusals,
//!   warnings, JSONPatch mutation, namespace selectors, failure policies.
//! - `wasm`: Wasm pods from a real registry (`registry`: Debian's
//!   docker-registry on loopback) through the scheduler, controllers and
//!   the local node's wasmtime handler, seen with kubectl.

mod audit;
mod bad_input;
mod cli;
mod dns;
mod examples;
mod fleet;
mod gateway;
mod harness;
mod join;
mod kubectl;
mod linux;
mod oci;
mod podsecurity;
mod python;
mod rbac;
mod registry;
mod restart;
mod secrets;
mod serviceaccounts;
mod wasm;
mod watch;
mod webhooks;
