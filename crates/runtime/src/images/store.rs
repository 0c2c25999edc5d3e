//! The on-disk image store: content-addressed blobs and an index of
//! references.
//!
//! Layout under the store directory:
//! - `blobs/sha256/<hex>`: manifests, configs, layers and extracted Wasm
//!   files, each named by the digest of its content;
//! - `index.json`: reference → manifest digest, and the digest of the
//!   `.wasm` file extracted from each tar layer that held one;
//! - `tmp/`: files being written, renamed into place once verified.
//!
//! A blob is hashed while it is written and kept only if its digest is the
//! one it was fetched as; it is hashed again whenever an image is loaded, so
//! a file corrupted on disk is found (and removed) before a pod runs it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::classify::{self, Blobs};
use super::manifest::{Document, Manifest};
use super::{digest, Image, ImageError, Platform};

/// How the store reaches registries.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Registries (`host:port`) spoken to over plain http
    /// (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
}

/// What `index.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    /// Normalized reference → manifest digest.
    #[serde(default)]
    refs: BTreeMap<String, String>,
    /// Layer digest → digest of the `.wasm` file extracted from it.
    #[serde(default)]
    extracted: BTreeMap<String, String>,
}

/// A directory of images. Cheap to share behind an `Arc`; every method
/// takes `&self`.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    pub(crate) config: StoreConfig,
    /// The index as last read or written, and the file's identity then:
    /// `skiff image import` in another process may replace the file while
    /// a node runs, and the node must see the new references.
    index: Mutex<(IndexFile, Option<FileStamp>)>,
    tmp_counter: AtomicU64,
}

/// The locked index.
struct IndexGuard<'a>(std::sync::MutexGuard<'a, (IndexFile, Option<FileStamp>)>);

impl std::ops::Deref for IndexGuard<'_> {
    type Target = IndexFile;
    fn deref(&self) -> &IndexFile {
        &self.0 .0
    }
}

impl std::ops::DerefMut for IndexGuard<'_> {
    fn deref_mut(&mut self) -> &mut IndexFile {
        &mut self.0 .0
    }
}

/// What tells one version of `index.json` from another without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: std::os::unix::fs::MetadataExt::ino(&m),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

