//! `skiff image push`: a `.wasm` file packaged as a Wasm OCI artifact, or
//! an image from an OCI image layout (a multi-platform index included).
//!
//! The artifact follows the CNCF Wasm OCI layout: a config of media type
//! `application/vnd.wasm.config.v0+json` saying `architecture: wasm` and
//! `os: wasip1` (or `wasip2` for a component), and one `application/wasm`
//! layer holding the file unchanged. The manifest is serialized here, so
//! the digest returned is the digest of the exact bytes pushed.

use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderValue;
use oci_client::RegistryOperation;
use serde_json::json;

use super::auth::{self, RegistryAuth};
use super::manifest::{Descriptor, Document, Manifest, OCI_MANIFEST, REF_NAME};
use super::pull::{classify_error, registry_client};
use super::reference::{self, Ref};
use super::{digest, ImageError, PullProgress, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};

/// Pieces the layer is streamed in, so progress moves while it uploads.
const CHUNK: usize = 256 * 1024;

/// The config and manifest of a Wasm artifact for `wasm`, as
/// `(config bytes, manifest bytes)`.
pub(crate) fn wasm_artifact(wasm: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ImageError> {
    if !wasm.starts_with(b"\0asm") || wasm.len() < 8 {
        return Err(ImageError::Invalid(
            "not a WebAssembly binary (it does not start with \\0asm and a version)".into(),
        ));
    }
    let component = wasm[4..8] == [0x0d, 0x00, 0x01, 0x00];
    let layer_digest = digest::of(wasm);
    let config = json!({
        "architecture": "wasm",
        "os": if component { "wasip2" } else { "wasip1" },
        "layerDigests": [layer_digest],
        "component": component,
    });
    let config = encode(&config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: WASM_CONFIG_MEDIA_TYPE.to_string(),
            digest: digest::of(&config),
            size: config.len() as u64,
            ..Default::default()
        },
        layers: vec![Descriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.to_string(),
            digest: layer_digest,
            size: wasm.len() as u64,
            ..Default::default()
        }],
    };
    let manifest = encode(&manifest)?;
    Ok((config, manifest))
}

fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(value)
        .map_err(|e| ImageError::Invalid(format!("cannot encode the artifact: {e}")))
}

/// Packages `file` as a Wasm OCI artifact and pushes it as `reference`.
/// `insecure` allows plain http to that registry. Returns the manifest
/// digest.
pub async fn push_wasm(
    file: &Path,
    reference: &str,
    insecure: bool,
    auths: &[RegistryAuth],
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<String, ImageError> {
    let wasm = tokio::fs::read(file)
        .await
        .map_err(|e| ImageError::io(file, e))?;
    let (config, manifest) = wasm_artifact(&wasm)
        .map_err(|e| ImageError::Invalid(format!("{}: {e}", file.display())))?;
    let (r, client) = push_client(reference, insecure, auths).await?;
    let layer_digest = digest::of(&wasm);
    let config_digest = digest::of(&config);
    progress(PullProgress::Resolved {
        digest: digest::of(&manifest),
        total: (wasm.len() + config.len()) as u64,
    });
    push_blob(&client, &r, Bytes::from(wasm), &layer_digest, progress).await?;
    push_blob(&client, &r, Bytes::from(config), &config_digest, progress).await?;
    let content_type = HeaderValue::from_static(OCI_MANIFEST);
    client
        .push_manifest_raw(&r.oci, manifest.clone(), content_type)
        .await
        .map_err(|e| classify_error(e, &r))?;
    Ok(digest::of(&manifest))
}

/// Pushes the image an OCI image layout directory holds as `reference`:
/// every blob, the manifest(s), and an index with its platform manifests
/// when the image is multi-platform. `name` picks the `index.json` entry
/// by its `org.opencontainers.image.ref.name` when the layout holds more
/// than one. Returns the digest of the top manifest or index.
pub async fn push_layout(
    dir: &Path,
    name: Option<&str>,
    reference: &str,
    insecure: bool,
    auths: &[RegistryAuth],
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<String, ImageError> {
    let index_bytes = read_layout_blob_path(&dir.join("index.json"), dir)?;
    let Document::Index(index) = Document::parse(&index_bytes, None, "the layout's index.json")?
    else {
        return Err(ImageError::Invalid(format!(
            "{}: index.json is a manifest, not an index",
            dir.display()
        )));
    };
    let entry = match (name, index.manifests.as_slice()) {
        (None, [only]) => only,
        (None, _) => {
            return Err(ImageError::Invalid(format!(
                "{} holds {} images: name one with --name ({})",
                dir.display(),
                index.manifests.len(),
                names(&index.manifests)
            )))
        }
        (Some(n), entries) => entries
            .iter()
            .find(|e| e.annotations.get(REF_NAME).map(String::as_str) == Some(n))
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "{} has no image named {n:?} ({})",
                    dir.display(),
                    names(entries)
                ))
            })?,
    };
    let (r, client) = push_client(reference, insecure, auths).await?;
    progress(PullProgress::Resolved {
        digest: entry.digest.clone(),
        total: 0,
    });
    push_document(&client, &r, dir, entry, true, progress).await?;
    Ok(entry.digest.clone())
}

fn names(entries: &[Descriptor]) -> String {
    let list: Vec<&str> = entries
        .iter()
        .map(|e| {
            e.annotations
                .get(REF_NAME)
                .map_or(e.digest.as_str(), String::as_str)
        })
        .collect();
    list.join(", ")
}

