//! Deciding once whether an image is Wasm or Linux.
//!
//! OCI metadata speaks first: a Wasm layer media type, the Wasm config
//! media type, or config `architecture: wasm`. Then magic bytes: a
//! single-layer image whose layer is a raw module (`\0asm`) or a tar (plain
//! or gzip) holding one `.wasm` entrypoint is Wasm too; that file is
//! extracted once into the store, content-addressed. Everything else is a
//! Linux image. The answer is kept in [`ImageKind`] so no later code asks
//! again.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::manifest::Manifest;
use super::{ImageError, ImageKind, Layer, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};

/// Layer media types that hold a Wasm module or component as-is.
const WASM_LAYERS: &[&str] = &[
    WASM_LAYER_MEDIA_TYPE,
    "application/vnd.wasm.content.layer.v1+wasm",
    COMPONENT_LAYER,
];
const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// Config media types of Wasm artifacts (v0 is the CNCF layout, v1 the one
/// `oci-client`'s Wasm helpers write).
const WASM_CONFIGS: &[&str] = &[
    WASM_CONFIG_MEDIA_TYPE,
    "application/vnd.wasm.config.v1+json",
];

/// An extracted `.wasm` file bigger than this is refused: a layer is
/// untrusted input and may be a decompression bomb.
const MAX_EXTRACTED: u64 = 1 << 30;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Core modules are version 1; components use version 0x0d with layer 1.
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Where extracted Wasm files are kept (the store).
pub(crate) trait Blobs {
    /// The file previously extracted from `layer_digest`, if any.
    fn extracted(&self, layer_digest: &str) -> Result<Option<PathBuf>, ImageError>;
    /// Keeps `wasm`, extracted from `layer_digest`, and returns its path.
    fn store_extracted(&self, layer_digest: &str, wasm: &[u8]) -> Result<PathBuf, ImageError>;
}

