//! Layer extraction against crafted tars: ordinary content, compression,
//! whiteouts, overlay roots, and layers that try to escape. These run as
//! root (device nodes, ownership, `trusted.*` attributes and overlay mounts
//! need it) and fail, saying so, elsewhere.

#![allow(clippy::unwrap_used)] // test fixtures are built here

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::layers::{LayerStore, RootKind};
use super::unpack::{unpack_layer, Limits, UnpackError, Whiteouts};
use super::{digest, Layer};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "layer extraction tests need root (mknod, chown, trusted.* xattrs, overlay mounts)"
    );
}

/// One tar entry, written with raw header fields so that tests can say
/// what a hostile layer would (tar's builder refuses `..`).
struct E<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Regular,
        link: "",
        data,
        mode: 0o644,
    }
}
fn dir(name: &str) -> E<'_> {
    E {
        name,
        kind: tar::EntryType::Directory,
        link: "",
        data: b"",
        mode: 0o755,
    }
}
fn symlink<'a>(name: &'a str, link: &'a str) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Symlink,
        link,
        data: b"",
        mode: 0o777,
    }
}
fn hardlink<'a>(name: &'a str, link: &'a str) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Link,
        link,
        data: b"",
        mode: 0o644,
    }
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        let old = h.as_old_mut();
        old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn unpack(
    tar: &[u8],
    target: &Path,
    mode: Whiteouts,
) -> Result<super::unpack::Unpacked, UnpackError> {
    unpack_layer(tar, target, mode, Limits::default())
}

/// A scratch area with the target inside and a sentinel beside it that no
/// layer may touch.
struct Scratch {
    _tmp: tempfile::TempDir,
    target: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scratch() -> Scratch {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&target).unwrap();
    std::fs::create_dir(&outside).unwrap();
    Scratch {
        _tmp: tmp,
        target,
        outside,
    }
}

impl Scratch {
    fn outside_untouched(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.outside).unwrap().collect();
        assert!(
            left.is_empty(),
            "something was written outside the layer: {left:?}"
        );
        assert!(
            !self.target.parent().unwrap().join("evil").exists(),
            "a file appeared beside the layer"
        );
    }
}

#[test]
fn files_dirs_links_and_modes_land_as_the_tar_says() {
    let s = scratch();
    let t = tar_of(&[
        dir("usr/"),
        dir("usr/bin/"),
        E {
            mode: 0o4755,
            ..file("usr/bin/su", b"#!su")
        },
        symlink("bin", "usr/bin"),
        symlink("usr/bin/sh", "/bin/busybox"),
        file("etc/hostname", b"box\n"), // parent not in the tar: made 0755
        hardlink("etc/hostname2", "etc/hostname"),
        E {
            kind: tar::EntryType::Fifo,
            ..file("run/fifo", b"")
        },
        E {
            kind: tar::EntryType::Char,
            ..file("dev/null", b"")
        },
    ]);
    let done = unpack(&t, &s.target, Whiteouts::Overlay).unwrap();
    assert_eq!(done.entries, 9);
    assert_eq!(done.skipped_devices, 1);
    let root = &s.target;
    assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
    let su = std::fs::metadata(root.join("usr/bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        std::fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/sh")).unwrap(),
        Path::new("/bin/busybox"),
        "absolute symlink targets are stored as they are"
    );
    let a = std::fs::metadata(root.join("etc/hostname")).unwrap();
    let b = std::fs::metadata(root.join("etc/hostname2")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link");
    assert!(!root.join("dev/null").exists(), "devices are not created");
    assert_eq!(a.mtime(), 1_700_000_000);
    s.outside_untouched();
}

