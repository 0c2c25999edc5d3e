//! Applying an image layer (a tar, plain, gzip or zstd) to a directory,
//! safely.
//!
//! A layer is untrusted input. Every entry is created relative to a
//! directory file descriptor of the target, its parent opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so nothing is ever
//! written outside the target:
//! - a name with a `..` component, or an absolute name, refuses the layer;
//! - an entry whose parent path goes through a symbolic link (one the layer
//!   itself created, or one already there) refuses the layer: tar writers
//!   emit real paths, only an attack writes through a link;
//! - a hard link must name a file of the same tree, found the same way;
//! - symbolic links are stored as they are: their targets, absolute ones
//!   included, are only ever followed inside the container's own root;
//! - character and block devices are not created (a container gets a
//!   fresh minimal `/dev`; device nodes elsewhere in an image would reach
//!   host devices) and are counted in [`Unpacked::skipped_devices`]; FIFOs
//!   are created;
//! - setuid/setgid bits are kept, as every runtime keeps them (`su`,
//!   `ping`); containers start with `no_new_privs` unless the pod allows
//!   privilege escalation, which makes them inert;
//! - extended attributes: `security.capability` and `user.*` are applied;
//!   `trusted.*` (overlayfs' own) and others from the layer are ignored;
//! - sizes are bounded ([`Limits`]): the bytes written and the entry count,
//!   which also stops decompression bombs.
//!
//! OCI whiteouts: `.wh.NAME` deletes NAME from the layers below and
//! `.wh..wh..opq` hides everything below in its directory. In
//! [`Whiteouts::Overlay`] form (a layer extracted on its own, to be an
//! overlayfs lower directory) they become a 0/0 character device and the
//! `trusted.overlay.opaque` attribute, as overlayfs expects; in
//! [`Whiteouts::Apply`] form (layers flattened into one directory) they
//! delete.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags,
};

/// How whiteout entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// As overlayfs markers, for a layer extracted into its own directory.
    Overlay,
    /// By deleting, for layers applied one after another to one directory.
    Apply,
}

/// Bounds on what one layer may write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of regular file content.
    pub max_bytes: u64,
    /// Entries of any kind.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// What applying a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries applied.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Character and block devices not created.
    pub skipped_devices: u64,
}

/// Why a layer was refused. The message names the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} {why}")]
    Unsafe { entry: String, why: String },
    #[error("the layer is larger than allowed: {0}")]
    TooLarge(String),
    #[error("the layer is not a readable tar: {0}")]
    Corrupt(String),
    #[error("cannot write layer entry {entry:?}: {source}")]
    Write {
        entry: String,
        #[source]
        source: io::Error,
    },
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// Reads the layer's compression from its first bytes: gzip, zstd, or a
/// plain tar.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::new(reader);
    let head = {
        use std::io::BufRead;
        reader.fill_buf()?.to_vec()
    };
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(reader)?))
    } else {
        Ok(Box::new(reader))
    }
}

/// Applies the layer `reader` yields (compressed or not) to the directory
/// `target`, which must exist.
pub fn unpack_layer(
    reader: impl Read,
    target: &Path,
    whiteouts: Whiteouts,
    limits: Limits,
) -> Result<Unpacked, UnpackError> {
    let root = rfs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Write {
        entry: target.display().to_string(),
        source: e.into(),
    })?;
    let reader = decompress(reader).map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    let mut archive = tar::Archive::new(reader);
    let mut u = Unpacker {
        root,
        whiteouts,
        limits,
        done: Unpacked::default(),
        created: HashSet::new(),
        dir_times: Vec::new(),
    };
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| UnpackError::Corrupt(e.to_string()))?;
        u.entry(entry)?;
    }
    // Directory times last: creating their children moved them. Each is
    // reached the safe way again (a later entry may have replaced a
    // directory by a link).
    for (path, mtime) in std::mem::take(&mut u.dir_times) {
        let (dirs, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if let Ok(parent) = u.open_dir(dirs, false, &path) {
            if rfs::statat(&parent, base, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
            {
                let _ = set_mtime(&parent, base, mtime);
            }
        }
    }
    Ok(u.done)
}

struct Unpacker {
    root: OwnedFd,
    whiteouts: Whiteouts,
    limits: Limits,
    done: Unpacked,
    /// Paths this layer created (Apply mode: an opaque marker keeps them).
    created: HashSet<String>,
    dir_times: Vec<(String, u64)>,
}

/// A cleaned relative path: its components, none empty, `.` or `..`.
fn clean(raw: &[u8]) -> Result<Vec<String>, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "is not UTF-8".to_string())?;
    if s.starts_with('/') {
        return Err("is an absolute path".into());
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("has a \"..\" component: it would escape the layer".into()),
            c if c.contains('\0') => return Err("has a NUL byte".into()),
            c => parts.push(c.to_string()),
        }
    }
    Ok(parts)
}