/// Whether a manifest's media types alone say Wasm (a Wasm layer or
/// config media type), before any blob is read.
pub(crate) fn declared_wasm(manifest: &Manifest) -> bool {
    manifest
        .layers
        .iter()
        .any(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
        || WASM_CONFIGS.contains(&manifest.config.media_type.as_str())
}

/// Classifies a verified image. `layer_paths` are the layers' blobs, in
/// manifest order.
pub(crate) fn classify(
    manifest: &Manifest,
    config: &Value,
    layer_paths: &[PathBuf],
    blobs: &dyn Blobs,
) -> Result<ImageKind, ImageError> {
    if let Some(i) = manifest
        .layers
        .iter()
        .position(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
    {
        let module = layer_paths[i].clone();
        let component = manifest.layers[i].media_type == COMPONENT_LAYER || is_component(&module);
        return Ok(ImageKind::Wasm { module, component });
    }
    let says_wasm = WASM_CONFIGS.contains(&manifest.config.media_type.as_str())
        || config["architecture"] == "wasm";
    if says_wasm || manifest.layers.len() == 1 {
        if let Some(kind) = wasm_in_layers(manifest, config, layer_paths, blobs, says_wasm)? {
            return Ok(kind);
        }
    }
    if says_wasm {
        return Err(ImageError::Invalid(
            "the image says it is Wasm (config architecture or media type) but no layer holds a .wasm file".into(),
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(layer_paths)
        .map(|(d, p)| Layer {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            path: p.clone(),
        })
        .collect();
    Ok(ImageKind::Linux {
        layers,
        config: config.clone(),
    })
}

/// Looks for the module by content: a raw module layer, or a tar layer
/// with one `.wasm` entrypoint.
fn wasm_in_layers(
    manifest: &Manifest,
    config: &Value,
    layer_paths: &[PathBuf],
    blobs: &dyn Blobs,
    says_wasm: bool,
) -> Result<Option<ImageKind>, ImageError> {
    let entrypoint = config["config"]["Entrypoint"][0].as_str().map(normalize);
    for (layer, path) in manifest.layers.iter().zip(layer_paths) {
        if header(path)?.starts_with(WASM_MAGIC) {
            return Ok(Some(wasm_kind(path.clone())));
        }
        if let Some(p) = blobs.extracted(&layer.digest)? {
            return Ok(Some(wasm_kind(p)));
        }
        // Without metadata saying Wasm, only a file that is really a
        // module (magic bytes) makes an ordinary image a Wasm one.
        if let Some(bytes) = wasm_from_tar(path, entrypoint.as_deref(), !says_wasm)? {
            let p = blobs.store_extracted(&layer.digest, &bytes)?;
            return Ok(Some(wasm_kind(p)));
        }
    }
    Ok(None)
}

fn wasm_kind(module: PathBuf) -> ImageKind {
    let component = is_component(&module);
    ImageKind::Wasm { module, component }
}

fn normalize(p: &str) -> String {
    p.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

/// The first 8 bytes of a file (fewer if it is shorter).
fn header(path: &Path) -> Result<Vec<u8>, ImageError> {
    let mut f = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut buf = Vec::with_capacity(8);
    f.by_ref()
        .take(8)
        .read_to_end(&mut buf)
        .map_err(|e| ImageError::io(path, e))?;
    Ok(buf)
}

fn is_component(path: &Path) -> bool {
    header(path)
        .is_ok_and(|h| h.len() == 8 && &h[..4] == WASM_MAGIC && h[4..8] == COMPONENT_VERSION)
}

/// The `.wasm` file of a tar layer (gzip or not): the entrypoint when the
/// config names one, else the only `.wasm` file. `None` when the layer is
/// not a tar or has no single candidate.
fn wasm_from_tar(
    path: &Path,
    entrypoint: Option<&str>,
    need_magic: bool,
) -> Result<Option<Vec<u8>>, ImageError> {
    let gz = header(path)?.starts_with(&[0x1f, 0x8b]);
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else {
        return Ok(None);
    };
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in entries {
        // A layer that stops parsing as a tar is simply not one.
        let Ok(mut entry) = entry else {
            return Ok(None);
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = match entry.path() {
            Ok(p) => normalize(&p.to_string_lossy()),
            Err(_) => continue,
        };
        let wanted = match entrypoint {
            Some(ep) if ep.ends_with(".wasm") => name == ep,
            _ => name.ends_with(".wasm"),
        };
        if !wanted {
            continue;
        }
        if entry.size() > MAX_EXTRACTED {
            return Err(ImageError::Invalid(format!(
                "{name} in the image is larger than 1 GiB"
            )));
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_EXTRACTED)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::Invalid(format!("cannot read {name} from a layer: {e}")))?;
        found.push((name, bytes));
    }
    if found.len() != 1 {
        return Ok(None);
    }
    let (_, bytes) = found.remove(0);
    if need_magic && !bytes.starts_with(WASM_MAGIC) {
        return Ok(None);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::super::manifest::Descriptor;
    use super::*;

    /// A recording stand-in for the store.
    #[derive(Default)]
    struct Mem {
        dir: Option<tempfile::TempDir>,
        kept: RefCell<HashMap<String, PathBuf>>,
    }

    impl Blobs for Mem {
        fn extracted(&self, layer: &str) -> Result<Option<PathBuf>, ImageError> {
            Ok(self.kept.borrow().get(layer).cloned())
        }
        fn store_extracted(&self, layer: &str, wasm: &[u8]) -> Result<PathBuf, ImageError> {
            let p = self
                .dir
                .as_ref()
                .unwrap()
                .path()
                .join(format!("x{}", self.kept.borrow().len()));
            std::fs::write(&p, wasm).unwrap();
            self.kept.borrow_mut().insert(layer.into(), p.clone());
            Ok(p)
        }
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn desc(media_type: &str, n: u8) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{:064x}", n),
            size: 8,
            ..Default::default()
        }
    }

    fn manifest(config_type: &str, layers: &[&str]) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: None,
            config: desc(config_type, 99),
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, t)| desc(t, i as u8))
                .collect(),
        }
    }

    fn files(dir: &Path, contents: &[&[u8]]) -> Vec<PathBuf> {
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = dir.join(format!("layer{i}"));
                std::fs::write(&p, c).unwrap();
                p
            })
            .collect()
    }

    fn tar_of(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let raw = b.into_inner().unwrap();
        if !gzip {
            return raw;
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        enc.finish().unwrap()
    }

    fn mem() -> Mem {
        Mem {
            dir: Some(tempfile::tempdir().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn wasm_artifact_by_layer_media_type() {
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), &[MODULE]);
        let man = manifest(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        let kind = classify(&man, &Value::Null, &paths, &m).unwrap();
        assert_eq!(
            kind,
            ImageKind::Wasm {
                module: paths[0].clone(),
                component: false
            }
        );
    }

    #[test]
    fn component_by_media_type_or_by_version_bytes() {
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), &[MODULE]);
        let man = manifest(
            "application/vnd.oci.image.config.v1+json",
            &[COMPONENT_LAYER],
        );
        assert!(matches!(
            classify(&man, &Value::Null, &paths, &m).unwrap(),
            ImageKind::Wasm {
                component: true,
                ..
            }
        ));
        let paths = files(dir.path(), &[COMPONENT]);
        let man = manifest("x", &["application/vnd.wasm.content.layer.v1+wasm"]);
        assert!(matches!(
            classify(&man, &Value::Null, &paths, &m).unwrap(),
            ImageKind::Wasm {
                component: true,
                ..
            }
        ));
    }

    #[test]
    fn ordinary_single_layer_image_with_a_wasm_entrypoint_is_wasm() {
        // What `docker buildx build --platform wasi/wasm` of a scratch image
        // with `COPY app.wasm /` and `ENTRYPOINT ["/app.wasm"]` produces.
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[("etc/hosts", b"x"), ("app.wasm", MODULE)], true);
        let paths = files(dir.path(), &[&layer]);
        let man = manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar+gzip"],
        );
        let config = serde_json::json!({"os": "linux", "architecture": "amd64", "config": {"Entrypoint": ["/app.wasm"]}});
        let ImageKind::Wasm { module, component } = classify(&man, &config, &paths, &m).unwrap()
        else {
            panic!()
        };
        assert_eq!(std::fs::read(&module).unwrap(), MODULE);
        assert!(!component);
        // Classified once: the extracted file is reused.
        let again = classify(&man, &config, &paths, &m).unwrap();
        assert_eq!(
            again,
            ImageKind::Wasm {
                module,
                component: false
            }
        );
        assert_eq!(m.kept.borrow().len(), 1);
    }

    #[test]
    fn linux_images_stay_linux() {
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        // One layer, a shell script, no .wasm.
        let layer = tar_of(&[("bin/sh", b"#!/bin/sh"), ("app.wasm.txt", b"no")], false);
        let paths = files(dir.path(), &[&layer]);
        let man = manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar"],
        );
        let config = serde_json::json!({"os": "linux", "architecture": "amd64"});
        let kind = classify(&man, &config, &paths, &m).unwrap();
        let ImageKind::Linux { layers, config: c } = kind else {
            panic!()
        };
        assert_eq!(layers.len(), 1);
        assert_eq!(c["architecture"], "amd64");
        // A .wasm name that is not a module, with no metadata saying Wasm,
        // is not enough either.
        let layer = tar_of(&[("fake.wasm", b"hello")], false);
        let paths = files(dir.path(), &[&layer]);
        assert!(matches!(
            classify(&man, &config, &paths, &m).unwrap(),
            ImageKind::Linux { .. }
        ));
        // Two .wasm files and no entrypoint: no single module to run.
        let layer = tar_of(&[("a.wasm", MODULE), ("b.wasm", MODULE)], false);
        let paths = files(dir.path(), &[&layer]);
        assert!(matches!(
            classify(&man, &config, &paths, &m).unwrap(),
            ImageKind::Linux { .. }
        ));
    }

    #[test]
    fn metadata_saying_wasm_without_a_module_is_an_error() {
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[("readme", b"x")], false);
        let paths = files(dir.path(), &[&layer]);
        let man = manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar"],
        );
        let config = serde_json::json!({"os": "wasip1", "architecture": "wasm"});
        let err = classify(&man, &config, &paths, &m).unwrap_err().to_string();
        assert!(err.contains("no layer holds a .wasm"), "{err}");
    }

    #[test]
    fn raw_module_layer_with_a_generic_media_type_is_found_by_magic() {
        let m = mem();
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), &[MODULE]);
        let man = manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/octet-stream"],
        );
        assert!(matches!(
            classify(&man, &Value::Null, &paths, &m).unwrap(),
            ImageKind::Wasm { .. }
        ));
    }
}