#[test]
fn gzip_and_zstd_layers_are_recognized() {
    let t = tar_of(&[file("a", b"A")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(t.as_slice(), 1).unwrap();
    for (what, bytes) in [("plain", t.clone()), ("gzip", gz), ("zstd", zst)] {
        let s = scratch();
        unpack(&bytes, &s.target, Whiteouts::Overlay).unwrap();
        assert_eq!(std::fs::read(s.target.join("a")).unwrap(), b"A", "{what}");
    }
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    for (name, why) in [
        ("../evil", "\"..\""),
        ("a/../../evil", "\"..\""),
        ("/evil", "absolute"),
    ] {
        let s = scratch();
        let err = unpack(&tar_of(&[file(name, b"x")]), &s.target, Whiteouts::Overlay)
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains(why), "{name}: {err}");
        s.outside_untouched();
    }
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let s = scratch();
    let out = s.outside.to_str().unwrap().to_string();
    // An absolute link out, then a file through it.
    let t = tar_of(&[symlink("evil", &out), file("evil/passwd", b"root::0:0")]);
    let err = unpack(&t, &s.target, Whiteouts::Overlay)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evil/passwd") && err.contains("symbolic link"),
        "{err}"
    );
    s.outside_untouched();
    // A relative one climbing out.
    let s = scratch();
    let t = tar_of(&[symlink("up", "../outside"), file("up/x", b"x")]);
    let err = unpack(&t, &s.target, Whiteouts::Overlay)
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    s.outside_untouched();
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    for link in ["../outside/secret", "/etc/shadow", "missing"] {
        let s = scratch();
        std::fs::write(s.outside.join("secret"), b"s").unwrap();
        let err = unpack(
            &tar_of(&[hardlink("h", link)]),
            &s.target,
            Whiteouts::Overlay,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("hard link"), "{link}: {err}");
        assert!(!s.target.join("h").exists());
        std::fs::remove_file(s.outside.join("secret")).unwrap();
        s.outside_untouched();
    }
    // Through a symlink to a directory outside.
    let s = scratch();
    std::fs::write(s.outside.join("secret"), b"s").unwrap();
    let out = s.outside.to_str().unwrap().to_string();
    let err = unpack(
        &tar_of(&[symlink("o", &out), hardlink("h", "o/secret")]),
        &s.target,
        Whiteouts::Overlay,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Unsafe { .. }), "{err}");
    assert_eq!(
        std::fs::metadata(s.outside.join("secret")).unwrap().nlink(),
        1
    );
}

#[test]
fn a_symlink_replacing_a_directory_does_not_redirect_later_entries() {
    let s = scratch();
    let out = s.outside.to_str().unwrap().to_string();
    let t = tar_of(&[dir("d/"), symlink("d", &out), file("d/x", b"x")]);
    assert!(unpack(&t, &s.target, Whiteouts::Overlay).is_err());
    s.outside_untouched();
}

#[test]
fn limits_stop_bombs() {
    let s = scratch();
    let big = vec![0u8; 4096];
    let t = tar_of(&[file("a", &big), file("b", &big)]);
    let err = unpack_layer(
        t.as_slice(),
        &s.target,
        Whiteouts::Overlay,
        Limits {
            max_bytes: 6000,
            max_entries: 100,
        },
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge(_)), "{err}");
    let err = unpack_layer(
        t.as_slice(),
        &s.target,
        Whiteouts::Overlay,
        Limits {
            max_bytes: 1 << 20,
            max_entries: 1,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("entries"), "{err}");
}