fn io_err(entry: &str) -> impl Fn(rustix::io::Errno) -> UnpackError + '_ {
    move |e| UnpackError::Write {
        entry: entry.to_string(),
        source: e.into(),
    }
}

impl Unpacker {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |why: String| UnpackError::Unsafe {
            entry: name.clone(),
            why,
        };
        let parts = clean(&raw).map_err(&unsafe_entry)?;
        self.done.entries += 1;
        if self.done.entries > self.limits.max_entries {
            return Err(UnpackError::TooLarge(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        let Some((base, dirs)) = parts.split_last() else {
            return Ok(()); // "./": the root itself
        };
        let parent_path = dirs.join("/");
        let rel = parts.join("/");
        let header = entry.header().clone();
        let kind = header.entry_type();

        // Parents a tar omitted are made as 0755 directories.
        let parent = self.open_dir(&parent_path, true, &name)?;

        if base == OPAQUE {
            return self.opaque(&parent, &parent_path, &name);
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_entry("is a whiteout of nothing".into()));
            }
            return self.whiteout(&parent, hidden, &name);
        }

        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mode_bits = Mode::from_raw_mode(mode);
        // A later entry for the same name replaces the earlier one,
        // except that a directory stays a directory.
        let existing = rfs::statat(&parent, base.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(kind.is_dir() && existing_dir) {
            remove_all(&parent, base).map_err(io_err(&name))?;
        }
        match kind {
            k if k.is_dir() => {
                if !existing_dir {
                    rfs::mkdirat(&parent, base.as_str(), mode_bits).map_err(io_err(&name))?;
                }
                rfs::chmodat(&parent, base.as_str(), mode_bits, AtFlags::empty())
                    .map_err(io_err(&name))?;
            }
            k if k.is_file() || k == tar::EntryType::Continuous => {
                let size = header.size().unwrap_or(0);
                if self.done.bytes + size > self.limits.max_bytes {
                    return Err(UnpackError::TooLarge(format!(
                        "{name} would take it past {} bytes",
                        self.limits.max_bytes
                    )));
                }
                let fd = rfs::openat(
                    &parent,
                    base.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err(&name))?;
                let mut file = std::fs::File::from(fd);
                let written = io::copy(&mut (&mut entry).take(size), &mut file).map_err(|e| {
                    UnpackError::Write {
                        entry: name.clone(),
                        source: e,
                    }
                })?;
                self.done.bytes += written;
                rfs::fchmod(&file, mode_bits).map_err(io_err(&name))?;
            }
            k if k.is_symlink() => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("is a symbolic link without a target".into()))?
                    .into_owned();
                if target.contains(&0) {
                    return Err(unsafe_entry("has a NUL byte in its link target".into()));
                }
                rfs::symlinkat(target.as_slice(), &parent, base.as_str()).map_err(io_err(&name))?;
            }
            k if k.is_hard_link() => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("is a hard link without a target".into()))?
                    .into_owned();
                let tparts = clean(&target).map_err(|why| {
                    unsafe_entry(format!(
                        "is a hard link to {:?}, which {why}",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                let Some((tbase, tdirs)) = tparts.split_last() else {
                    return Err(unsafe_entry("is a hard link to the layer's root".into()));
                };
                let tparent = self.open_dir(&tdirs.join("/"), false, &name)?;
                let st = rfs::statat(&tparent, tbase.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(
                    |_| {
                        unsafe_entry(format!(
                            "is a hard link to {:?}, which is not in this layer",
                            String::from_utf8_lossy(&target)
                        ))
                    },
                )?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(unsafe_entry("is a hard link to a directory".into()));
                }
                rfs::linkat(
                    &tparent,
                    tbase.as_str(),
                    &parent,
                    base.as_str(),
                    AtFlags::empty(),
                )
                .map_err(io_err(&name))?;
            }
            tar::EntryType::Fifo => {
                rfs::mknodat(&parent, base.as_str(), FileType::Fifo, mode_bits, 0)
                    .map_err(io_err(&name))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                self.done.skipped_devices += 1;
                return Ok(());
            }
            // PAX/GNU metadata entries are consumed by the tar reader;
            // anything else is not a file system object.
            _ => return Ok(()),
        }
        if kind.is_dir() || kind.is_file() || kind == tar::EntryType::Continuous {
            self.xattrs(&mut entry, &parent, base, &name)?;
        }
        let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok());
        let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok());
        if let (Some(uid), Some(gid)) = (uid, gid) {
            let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
            rfs::chownat(
                &parent,
                base.as_str(),
                Some(u),
                Some(g),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err(&name))?;
            // chown clears setuid/setgid: put the mode back.
            if !kind.is_symlink() && mode & 0o6000 != 0 {
                rfs::chmodat(&parent, base.as_str(), mode_bits, AtFlags::empty())
                    .map_err(io_err(&name))?;
            }
        }
        let mtime = header.mtime().unwrap_or(0);
        if kind.is_dir() {
            self.dir_times.push((rel.clone(), mtime));
        } else {
            let _ = set_mtime(&parent, base, mtime);
        }
        self.created.insert(rel);
        Ok(())
    }

    /// Open a directory of the tree without following any symbolic link;
    /// with `create`, make the missing ones.
    fn open_dir(&self, path: &str, create: bool, entry: &str) -> Result<OwnedFd, UnpackError> {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let open = |p: &str| {
            rfs::openat2(
                &self.root,
                if p.is_empty() { "." } else { p },
                flags,
                Mode::empty(),
                resolve,
            )
        };
        let refuse = |e: rustix::io::Errno| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => UnpackError::Unsafe {
                entry: entry.to_string(),
                why: format!("goes through a symbolic link ({path})"),
            },
            rustix::io::Errno::NOTDIR => UnpackError::Unsafe {
                entry: entry.to_string(),
                why: format!("is under {path:?}, which is not a directory"),
            },
            e => UnpackError::Write {
                entry: entry.to_string(),
                source: e.into(),
            },
        };
        match open(path) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) if create => {}
            Err(e) => return Err(refuse(e)),
        }
        // Make the missing directories one component at a time, each
        // through the one above.
        let mut dir = open("").map_err(refuse)?;
        for c in path.split('/') {
            match rfs::mkdirat(&dir, c, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(refuse(e)),
            }
            dir = rfs::openat2(&dir, c, flags, Mode::empty(), resolve).map_err(refuse)?;
        }
        Ok(dir)
    }

    fn whiteout(&mut self, parent: &OwnedFd, hidden: &str, entry: &str) -> Result<(), UnpackError> {
        match self.whiteouts {
            Whiteouts::Overlay => {
                let _ = remove_all(parent, hidden);
                rfs::mknodat(parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(io_err(entry))
            }
            Whiteouts::Apply => match remove_all(parent, hidden) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(io_err(entry)(e)),
            },
        }
    }

    fn opaque(
        &mut self,
        parent: &OwnedFd,
        parent_path: &str,
        entry: &str,
    ) -> Result<(), UnpackError> {
        match self.whiteouts {
            Whiteouts::Overlay => {
                let dir = reopen_dir(parent).map_err(io_err(entry))?;
                rfs::fsetxattr(&dir, OVERLAY_OPAQUE, b"y", XattrFlags::empty())
                    .map_err(io_err(entry))
            }
            Whiteouts::Apply => {
                // Everything below from earlier layers goes; what this
                // layer already put there stays.
                let dir = reopen_dir(parent).map_err(io_err(entry))?;
                let names = list(&dir).map_err(io_err(entry))?;
                for n in names {
                    let rel = if parent_path.is_empty() {
                        n.clone()
                    } else {
                        format!("{parent_path}/{n}")
                    };
                    if !self.created.contains(&rel) {
                        remove_all(parent, &n).map_err(io_err(entry))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `security.capability` and `user.*` from the entry's PAX records.
    fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        base: &str,
        name: &str,
    ) -> Result<(), UnpackError> {
        let Ok(Some(pax)) = entry.pax_extensions() else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for ext in pax.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if attr == "security.capability" || attr.starts_with("user.") {
                wanted.push((attr.to_string(), ext.value_bytes().to_vec()));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let fd = rfs::openat(
            parent,
            base,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(name))?;
        for (attr, value) in wanted {
            rfs::fsetxattr(&fd, attr.as_str(), &value, XattrFlags::empty())
                .map_err(io_err(name))?;
        }
        Ok(())
    }
}

/// An O_PATH directory descriptor reopened for reading (listing, xattrs).
fn reopen_dir(dir: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn list(dir: &OwnedFd) -> rustix::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut d = rfs::Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    Ok(names)
}

/// Remove `name` under `dir`, a directory with everything in it; never
/// follows a symbolic link.
fn remove_all(dir: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for n in list(&sub)? {
        remove_all(&sub, &n)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

fn set_mtime(dir: impl AsFd, name: &str, mtime: u64) -> rustix::io::Result<()> {
    let t = rfs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    rfs::utimensat(
        dir,
        if name.is_empty() { "." } else { name },
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
}
