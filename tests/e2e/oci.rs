//! OCI image layouts built by the tests themselves (nothing can be pulled
//! from the internet here): a real tar layer, a config naming the
//! platform, a manifest, and for several platforms an image index, written
//! as `oci-layout` + `index.json` + `blobs/sha256/…` and then pushed with
//! `skiff image push DIR REF`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Writes a blob and returns its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8], extra: Value) -> Value {
    let d = digest(bytes);
    let path = dir.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::write(path, bytes).expect("write blob");
    let mut desc = json!({"mediaType": media_type, "digest": d, "size": bytes.len()});
    if let (Some(m), Some(e)) = (desc.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    desc
}

/// A tar holding one file.
fn tar_of(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(contents.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, contents).expect("tar entry");
    b.into_inner().expect("tar")
}

/// One image manifest for `os/arch` (a file naming the platform as its
/// only layer); returns its descriptor.
fn image(dir: &Path, os: &str, arch: &str) -> Value {
    let layer = tar_of("platform.txt", format!("{os}/{arch}\n").as_bytes());
    let layer_desc = blob(dir, LAYER, &layer, json!({}));
    let config = json!({
        "architecture": arch,
        "os": os,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    });
    let config_desc = blob(dir, CONFIG, config.to_string().as_bytes(), json!({}));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    });
    blob(
        dir,
        MANIFEST,
        manifest.to_string().as_bytes(),
        json!({"platform": {"os": os, "architecture": arch}}),
    )
}

/// A layout under `parent/name` holding a Linux image for these
/// `(os, arch)` platforms: one manifest for one, an image index for more.
pub fn layout(parent: &Path, name: &str, platforms: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let manifests: Vec<Value> = platforms
        .iter()
        .map(|(os, arch)| image(&dir, os, arch))
        .collect();
    let top = match manifests.as_slice() {
        [one] => one.clone(),
        _ => {
            let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
            blob(&dir, INDEX, index.to_string().as_bytes(), json!({}))
        }
    };
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    dir
}