#[test]
fn whiteouts_in_overlay_form() {
    let s = scratch();
    let t = tar_of(&[
        dir("etc/"),
        file("etc/.wh.motd", b""),
        file("var/.wh..wh..opq", b""),
    ]);
    unpack(&t, &s.target, Whiteouts::Overlay).unwrap();
    let wh = std::fs::symlink_metadata(s.target.join("etc/motd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0/0 char device"
    );
    let fd = rustix::fs::open(
        s.target.join("var"),
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut buf = [0u8; 4];
    let n = rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
}

#[test]
fn whiteouts_applied_delete_and_opaque_keeps_this_layers_entries() {
    let s = scratch();
    unpack(
        &tar_of(&[
            file("etc/motd", b"hi"),
            file("etc/keep", b"k"),
            file("var/old", b"o"),
            file("var/sub/old2", b"o"),
        ]),
        &s.target,
        Whiteouts::Apply,
    )
    .unwrap();
    unpack(
        &tar_of(&[
            file("var/new", b"n"),
            file("var/.wh..wh..opq", b""),
            file("etc/.wh.motd", b""),
        ]),
        &s.target,
        Whiteouts::Apply,
    )
    .unwrap();
    let root = &s.target;
    assert!(!root.join("etc/motd").exists());
    assert!(root.join("etc/keep").exists());
    assert!(!root.join("var/old").exists() && !root.join("var/sub").exists());
    assert_eq!(std::fs::read(root.join("var/new")).unwrap(), b"n");
}

fn layer_blob(dir: &Path, tar: &[u8]) -> Layer {
    let d = digest::of(tar);
    let path = dir.join(digest::hex_of(&d).unwrap());
    std::fs::write(&path, tar).unwrap();
    Layer {
        digest: d,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        size: tar.len() as u64,
        path,
    }
}

#[test]
fn overlay_root_shows_the_layers_merged_and_keeps_them_unchanged() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let l1 = layer_blob(
        &blobs,
        &tar_of(&[
            file("etc/motd", b"hi"),
            file("etc/os", b"one"),
            file("var/log/a", b"a"),
        ]),
    );
    let l2 = layer_blob(
        &blobs,
        &tar_of(&[
            file("etc/.wh.motd", b""),
            file("etc/os", b"two"),
            file("var/.wh..wh..opq", b""),
        ]),
    );
    let store = LayerStore::new(tmp.path().join("layers"));
    let c1 = store
        .rootfs(&[l1.clone(), l2.clone()], &tmp.path().join("c1"))
        .unwrap();
    assert_eq!(c1.kind, RootKind::Overlay, "overlayfs works on this host");
    let root = &c1.path;
    assert!(!root.join("etc/motd").exists(), "whited out");
    assert_eq!(std::fs::read(root.join("etc/os")).unwrap(), b"two");
    assert!(!root.join("var/log").exists(), "opaque");
    // A write lands in the container's upper dir only.
    std::fs::write(root.join("etc/os"), b"mine").unwrap();
    let c2 = store
        .rootfs(&[l1.clone(), l2.clone()], &tmp.path().join("c2"))
        .unwrap();
    assert_eq!(std::fs::read(c2.path.join("etc/os")).unwrap(), b"two");
    assert_eq!(
        std::fs::read(store.path_of(&l2.digest).unwrap().join("etc/os")).unwrap(),
        b"two"
    );
    // The same layer is extracted once and shared.
    let again = store.extracted(&l1).unwrap();
    assert_eq!(again, store.path_of(&l1.digest).unwrap());
    for r in [c1, c2] {
        LayerStore::remove(&r).unwrap();
        assert!(!r.dir.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(tmp.path().to_str().unwrap()), "unmounted");
}

#[test]
fn a_refused_layer_leaves_no_extracted_directory() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bad = layer_blob(tmp.path(), &tar_of(&[file("../evil", b"x")]));
    let store = LayerStore::new(tmp.path().join("layers"));
    let err = store.extracted(&bad).unwrap_err().to_string();
    assert!(err.contains(&bad.digest) && err.contains("escape"), "{err}");
    assert!(!store.path_of(&bad.digest).unwrap().exists());
    let tmps: Vec<_> = std::fs::read_dir(tmp.path().join("layers/tmp"))
        .unwrap()
        .collect();
    assert!(tmps.is_empty(), "temporary extraction removed: {tmps:?}");
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn where_overlayfs_cannot_be_used_the_layers_are_copied() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let l1 = layer_blob(
        tmp.path(),
        &tar_of(&[file("etc/motd", b"hi"), file("etc/os", b"one")]),
    );
    let l2 = layer_blob(
        tmp.path(),
        &tar_of(&[file("etc/.wh.motd", b""), file("etc/os", b"two")]),
    );
    let store = LayerStore::new(tmp.path().join("layers"));
    // A comma cannot be written in overlayfs mount options.
    let r = store.rootfs(&[l1, l2], &tmp.path().join("pod,1")).unwrap();
    assert_eq!(r.kind, RootKind::Copy);
    assert!(!r.path.join("etc/motd").exists());
    assert_eq!(std::fs::read(r.path.join("etc/os")).unwrap(), b"two");
    LayerStore::remove(&r).unwrap();
    assert!(!r.dir.exists());
}