/// A layout blob, verified against its digest.
fn read_layout_blob(dir: &Path, d: &str) -> Result<Vec<u8>, ImageError> {
    let bytes = read_layout_blob_path(&dir.join("blobs/sha256").join(digest::hex_of(d)?), dir)?;
    let actual = digest::of(&bytes);
    if actual != d {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {d} of the layout {}", dir.display()),
            expected: d.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

fn read_layout_blob_path(path: &Path, dir: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ImageError::Invalid(format!(
            "{} is not a complete OCI image layout: {} is missing",
            dir.display(),
            path.strip_prefix(dir).unwrap_or(path).display()
        )),
        _ => ImageError::io(path, e),
    })
}

/// Pushes a manifest or index and everything it refers to; the top
/// document goes under the reference's tag, the others by digest.
fn push_document<'a>(
    client: &'a oci_client::Client,
    r: &'a Ref,
    dir: &'a Path,
    desc: &'a Descriptor,
    top: bool,
    progress: &'a (dyn Fn(PullProgress) + Sync),
) -> Pin<Box<dyn std::future::Future<Output = Result<(), ImageError>> + Send + 'a>> {
    Box::pin(async move {
        let bytes = read_layout_blob(dir, &desc.digest)?;
        let what = format!("manifest {}", desc.digest);
        match Document::parse(&bytes, Some(&desc.media_type), &what)? {
            Document::Manifest(m) => {
                for d in std::iter::once(&m.config).chain(&m.layers) {
                    let blob = read_layout_blob(dir, &d.digest)?;
                    push_blob(client, r, Bytes::from(blob), &d.digest, progress).await?;
                }
            }
            Document::Index(index) => {
                for child in &index.manifests {
                    push_document(client, r, dir, child, false, progress).await?;
                }
            }
        }
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| desc.media_type.clone());
        let content_type = HeaderValue::from_str(&media_type).map_err(|_| {
            ImageError::Invalid(format!("{what} has a bad media type {media_type:?}"))
        })?;
        let target = if top {
            r.oci.clone()
        } else {
            r.at(&desc.digest)
        };
        client
            .push_manifest_raw(&target, bytes, content_type)
            .await
            .map_err(|e| classify_error(e, r))?;
        Ok(())
    })
}

/// A client authenticated to push to `reference`'s repository (plain
/// http when `insecure`).
async fn push_client(
    reference: &str,
    insecure: bool,
    auths: &[RegistryAuth],
) -> Result<(Ref, oci_client::Client), ImageError> {
    let r = reference::parse(reference)?;
    let insecure: Vec<String> = if insecure {
        vec![r.registry.clone()]
    } else {
        Vec::new()
    };
    let client = registry_client(&insecure)?;
    let auth = auth::for_registry(auths, &r.registry);
    client
        .auth(&r.oci, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| classify_error(e, &r))?;
    Ok((r, client))
}

/// Uploads one blob unless the registry has it, reporting bytes as they go.
async fn push_blob(
    client: &oci_client::Client,
    r: &Ref,
    data: Bytes,
    blob_digest: &str,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<(), ImageError> {
    let size = data.len() as u64;
    if client
        .blob_exists(&r.oci, blob_digest)
        .await
        .unwrap_or(false)
    {
        progress(PullProgress::Cached {
            digest: blob_digest.to_string(),
            size,
        });
        return Ok(());
    }
    // The upload stream must be 'static, so it reports through a channel
    // that this function drains while the upload runs.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(CHUNK)
        .map(|at| data.slice(at..(at + CHUNK).min(data.len())))
        .collect();
    let stream = futures::stream::iter(chunks).map(move |c| {
        let _ = tx.send(c.len() as u64);
        Ok::<_, oci_client::errors::OciDistributionError>(c)
    });
    let upload = client.push_blob_stream(&r.oci, stream, blob_digest, Some(size));
    let report = async {
        let mut done = 0;
        while let Some(n) = rx.recv().await {
            done += n;
            progress(PullProgress::Blob {
                digest: blob_digest.to_string(),
                done,
                size,
            });
        }
    };
    let (result, ()) = futures::join!(upload, report);
    result.map(|_| ()).map_err(|e| classify_error(e, r))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;
    use crate::images::manifest::Document;

    #[test]
    fn artifact_is_a_wasm_oci_artifact() {
        let module = b"\0asm\x01\0\0\0";
        let (config, manifest) = wasm_artifact(module).unwrap();
        let c: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(c["architecture"], "wasm");
        assert_eq!(c["os"], "wasip1");
        let Document::Manifest(m) = Document::parse(&manifest, None, "t").unwrap() else {
            panic!()
        };
        assert_eq!(m.config.media_type, WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(m.config.digest, digest::of(&config));
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].media_type, "application/wasm");
        assert_eq!(m.layers[0].digest, digest::of(module));
        assert_eq!(m.layers[0].size, 8);
    }

    #[test]
    fn components_are_wasip2() {
        let (config, _) = wasm_artifact(b"\0asm\x0d\0\x01\0").unwrap();
        let c: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(c["os"], "wasip2");
    }

    #[test]
    fn non_wasm_files_are_refused() {
        let err = wasm_artifact(b"#!/bin/sh\necho hi\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a WebAssembly binary"), "{err}");
        assert!(wasm_artifact(b"\0asm").is_err(), "too short for a version");
    }
}