fn read_index(path: &Path) -> Result<IndexFile, ImageError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Invalid(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IndexFile::default()),
        Err(e) => Err(ImageError::io(path, e)),
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<ImageStore, ImageError> {
        for sub in ["blobs/sha256", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| ImageError::io(&p, e))?;
        }
        let index_path = dir.join("index.json");
        let stamp_before = stamp(&index_path);
        let index = read_index(&index_path)?;
        Ok(ImageStore {
            root: dir.to_path_buf(),
            config,
            index: Mutex::new((index, stamp_before)),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest digest a reference points at locally, if any.
    pub fn lookup(&self, reference: &str) -> Option<String> {
        self.lock().refs.get(reference).cloned()
    }

    /// Every reference the store knows, with its manifest digest.
    pub fn references(&self) -> Vec<(String, String)> {
        self.lock()
            .refs
            .iter()
            .map(|(r, d)| (r.clone(), d.clone()))
            .collect()
    }

    /// The index, re-read first if another process replaced the file (one
    /// `stat` per call). Guard derefs to the [`IndexFile`].
    fn lock(&self) -> IndexGuard<'_> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each update is one insert), so a poisoned lock is still usable.
        let mut g = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.root.join("index.json");
        let now = stamp(&path);
        if now != g.1 {
            match read_index(&path) {
                Ok(fresh) => *g = (fresh, now),
                // A damaged file written by someone else: keep what we had.
                Err(e) => tracing::warn!("not reloading the image index: {e}"),
            }
        }
        IndexGuard(g)
    }

    /// Records `reference` → `manifest_digest` and persists the index.
    pub(crate) fn set_ref(&self, reference: &str, manifest_digest: &str) -> Result<(), ImageError> {
        let mut index = self.lock();
        index
            .refs
            .insert(reference.to_string(), manifest_digest.to_string());
        self.persist_and_stamp(index)
    }

    pub(crate) fn extracted(&self, layer_digest: &str) -> Option<String> {
        self.lock().extracted.get(layer_digest).cloned()
    }

    pub(crate) fn set_extracted(
        &self,
        layer_digest: &str,
        wasm_digest: &str,
    ) -> Result<(), ImageError> {
        let mut index = self.lock();
        index
            .extracted
            .insert(layer_digest.to_string(), wasm_digest.to_string());
        self.persist_and_stamp(index)
    }

    fn persist(&self, index: &IndexGuard<'_>) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(&**index)
            .map_err(|e| ImageError::Invalid(format!("cannot encode the image index: {e}")))?;
        let (tmp, mut file) = self.temp_file()?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| ImageError::io(&tmp, e))?;
        let dest = self.root.join("index.json");
        fs::rename(&tmp, &dest).map_err(|e| ImageError::io(&dest, e))
    }

    /// Persist and remember the file written as the one in memory.
    fn persist_and_stamp(&self, mut index: IndexGuard<'_>) -> Result<(), ImageError> {
        self.persist(&index)?;
        index.0 .1 = stamp(&self.root.join("index.json"));
        Ok(())
    }

    /// A fresh name under `tmp/`, unique within this process.
    pub(crate) fn temp_path(&self, prefix: &str) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{prefix}{}-{n}", std::process::id()))
    }

    fn temp_file(&self) -> Result<(PathBuf, File), ImageError> {
        let path = self.temp_path("");
        let file = File::create(&path).map_err(|e| ImageError::io(&path, e))?;
        Ok((path, file))
    }

    /// Where the blob with `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(digest::hex_of(digest)?))
    }

    /// Whether the blob is present (not verified).
    pub(crate) fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Starts writing the blob that must hash to `expected`.
    pub(crate) fn begin_blob(&self, expected: &str) -> Result<BlobWriter, ImageError> {
        let dest = self.blob_path(expected)?;
        let (tmp, file) = self.temp_file()?;
        Ok(BlobWriter {
            file,
            tmp,
            dest,
            expected: expected.to_string(),
            hasher: digest::Hasher::default(),
        })
    }

    /// Stores `bytes` as the blob `expected`, refusing them if they hash
    /// to anything else.
    pub(crate) fn write_blob(&self, expected: &str, bytes: &[u8]) -> Result<PathBuf, ImageError> {
        let mut w = self.begin_blob(expected)?;
        w.write(bytes)?;
        w.commit()
    }

    /// Stores bytes whose digest is computed here (extracted files).
    pub(crate) fn add_blob(&self, bytes: &[u8]) -> Result<(String, PathBuf), ImageError> {
        let d = digest::of(bytes);
        let path = self.write_blob(&d, bytes)?;
        Ok((d, path))
    }

    /// Copies a file into the store as blob `expected`, verifying it.
    pub(crate) fn copy_blob_from(&self, expected: &str, src: &Path) -> Result<PathBuf, ImageError> {
        let mut input = File::open(src).map_err(|e| ImageError::io(src, e))?;
        let mut w = self.begin_blob(expected)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(|e| ImageError::io(src, e))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        w.commit()
    }

    /// Reads a blob, checking its digest. A corrupted blob is removed so
    /// the next pull fetches it again.
    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
        let actual = digest::of(&bytes);
        if actual != digest {
            return Err(self.corrupt(&path, digest, actual));
        }
        Ok(bytes)
    }

    /// Hashes a blob on disk without keeping it in memory.
    pub(crate) fn verify_blob(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let path = self.blob_path(digest)?;
        let mut file = File::open(&path).map_err(|e| ImageError::io(&path, e))?;
        let mut hasher = digest::Hasher::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(|e| ImageError::io(&path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish();
        if actual != digest {
            return Err(self.corrupt(&path, digest, actual));
        }
        Ok(path)
    }

    fn corrupt(&self, path: &Path, expected: &str, actual: String) -> ImageError {
        tracing::warn!(path = %path.display(), expected, actual, "removing a corrupted blob");
        let _ = fs::remove_file(path);
        ImageError::DigestMismatch {
            what: format!("blob {}", path.display()),
            expected: expected.to_string(),
            actual,
        }
    }

    /// The image whose manifest is `manifest_digest`, verified and
    /// classified, known as `reference`.
    pub(crate) fn load(&self, reference: &str, manifest_digest: &str) -> Result<Image, ImageError> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest = match Document::parse(&bytes, None, &format!("the manifest of {reference}"))?
        {
            Document::Manifest(m) => m,
            Document::Index(_) => {
                return Err(ImageError::Invalid(format!(
                    "{reference} points at an image index, not a manifest"
                )))
            }
        };
        self.load_manifest(reference, manifest_digest, &manifest)
    }

    fn load_manifest(
        &self,
        reference: &str,
        manifest_digest: &str,
        manifest: &Manifest,
    ) -> Result<Image, ImageError> {
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config: serde_json::Value =
            serde_json::from_slice(&config_bytes).unwrap_or(serde_json::Value::Null);
        let mut layer_paths = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            layer_paths.push(self.verify_blob(&layer.digest)?);
        }
        let kind = classify::classify(manifest, &config, &layer_paths, self as &dyn Blobs)?;
        let platform = match (config["os"].as_str(), config["architecture"].as_str()) {
            (Some(os), Some(arch)) => Some(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: config["variant"].as_str().map(str::to_string),
            }),
            _ => None,
        };
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(Image {
            reference: reference.to_string(),
            digest: manifest_digest.to_string(),
            kind,
            platform,
            size,
        })
    }
}

