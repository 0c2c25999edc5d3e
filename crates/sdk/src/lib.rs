//! The guest side of skiff: what a WebAssembly module run by skiff uses to
//! serve HTTP, write logs, read its configuration and stop gracefully.
//!
//! skiff runs WASI command modules (`wasm32-wasi`, a `main` function) as the
//! containers of pods whose RuntimeClass picks the `wasmtime` handler. This
//! crate has no dependencies and builds both for `wasm32-wasi` with rustc 1.63
//! (what Debian ships, see `scripts/build-examples`) and natively, where its
//! unit tests run. It is the reference for the contracts between a guest and
//! skiff's runtime; the runtime implements the other side from these docs.
//!
//! | need | module | contract |
//! |---|---|---|
//! | answer HTTP requests | [`http`] | one fresh instance per request, CGI on env/stdin/stdout ([`serve`]) |
//! | write logs `kubectl logs` reads well | [`log`] | logfmt lines on stdout ([`info!`], [`warn!`], [`error!`], [`debug!`]) |
//! | read configuration | [`config`] | env vars from the manifest, files from mounted ConfigMap/Secret volumes |
//! | stop cleanly when the pod stops | [`shutdown`] | the runtime creates the file named by `SKIFF_SHUTDOWN_FILE` |
//!
//! # What a Wasm pod sees
//!
//! * **Arguments**: the container's `command` and `args`, as for a Linux
//!   container.
//! * **Environment**: the container's `env` and `envFrom` (ConfigMaps,
//!   Secrets, the downward API), plus `HOSTNAME` set to the pod name as
//!   Kubernetes does, plus the variables named in this crate's modules.
//! * **Files**: each `volumeMount` is a preopened directory at its
//!   `mountPath`, so `std::fs` works with the same absolute paths a Linux
//!   container would use.
//! * **stdout and stderr** are the container's log: `kubectl logs` shows
//!   them, and the runtime adds timestamps (`kubectl logs --timestamps`), so
//!   guests do not write their own.
//! * **Exit**: exit code 0 is `Completed`, any other code is `Error` with that
//!   code; a trap (a panic: `wasm32-wasi` aborts on panic) is `Error` with a
//!   non-zero code and the trap message; growing memory past the container's
//!   memory limit is `OOMKilled`.
//!
//! # Example: an HTTP function
//!
//! ```no_run
//! use sdk::{Request, Response};
//!
//! fn main() {
//!     sdk::serve(|req: Request| {
//!         sdk::info!("request", method = req.method, path = req.path);
//!         Response::text(200, format!("hello from skiff: {} {}\n", req.method, req.path))
//!     })
//! }
//! ```
//!
//! # Example: a long-running module
//!
//! ```no_run
//! use std::time::Duration;
//!
//! fn main() {
//!     let id = sdk::env_or("SENSOR_ID", "sensor");
//!     let mut n = 0u64;
//!     sdk::run_until_shutdown(Duration::from_secs(5), || {
//!         n += 1;
//!         sdk::info!("reading", sensor = id, seq = n);
//!     });
//!     sdk::info!("stopped", readings = n);
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A guest is a program: its examples show `main` on purpose.
#![allow(clippy::needless_doctest_main)]

pub mod config;
pub mod http;
pub mod log;
pub mod shutdown;

pub use config::{
    config_dir, config_parse_or, config_value, env, env_or, env_parse_or, read_config_bytes,
    read_config_file, ConfigError,
};
pub use http::{serve, Request, RequestError, Response, ResponseError};
pub use log::Level;
pub use shutdown::{run_until_shutdown, shutdown_requested, Shutdown};
