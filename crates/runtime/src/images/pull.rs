//! Pulling images from registries, honouring `imagePullPolicy`.
//!
//! A pull resolves the reference to a manifest (through an image index
//! for the node's platform when there is one), downloads the config and
//! layers the store lacks, each verified as it streams in, then stores
//! the manifest last: a manifest in the store means its blobs arrived.

use std::sync::Once;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::RegistryOperation;

use super::auth::{self, RegistryAuth};
use super::manifest::{self, Descriptor, Document, Manifest};
use super::reference::{self, Ref};
use super::{platform, Image, ImageError, ImageStore, Platform, PullPolicy, PullProgress};

impl ImageStore {
    /// The image `reference` names, present and verified in the store,
    /// pulled first when `policy` says so. `auth` comes from the pod's
    /// `imagePullSecrets`; `platform` is the node's.
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        auth: &[RegistryAuth],
        platform: &Platform,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<Image, ImageError> {
        let r = reference::parse(reference)?;
        match policy {
            PullPolicy::Never => self
                .local(&r)?
                .ok_or(ImageError::NotPresent { reference: r.whole }),
            PullPolicy::IfNotPresent => match self.local(&r) {
                Ok(Some(image)) => Ok(image),
                Ok(None) => self.pull(&r, auth, platform, progress).await,
                // The corrupted blob is gone now: fetch it again.
                Err(e @ ImageError::DigestMismatch { .. }) => {
                    tracing::warn!(reference = %r.whole, "pulling again: {e}");
                    self.pull(&r, auth, platform, progress).await
                }
                Err(e) => Err(e),
            },
            PullPolicy::Always => self.pull(&r, auth, platform, progress).await,
        }
    }

