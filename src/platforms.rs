//! The scheduler's view of image platforms, read from registries with
//! skiff's image client (see `controllers::scheduler::ImageResolver`).
//!
//! Pull secrets are the pod's `imagePullSecrets`, read from the API the
//! way the node agent reads them; registries listed with
//! `--insecure-registry` are spoken to over plain http.

use std::future::Future;
use std::pin::Pin;

use controllers::scheduler::cache::ImageTarget;
use controllers::scheduler::ImageResolver;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use runtime::images::{self, ImagePlatforms, RegistryAuth};

/// Looks images up in their registries for the scheduler.
pub struct RegistryPlatforms {
    pub client: kube::Client,
    pub insecure_registries: Vec<String>,
}

impl ImageResolver for RegistryPlatforms {
    fn resolve(
        &self,
        image: &str,
        namespace: &str,
        pull_secrets: &[String],
    ) -> Pin<Box<dyn Future<Output = Result<ImageTarget, String>> + Send>> {
        let client = self.client.clone();
        let insecure = self.insecure_registries.clone();
        let image = image.to_string();
        let namespace = namespace.to_string();
        let secrets = pull_secrets.to_vec();
        Box::pin(async move {
            let auths = read_auths(client, &namespace, &secrets).await;
            match images::image_platforms(&image, &auths, &insecure).await {
                Ok(ImagePlatforms::Wasm) => Ok(ImageTarget::Wasm),
                Ok(ImagePlatforms::Native(ps)) if ps.is_empty() => Ok(ImageTarget::Unknown),
                Ok(ImagePlatforms::Native(ps)) => Ok(ImageTarget::Platforms(
                    ps.into_iter().map(|p| (p.os, p.architecture)).collect(),
                )),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Credentials from the named `kubernetes.io/dockerconfigjson` Secrets;
/// a missing or malformed one is skipped (the node reports it when it pulls).
async fn read_auths(client: kube::Client, namespace: &str, names: &[String]) -> Vec<RegistryAuth> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let mut out = Vec::new();
    for name in names {
        let Ok(Some(secret)) = api.get_opt(name).await else {
            continue;
        };
        let Some(bytes) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson").or_else(|| d.get(".dockercfg")))
        else {
            continue;
        };
        if let Ok(auths) = images::auths_from_dockerconfigjson(&bytes.0) {
            out.extend(auths);
        }
    }
    out
}
