//! `skiff image import`: images for air-gapped nodes from an OCI image
//! layout (a directory with `oci-layout`, `index.json` and
//! `blobs/sha256/…`) or a tar of one, gzip or not (`docker save`,
//! `skopeo copy … oci-archive:…`).
//!
//! Each manifest `index.json` lists is imported (an index resolved for
//! this node's platform), every blob verified while it is copied. Names
//! come from the `io.containerd.image.name` annotation, else
//! `org.opencontainers.image.ref.name` read as a full reference; an entry
//! with neither is kept under its digest (pods can name it as
//! `repository@sha256:…`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::manifest::{Descriptor, Document, REF_NAME};
use super::{digest, platform, reference, Image, ImageError, ImageStore, Platform};

const CONTAINERD_NAME: &str = "io.containerd.image.name";

impl ImageStore {
    /// Imports every image of an OCI layout directory or archive.
    pub fn import(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        if path.is_dir() {
            return self.import_layout(path);
        }
        let dir = self.unpack(path)?;
        let result = self.import_layout(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Unpacks an archive into the store's `tmp/` (same filesystem, and
    /// the tar reader refuses entries that would land outside it).
    fn unpack(&self, archive: &Path) -> Result<PathBuf, ImageError> {
        let mut magic = [0u8; 2];
        let mut file = File::open(archive).map_err(|e| ImageError::io(archive, e))?;
        let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        let file = File::open(archive).map_err(|e| ImageError::io(archive, e))?;
        let reader: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        let dir = self.temp_path("import-");
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        tar::Archive::new(reader).unpack(&dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            ImageError::Invalid(format!(
                "{} is not an OCI layout archive: {e}",
                archive.display()
            ))
        })?;
        Ok(dir)
    }

    fn import_layout(&self, dir: &Path) -> Result<Vec<Image>, ImageError> {
        let index_path = dir.join("index.json");
        let bytes = std::fs::read(&index_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::Invalid(format!(
                "{} is not an OCI image layout: it has no index.json",
                dir.display()
            )),
            _ => ImageError::io(&index_path, e),
        })?;
        let Document::Index(index) = Document::parse(&bytes, None, "the layout's index.json")?
        else {
            return Err(ImageError::Invalid(
                "the layout's index.json is a manifest, not an index".into(),
            ));
        };
        let node = Platform::node();
        index
            .manifests
            .iter()
            .map(|entry| {
                let name = entry
                    .annotations
                    .get(CONTAINERD_NAME)
                    .or_else(|| entry.annotations.get(REF_NAME))
                    .map(String::as_str);
                self.import_entry(dir, entry, name, &node)
            })
            .collect()
    }

    fn import_entry(
        &self,
        dir: &Path,
        entry: &Descriptor,
        name: Option<&str>,
        node: &Platform,
    ) -> Result<Image, ImageError> {
        let bytes = self.copy_and_read(dir, &entry.digest)?;
        let what = format!("manifest {}", entry.digest);
        let manifest_digest = match Document::parse(&bytes, Some(&entry.media_type), &what)? {
            Document::Manifest(m) => {
                for d in std::iter::once(&m.config).chain(&m.layers) {
                    self.copy_blob_from(&d.digest, &layout_blob(dir, &d.digest)?)?;
                }
                entry.digest.clone()
            }
            Document::Index(index) => {
                let label = name.unwrap_or(&entry.digest);
                let child = platform::resolve(&index, node, label)?;
                return self.import_entry(dir, child, name, node);
            }
        };
        let reference = match name {
            Some(n) => {
                let whole = reference::parse(n)?.whole;
                self.set_ref(&whole, &manifest_digest)?;
                whole
            }
            None => manifest_digest.clone(),
        };
        self.load(&reference, &manifest_digest)
    }

    /// Stores a bare `.wasm` file as the Wasm artifact `skiff image push`
    /// would make of it, under `reference`: for nodes that never reach a
    /// registry, and for benchmarks.
    pub fn add_wasm(&self, reference: &str, wasm: &[u8]) -> Result<Image, ImageError> {
        let whole = reference::parse(reference)?.whole;
        let (config, manifest) = super::push::wasm_artifact(wasm)?;
        self.add_blob(wasm)?;
        self.add_blob(&config)?;
        let (manifest_digest, _) = self.add_blob(&manifest)?;
        self.set_ref(&whole, &manifest_digest)?;
        self.load(&whole, &manifest_digest)
    }

    /// Copies one blob of the layout into the store (verified) and reads it.
    fn copy_and_read(&self, dir: &Path, d: &str) -> Result<Vec<u8>, ImageError> {
        self.copy_blob_from(d, &layout_blob(dir, d)?)?;
        self.read_blob(d)
    }
}

fn layout_blob(dir: &Path, d: &str) -> Result<PathBuf, ImageError> {
    let path = dir.join("blobs/sha256").join(digest::hex_of(d)?);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ImageError::Invalid(format!(
            "the layout {} lacks blob {d}",
            dir.display()
        )))
    }
}
