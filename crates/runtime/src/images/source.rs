//! The image store as the node agent's [`ImageSource`].
//!
//! The agent speaks Kubernetes (`imagePullPolicy` spelled as in the pod,
//! pull secrets as `.dockerconfigjson` documents); the store speaks OCI.
//! This is the translation, and the place where the node's platform is
//! fixed: an index is resolved for the architecture the node reports.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{
    auths_from_dockerconfigjson, ImageConfig, ImageKind, ImageStore, Platform, PullPolicy,
};
use crate::agent::{ImageSource, LinuxImage, PulledImage};

/// The node's image store, for the agent.
pub struct StoreSource {
    store: Arc<ImageStore>,
    platform: Platform,
}

impl StoreSource {
    /// Pull for `platform` (the node's os/architecture, as it reports
    /// them: `--arch` included).
    pub fn new(store: Arc<ImageStore>, platform: Platform) -> StoreSource {
        StoreSource { store, platform }
    }
}

impl ImageSource for StoreSource {
    fn present(&self, image: &str) -> bool {
        super::reference::parse(image)
            .map(|r| self.store.lookup(&r.whole).is_some())
            .unwrap_or(false)
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
        pull_secrets: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<PulledImage, String>> {
        Box::pin(async move {
            let policy = PullPolicy::parse(policy).ok_or_else(|| {
                format!("unknown imagePullPolicy {policy:?}: use Always, IfNotPresent or Never")
            })?;
            let mut auth = Vec::new();
            for secret in &pull_secrets {
                // A malformed secret is the pod's problem to fix, but the
                // others may still hold the right credentials.
                match auths_from_dockerconfigjson(secret) {
                    Ok(a) => auth.extend(a),
                    Err(e) => tracing::warn!(image, "skipping a pull secret: {e}"),
                }
            }
            let pulled = self
                .store
                .ensure(image, policy, &auth, &self.platform, &|_| {})
                .await
                .map_err(|e| e.to_string())?;
            Ok(match pulled.kind {
                ImageKind::Wasm { module, .. } => PulledImage {
                    digest: pulled.digest,
                    module_path: module,
                    is_wasm: true,
                    linux: None,
                },
                ImageKind::Linux { layers, config } => PulledImage {
                    digest: pulled.digest,
                    module_path: PathBuf::new(),
                    is_wasm: false,
                    linux: Some(LinuxImage {
                        layers,
                        config: ImageConfig::from_config(&config),
                    }),
                },
            })
        })
    }
}