impl Blobs for ImageStore {
    fn extracted(&self, layer_digest: &str) -> Result<Option<PathBuf>, ImageError> {
        match ImageStore::extracted(self, layer_digest) {
            Some(d) if self.has_blob(&d) => Ok(Some(self.verify_blob(&d)?)),
            _ => Ok(None),
        }
    }

    fn store_extracted(&self, layer_digest: &str, wasm: &[u8]) -> Result<PathBuf, ImageError> {
        let (d, path) = self.add_blob(wasm)?;
        self.set_extracted(layer_digest, &d)?;
        Ok(path)
    }
}

/// A blob being written: hashed as it goes, renamed into place only when
/// its digest is the expected one, deleted otherwise (also when dropped
/// unfinished).
pub(crate) struct BlobWriter {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    expected: String,
    hasher: digest::Hasher,
}

impl BlobWriter {
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| ImageError::io(&self.tmp, e))
    }

    /// Verifies the digest and moves the blob into place.
    pub(crate) fn commit(mut self) -> Result<PathBuf, ImageError> {
        let hasher = std::mem::take(&mut self.hasher);
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(ImageError::DigestMismatch {
                what: format!("downloaded blob {}", self.expected),
                expected: self.expected.clone(),
                actual,
            });
        }
        self.file
            .sync_all()
            .map_err(|e| ImageError::io(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.dest).map_err(|e| ImageError::io(&self.dest, e))?;
        Ok(self.dest.clone())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful rename this finds nothing to remove.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path(), StoreConfig::default()).unwrap();
        (dir, s)
    }

    #[test]
    fn a_blob_whose_bytes_do_not_match_its_digest_is_not_kept() {
        let (dir, s) = store();
        let claimed = digest::of(b"expected");
        let err = s.write_blob(&claimed, b"something else").unwrap_err();
        match err {
            ImageError::DigestMismatch {
                expected, actual, ..
            } => {
                assert_eq!(expected, claimed);
                assert_eq!(actual, digest::of(b"something else"));
            }
            other => panic!("{other}"),
        }
        assert!(!s.has_blob(&claimed));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temp file left"
        );
    }

    #[test]
    fn blobs_are_content_addressed_and_verified_on_read() {
        let (_dir, s) = store();
        let (d, path) = s.add_blob(b"hello").unwrap();
        assert!(path.ends_with(d.strip_prefix("sha256:").unwrap()));
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        fs::write(&path, b"hellO").unwrap();
        let err = s.read_blob(&d).unwrap_err().to_string();
        assert!(err.contains("digest mismatch") && err.contains(&d), "{err}");
        assert!(
            !s.has_blob(&d),
            "a corrupted blob is removed so it is fetched again"
        );
    }

    #[test]
    fn references_survive_a_restart() {
        let (dir, s) = store();
        let d = digest::of(b"m");
        s.set_ref("docker.io/library/x:1", &d).unwrap();
        drop(s);
        let s = ImageStore::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(s.lookup("docker.io/library/x:1"), Some(d));
        assert_eq!(s.lookup("docker.io/library/x:2"), None);
    }

    #[test]
    fn a_damaged_index_is_reported_not_silently_emptied() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("index.json"), b"{not json").unwrap();
        let err = ImageStore::open(dir.path(), StoreConfig::default()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
