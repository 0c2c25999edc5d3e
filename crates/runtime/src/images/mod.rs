//! OCI images and Wasm artifacts for the node.
//!
//! An [`ImageStore`] lives in one directory (skiff uses `DATA_DIR/images`):
//! content-addressed blobs under `blobs/sha256/<hex>`, each verified against
//! its digest when written and again when read, and `index.json` mapping the
//! references pods name to manifest digests, so a restarted node still knows
//! what it has. Every file is written to a temporary name and renamed, so a
//! crash never leaves a half-written blob under a real digest.
//!
//! [`ImageStore::ensure`] honours a pod's `imagePullPolicy`, pulls through
//! `oci-client` (plain http only for registries listed as insecure),
//! resolves image indexes for the node's platform (or a `wasm` platform),
//! and classifies the result once into an [`ImageKind`]: Wasm (a module or
//! component file on disk) or Linux (layers and config), from OCI metadata
//! first and magic bytes second. [`ImageStore::import`] loads an OCI layout
//! for air-gapped nodes and [`push_wasm`] packages a `.wasm` file as a Wasm
//! OCI artifact.
//!
//! Errors are worded for the pod's `ErrImagePull` / `ImagePullBackOff`
//! messages: they name the registry, the reference, or both digests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runtime::images::ImageError> {
//! use runtime::images::*;
//! let store = ImageStore::open("/var/lib/skiff/images".as_ref(), StoreConfig::default())?;
//! let image = store
//!     .ensure("127.0.0.1:5000/hello:v1", PullPolicy::IfNotPresent, &[], &Platform::node(), &|_| {})
//!     .await?;
//! let module = require_wasm(&image)?;
//! # let _ = module; Ok(()) }
//! ```

mod auth;
mod classify;
mod digest;
mod import;
pub mod layers;
mod manifest;
mod platform;
mod pull;
mod push;
mod reference;
mod source;
mod store;
pub mod unpack;
#[cfg(test)]
mod unpack_tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use auth::{auths_from_dockerconfigjson, RegistryAuth};
pub use platform::Platform;
pub use pull::{image_platforms, ImagePlatforms};
pub use push::{push_layout, push_wasm};
pub use source::StoreSource;
pub use store::{ImageStore, StoreConfig};

/// The store's directory under a node's data directory
/// (`DATA_DIR/images`), shared by the agent and `skiff image import`.
pub const STORE_DIR: &str = "images";

/// The media type of a Wasm OCI artifact's config (CNCF Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The plain Wasm layer media type `skiff image push` writes.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Which images are fetched from the registry: a container's
/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference against the registry every time (the blobs
    /// already present are not downloaded again).
    Always,
    /// Use the local image when the store has it; pull otherwise.
    IfNotPresent,
    /// Never contact a registry; fail when the store lacks the image.
    Never,
}

impl PullPolicy {
    /// Parses Kubernetes' spelling (`Always`, `IfNotPresent`, `Never`).
    pub fn parse(s: &str) -> Option<PullPolicy> {
        match s {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// Progress of a pull or push, in bytes, for the CLI and for Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// The manifest is known: `total` bytes of config and layers belong to it.
    Resolved { digest: String, total: u64 },
    /// `done` of `size` bytes of one blob have been transferred.
    Blob {
        digest: String,
        done: u64,
        size: u64,
    },
    /// A blob was already where it is needed (in the store or the registry).
    Cached { digest: String, size: u64 },
}

/// One layer of an image, verified and present in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The blob in the store.
    pub path: PathBuf,
}

/// What an image is, decided once when it is stored (see `classify`).
#[derive(Debug, Clone, PartialEq)]
pub enum ImageKind {
    /// A Wasm module or component, ready for the wasmtime handler.
    Wasm {
        /// The `.wasm` file, content-addressed in the store.
        module: PathBuf,
        /// A component (WASI preview 2) rather than a core module.
        component: bool,
    },
    /// An ordinary Linux container image.
    Linux { layers: Vec<Layer>, config: Value },
}

/// What a Linux image's config says about running it (`config.config` of
/// the OCI image config): the defaults a pod's container falls back on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, `KEY=value`.
    pub env: Vec<String>,
    /// `WorkingDir`; empty when unset.
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group`; empty when unset.
    pub user: String,
}

impl ImageConfig {
    /// Read from an image config document; missing fields stay empty.
    pub fn from_config(config: &Value) -> ImageConfig {
        let c = &config["config"];
        let list = |k: &str| -> Vec<String> {
            c[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        ImageConfig {
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            env: list("Env"),
            working_dir: text("WorkingDir"),
            user: text("User"),
        }
    }
}

/// An image present in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The reference as normalized (`docker.io/library/x:latest`).
    pub reference: String,
    /// The manifest digest (`sha256:…`), the image's identity (`imageID`).
    pub digest: String,
    pub kind: ImageKind,
    /// os/architecture from the image config, when it says.
    pub platform: Option<Platform>,
    /// Bytes of config and layers.
    pub size: u64,
}

/// The Wasm file of an image, or [`ImageError::NotWasm`] for a pod whose
/// RuntimeClass handler runs only Wasm.
pub fn require_wasm(image: &Image) -> Result<&Path, ImageError> {
    match &image.kind {
        ImageKind::Wasm { module, .. } => Ok(module),
        ImageKind::Linux { layers, config } => Err(ImageError::NotWasm {
            reference: image.reference.clone(),
            detail: describe_linux(layers, config),
        }),
    }
}

fn describe_linux(layers: &[Layer], config: &Value) -> String {
    let os = config["os"].as_str().unwrap_or("unknown");
    let arch = config["architecture"].as_str().unwrap_or("unknown");
    format!(
        "it is a {os}/{arch} container image with {} layer(s) and no .wasm entrypoint",
        layers.len()
    )
}

/// Why an image could not be had. Messages are shown as a pod's
/// ErrImagePull / ImagePullBackOff reason.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("failed to pull image {reference:?}: registry {registry} is unreachable: {detail}")]
    Unreachable {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("failed to pull image {reference:?}: manifest unknown: {reference} not found in the registry")]
    NotFound { reference: String },
    #[error("failed to pull image {reference:?}: unauthorized: registry {registry} refused access ({detail}); check the pod's imagePullSecrets")]
    Unauthorized {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("no matching manifest for {wanted} in the manifest list entries of {reference}: it offers {offered}")]
    NoPlatformMatch {
        reference: String,
        wanted: String,
        offered: String,
    },
    #[error("image {reference:?} is not a Wasm image: {detail}")]
    NotWasm { reference: String, detail: String },
    #[error("container image {reference:?} is not present with pull policy of Never")]
    NotPresent { reference: String },
    #[error("failed to pull image {reference:?}: {detail}")]
    Registry { reference: String, detail: String },
    #[error("invalid image content: {0}")]
    Invalid(String),
    #[error("invalid dockerconfigjson: {0}")]
    DockerConfig(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        })
    }
}

#[cfg(test)]
mod tests;