    /// The image from the store alone: `None` when it (or one of its
    /// blobs) is missing.
    fn local(&self, r: &Ref) -> Result<Option<Image>, ImageError> {
        let digest = match (self.lookup(&r.whole), r.oci.digest()) {
            (Some(d), _) => d,
            (None, Some(d)) => d.to_string(),
            (None, None) => return Ok(None),
        };
        if !self.has_blob(&digest) {
            return Ok(None);
        }
        match self.load(&r.whole, &digest) {
            Ok(image) => Ok(Some(image)),
            Err(ImageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn pull(
        &self,
        r: &Ref,
        auths: &[RegistryAuth],
        platform: &Platform,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<Image, ImageError> {
        let client = registry_client(&self.config.insecure_registries)?;
        let auth = auth::for_registry(auths, &r.registry);
        client
            .auth(&r.oci, &auth, RegistryOperation::Pull)
            .await
            .map_err(|e| classify_error(e, r))?;
        let (manifest, digest, bytes) = resolve(&client, r, &auth, platform).await?;
        let blobs: Vec<&Descriptor> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .collect();
        let total = blobs.iter().map(|d| d.size).sum();
        progress(PullProgress::Resolved {
            digest: digest.clone(),
            total,
        });
        for desc in blobs {
            if self.has_blob(&desc.digest) {
                progress(PullProgress::Cached {
                    digest: desc.digest.clone(),
                    size: desc.size,
                });
            } else {
                self.fetch_blob(&client, r, desc, progress).await?;
            }
        }
        self.write_blob(&digest, &bytes)?;
        self.set_ref(&r.whole, &digest)?;
        self.load(&r.whole, &digest)
    }

    async fn fetch_blob(
        &self,
        client: &oci_client::Client,
        r: &Ref,
        desc: &Descriptor,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<(), ImageError> {
        let mut sized = client
            .pull_blob_stream(&r.oci, desc.digest.as_str())
            .await
            .map_err(|e| classify_error(e, r))?;
        let mut writer = self.begin_blob(&desc.digest)?;
        let mut done = 0u64;
        while let Some(chunk) = sized.stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // oci-client's own verification fails the stream's end; our
                // hash of what arrived names both digests.
                Err(_) if done >= desc.size => return writer.commit().map(|_| ()),
                Err(e) => {
                    return Err(ImageError::Unreachable {
                        reference: r.whole.clone(),
                        registry: r.registry.clone(),
                        detail: format!("download of {} broke off: {e}", desc.digest),
                    })
                }
            };
            done += chunk.len() as u64;
            if done > desc.size {
                return Err(ImageError::Invalid(format!(
                    "the registry sent more than the {} bytes of {}",
                    desc.size, desc.digest
                )));
            }
            writer.write(&chunk)?;
            progress(PullProgress::Blob {
                digest: desc.digest.clone(),
                done,
                size: desc.size,
            });
        }
        writer.commit().map(|_| ())
    }
}

/// What an image can run on, read from its registry without pulling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePlatforms {
    /// A Wasm artifact, or an index with a Wasm entry: runs anywhere a Wasm
    /// handler does.
    Wasm,
    /// A native image for these platforms.
    Native(Vec<Platform>),
}

/// The largest image config read to learn an image's platform.
const MAX_CONFIG: u64 = 4 << 20;

/// The platforms `reference` provides, from its manifest (an index's
/// entries, or a single manifest's config `os`/`architecture`). This is
/// what the scheduler asks so that a Linux image only lands on nodes it
/// was built for.
pub async fn image_platforms(
    reference: &str,
    auths: &[RegistryAuth],
    insecure: &[String],
) -> Result<ImagePlatforms, ImageError> {
    let r = reference::parse(reference)?;
    let client = registry_client(insecure)?;
    let auth = auth::for_registry(auths, &r.registry);
    client
        .auth(&r.oci, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| classify_error(e, &r))?;
    let (body, _) = client
        .pull_manifest_raw(&r.oci, &auth, manifest::ACCEPTED)
        .await
        .map_err(|e| classify_error(e, &r))?;
    let what = format!("the manifest of {}", r.whole);
    let manifest = match Document::parse(&body, None, &what)? {
        Document::Index(index) => {
            let mut out = Vec::new();
            for p in index.manifests.iter().filter_map(|e| e.platform.as_ref()) {
                if p.architecture == "wasm" {
                    return Ok(ImagePlatforms::Wasm);
                }
                // Attestation manifests say unknown/unknown.
                if p.os.is_empty() || p.os == "unknown" {
                    continue;
                }
                let platform = Platform {
                    os: p.os.clone(),
                    architecture: p.architecture.clone(),
                    variant: p.variant.clone(),
                };
                if !out.contains(&platform) {
                    out.push(platform);
                }
            }
            return Ok(ImagePlatforms::Native(out));
        }
        Document::Manifest(m) => m,
    };
    if super::classify::declared_wasm(&manifest) {
        return Ok(ImagePlatforms::Wasm);
    }
    if manifest.config.size > MAX_CONFIG {
        return Err(ImageError::Invalid(format!(
            "the config of {} is {} bytes, more than the {MAX_CONFIG} skiff reads",
            r.whole, manifest.config.size
        )));
    }
    let mut config = Vec::with_capacity(usize::try_from(manifest.config.size).unwrap_or(0));
    client
        .pull_blob(&r.oci, manifest.config.digest.as_str(), &mut config)
        .await
        .map_err(|e| classify_error(e, &r))?;
    let config: serde_json::Value = serde_json::from_slice(&config)
        .map_err(|e| ImageError::Invalid(format!("the config of {} is not JSON: {e}", r.whole)))?;
    let field = |k: &str| config[k].as_str().unwrap_or_default().to_string();
    if field("architecture") == "wasm" {
        return Ok(ImagePlatforms::Wasm);
    }
    if field("architecture").is_empty() {
        return Ok(ImagePlatforms::Native(Vec::new()));
    }
    Ok(ImagePlatforms::Native(vec![Platform {
        os: if field("os").is_empty() {
            "linux".into()
        } else {
            field("os")
        },
        architecture: field("architecture"),
        variant: config["variant"].as_str().map(str::to_string),
    }]))
}

/// The manifest for this node: `(manifest, digest, raw bytes)`.
async fn resolve(
    client: &oci_client::Client,
    r: &Ref,
    auth: &oci_client::secrets::RegistryAuth,
    platform: &Platform,
) -> Result<(Manifest, String, bytes::Bytes), ImageError> {
    let (body, digest) = client
        .pull_manifest_raw(&r.oci, auth, manifest::ACCEPTED)
        .await
        .map_err(|e| classify_error(e, r))?;
    let what = format!("the manifest of {}", r.whole);
    let index = match Document::parse(&body, None, &what)? {
        Document::Manifest(m) => return Ok((m, digest, body)),
        Document::Index(index) => index,
    };
    let entry = platform::resolve(&index, platform, &r.whole)?;
    let (body, child) = client
        .pull_manifest_raw(&r.at(&entry.digest), auth, manifest::ACCEPTED)
        .await
        .map_err(|e| classify_error(e, r))?;
    if child != entry.digest {
        return Err(ImageError::DigestMismatch {
            what: format!("the {} manifest of {}", platform, r.whole),
            expected: entry.digest.clone(),
            actual: child,
        });
    }
    match Document::parse(&body, Some(&entry.media_type), &what)? {
        Document::Manifest(m) => Ok((m, child, body)),
        Document::Index(_) => Err(ImageError::Invalid(format!(
            "{} nests an image index inside an image index",
            r.whole
        ))),
    }
}

/// An `oci-client` client speaking plain http to the insecure registries.
pub(crate) fn registry_client(insecure: &[String]) -> Result<oci_client::Client, ImageError> {
    install_crypto();
    let protocol = if insecure.is_empty() {
        ClientProtocol::Https
    } else {
        ClientProtocol::HttpsExcept(insecure.to_vec())
    };
    let config = ClientConfig {
        protocol,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    oci_client::Client::try_from(config)
        .map_err(|e| ImageError::Invalid(format!("cannot set up the registry client: {e}")))
}

/// oci-client is built without a TLS crypto provider; skiff uses ring
/// everywhere. Another part of the process may have installed it first.
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Turns an `oci-client` error into one a pod's status can show.
pub(crate) fn classify_error(e: OciDistributionError, r: &Ref) -> ImageError {
    let reference = r.whole.clone();
    let registry = r.registry.clone();
    match e {
        OciDistributionError::RequestError(e) => {
            let mut detail = error_chain(&e);
            // TLS spoken to a plain-http registry fails with this rustls message.
            if detail.contains("InvalidContentType") {
                detail.push_str(
                    " (the registry speaks plain http: list it with --insecure-registry)",
                );
            }
            ImageError::Unreachable {
                reference,
                registry,
                detail,
            }
        }
        OciDistributionError::UnauthorizedError { url } => ImageError::Unauthorized {
            reference,
            registry,
            detail: format!("401 from {url}"),
        },
        OciDistributionError::AuthenticationFailure(detail) => ImageError::Unauthorized {
            reference,
            registry,
            detail,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => ImageError::NotFound { reference },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let has = |c: OciErrorCode| codes.contains(&&c);
            if has(OciErrorCode::ManifestUnknown)
                || has(OciErrorCode::NameUnknown)
                || has(OciErrorCode::NotFound)
            {
                ImageError::NotFound { reference }
            } else if has(OciErrorCode::Unauthorized) || has(OciErrorCode::Denied) {
                ImageError::Unauthorized {
                    reference,
                    registry,
                    detail: envelope.to_string(),
                }
            } else {
                ImageError::Registry {
                    reference,
                    detail: envelope.to_string(),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => ImageError::NotFound { reference },
        OciDistributionError::ServerError {
            code: code @ (401 | 403),
            url,
            ..
        } => ImageError::Unauthorized {
            reference,
            registry,
            detail: format!("{code} from {url}"),
        },
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => ImageError::DigestMismatch {
            what: format!("content of {reference}"),
            expected,
            actual,
        },
        other => ImageError::Registry {
            reference,
            detail: other.to_string(),
        },
    }
}

/// reqwest hides the useful part ("Connection refused") in its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
