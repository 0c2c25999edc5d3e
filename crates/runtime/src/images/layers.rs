//! Extracted layers and container root file systems.
//!
//! Each layer blob is extracted once, into `layers/sha256/<hex>/` beside
//! the blobs, with whiteouts in overlayfs form ([`unpack`]); images that
//! share a layer share its directory, and nothing ever writes into it
//! again. A container's root is an overlay of its image's layer
//! directories (read-only, bottom layer last in `lowerdir`) with a
//! writable upper directory of its own. Where the kernel refuses overlayfs
//! (an unprivileged agent, an old kernel), the layers are applied one by
//! one into a private copy instead.
//!
//! Extraction goes to a temporary directory first and is renamed into
//! place whole, so a crash never leaves half a layer that looks complete.
//!
//! [`unpack`]: super::unpack

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::mount::{self, MountFlags, UnmountFlags};

use super::unpack::{self, Limits, UnpackError, Whiteouts};
use super::{digest, Layer};

/// Why a root file system could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LayerError {
    let what = what.into();
    move |source| LayerError::Io { what, source }
}

/// The extracted layers of a node.
#[derive(Debug, Clone)]
pub struct LayerStore {
    dir: PathBuf,
    limits: Limits,
}

/// How a container's root was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKind {
    /// An overlay mount of the shared layer directories.
    Overlay,
    /// A private copy (overlayfs unavailable).
    Copy,
}

/// A container's root file system.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Where it is (mounted, for [`RootKind::Overlay`]).
    pub path: PathBuf,
    /// The container's directory holding it (and the upper/work dirs).
    pub dir: PathBuf,
    pub kind: RootKind,
}

impl LayerStore {
    /// Layers kept under `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayerStore {
            dir: dir.into(),
            limits: Limits::default(),
        }
    }

    /// With other bounds on what one layer may hold.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The directory a layer is (or would be) extracted to.
    pub fn path_of(&self, layer_digest: &str) -> Result<PathBuf, LayerError> {
        let hex = digest::hex_of(layer_digest).map_err(|e| LayerError::Io {
            what: format!("layer {layer_digest}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        Ok(self.dir.join("sha256").join(hex))
    }

    /// The layer's extracted directory, extracting it first if needed.
    pub fn extracted(&self, layer: &Layer) -> Result<PathBuf, LayerError> {
        let done = self.path_of(&layer.digest)?;
        if done.is_dir() {
            return Ok(done);
        }
        let parent = done.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
        let tmp_root = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp_root)
            .map_err(io(format!("creating {}", tmp_root.display())))?;
        let tmp = tmp_root.join(format!(
            "{}-{}",
            done.file_name().and_then(|n| n.to_str()).unwrap_or("layer"),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let result = File::open(&layer.path)
            .map_err(io(format!("opening {}", layer.path.display())))
            .and_then(|blob| {
                unpack::unpack_layer(blob, &tmp, Whiteouts::Overlay, self.limits).map_err(
                    |source| LayerError::Unpack {
                        digest: layer.digest.clone(),
                        source,
                    },
                )
            });
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, &done) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another extraction of the same layer won the race.
            if !done.is_dir() {
                return Err(io(format!("moving {} into place", done.display()))(e));
            }
        }
        Ok(done)
    }

    /// A root file system for one container in `dir` (created; it must
    /// not hold a root already): an overlay of `layers` (in manifest
    /// order, bottom first), or a copy where overlayfs is refused.
    pub fn rootfs(&self, layers: &[Layer], dir: &Path) -> Result<Rootfs, LayerError> {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io(format!("creating {}", rootfs.display())))?;
        match self.overlay(layers, dir, &rootfs) {
            Ok(()) => Ok(Rootfs {
                path: rootfs,
                dir: dir.to_path_buf(),
                kind: RootKind::Overlay,
            }),
            Err(OverlayError::Refused(why)) => {
                tracing::info!(dir = %dir.display(), %why, "overlayfs refused; copying the layers");
                for layer in layers {
                    let blob = File::open(&layer.path)
                        .map_err(io(format!("opening {}", layer.path.display())))?;
                    unpack::unpack_layer(blob, &rootfs, Whiteouts::Apply, self.limits).map_err(
                        |source| LayerError::Unpack {
                            digest: layer.digest.clone(),
                            source,
                        },
                    )?;
                }
                Ok(Rootfs {
                    path: rootfs,
                    dir: dir.to_path_buf(),
                    kind: RootKind::Copy,
                })
            }
            Err(OverlayError::Layer(e)) => Err(e),
        }
    }

    fn overlay(&self, layers: &[Layer], dir: &Path, rootfs: &Path) -> Result<(), OverlayError> {
        let mut lower = Vec::with_capacity(layers.len());
        for layer in layers.iter().rev() {
            lower.push(self.extracted(layer).map_err(OverlayError::Layer)?);
        }
        if lower.is_empty() {
            // overlayfs needs a lower directory: an image without layers
            // is an empty one.
            let empty = self.dir.join("empty");
            std::fs::create_dir_all(&empty)
                .map_err(|e| OverlayError::Layer(io("creating the empty layer")(e)))?;
            lower.push(empty);
        }
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&upper, &work] {
            std::fs::create_dir_all(d)
                .map_err(|e| OverlayError::Layer(io(format!("creating {}", d.display()))(e)))?;
        }
        let mut paths: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
        paths.push(&upper);
        paths.push(&work);
        if let Some(bad) = paths
            .iter()
            .find(|p| p.to_str().is_none_or(|s| s.contains([',', ':', '\\'])))
        {
            return Err(OverlayError::Refused(format!(
                "{} cannot be written in overlayfs mount options",
                bad.display()
            )));
        }
        let lowerdir: Vec<&str> = lower.iter().filter_map(|p| p.to_str()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        let c_options = std::ffi::CString::new(options)
            .map_err(|_| OverlayError::Refused("a path holds a NUL byte".into()))?;
        match mount::mount(
            "overlay",
            rootfs,
            "overlay",
            MountFlags::NODEV,
            c_options.as_c_str(),
        ) {
            Ok(()) => Ok(()),
            Err(e) => Err(OverlayError::Refused(format!("mount: {e}"))),
        }
    }

    /// Unmount (for an overlay) and remove a container's root and its
    /// directory. Removing what is already gone is not an error.
    pub fn remove(rootfs: &Rootfs) -> Result<(), LayerError> {
        if rootfs.kind == RootKind::Overlay {
            match mount::unmount(&rootfs.path, UnmountFlags::DETACH) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => {
                    return Err(io(format!("unmounting {}", rootfs.path.display()))(
                        e.into(),
                    ))
                }
            }
        }
        match std::fs::remove_dir_all(&rootfs.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", rootfs.dir.display()))(e)),
        }
    }
}

enum OverlayError {
    /// overlayfs cannot be used here; the copy will do.
    Refused(String),
    /// A layer itself is bad: no root can be made.
    Layer(LayerError),
}
