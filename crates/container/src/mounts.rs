//! The container's filesystem view, built by the init in its fresh mount
//! namespace: the rootfs bound onto itself, `/proc`, a small `/dev`, `/sys`,
//! the spec's bind mounts, then `pivot_root` so the host is out of reach.

use std::fs;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Context, Error, Result};
use crate::spec::Spec;

const NONE: Option<&str> = None;

/// Host device nodes every container gets, bound into its tmpfs `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/proc` files hidden behind `/dev/null`, and directories behind an empty
/// read-only tmpfs, as Kubernetes' runtimes do for unprivileged containers.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// `/proc` entries made read-only for unprivileged containers.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn do_mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, target, fstype, flags, data).ctx(|| {
        let what = fstype
            .map(str::to_string)
            .or_else(|| src.map(|s| s.display().to_string()));
        format!("mount {} on {}", what.unwrap_or_default(), target.display())
    })
}

/// Resolves `path` (absolute, as seen in the container) inside `root`,
/// following symlinks as if `root` were `/`, so that an image's symlink such
/// as `/etc -> /host/etc` cannot send a mount outside the rootfs.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut out = PathBuf::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.components().next() {
            Some(Component::RootDir) | Some(Component::CurDir) | None => continue,
            Some(Component::ParentDir) => {
                out.pop();
                continue;
            }
            _ => {}
        }
        let candidate = out.join(&part);
        let host = root.join(&candidate);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::Spec(format!(
                        "too many symlinks in {}",
                        path.display()
                    )));
                }
                let target = fs::read_link(&host).ctx(|| format!("readlink {}", host.display()))?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for c in target.components().rev() {
                    todo.push(PathBuf::from(c.as_os_str()));
                }
            }
            _ => out = candidate,
        }
    }
    Ok(root.join(out))
}

/// Makes `target` a directory, or an empty file when mounting a file.
fn ensure_mountpoint(target: &Path, file: bool) -> Result<()> {
    if file {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
        }
        if !target.exists() {
            fs::File::create(target).ctx(|| format!("create {}", target.display()))?;
        }
        Ok(())
    } else {
        fs::create_dir_all(target).ctx(|| format!("mkdir {}", target.display()))
    }
}

/// Builds the whole view and pivots into it. Runs in the init, in a new
/// mount namespace; on return `/` is the container's root.
pub(crate) fn setup(spec: &Spec) -> Result<()> {
    let root = spec.rootfs.as_path();
    // Nothing done here may propagate back to the host's mounts.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    do_mount(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;

    let proc_dir = resolve_in_root(root, Path::new("/proc"))?;
    ensure_mountpoint(&proc_dir, false)?;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    do_mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;

    setup_dev(root)?;

    let sys_dir = resolve_in_root(root, Path::new("/sys"))?;
    ensure_mountpoint(&sys_dir, false)?;
    let ro = if spec.privileged {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    if do_mount(
        Some(Path::new("sysfs")),
        &sys_dir,
        Some("sysfs"),
        nosuid_nodev_noexec | ro,
        None,
    )
    .is_err()
    {
        // A joined network namespace owned by another user namespace refuses
        // a new sysfs; the host's, read-only, is what runc falls back to too.
        do_mount(
            Some(Path::new("/sys")),
            &sys_dir,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        if !spec.privileged {
            remount_readonly(&sys_dir, MsFlags::MS_REC)?;
        }
    }

    for m in &spec.mounts {
        let target = resolve_in_root(root, &m.destination)?;
        let meta =
            fs::metadata(&m.source).ctx(|| format!("mount source {}", m.source.display()))?;
        ensure_mountpoint(&target, !meta.is_dir())?;
        do_mount(
            Some(&m.source),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        if m.readonly {
            remount_readonly(&target, MsFlags::empty())?;
        }
    }

    pivot(root)?;

    if !spec.privileged {
        mask_paths()?;
    }
    if spec.readonly_rootfs {
        remount_readonly(Path::new("/"), MsFlags::empty())?;
    }
    Ok(())
}

fn remount_readonly(target: &Path, extra: MsFlags) -> Result<()> {
    // A bind remount keeps the flags the kernel locked on the source (nosuid,
    // nodev, …) only if they are repeated; read them from statvfs.
    let locked = nix::sys::statvfs::statvfs(target)
        .map(|s| {
            let f = s.flags();
            let mut m = MsFlags::empty();
            use nix::sys::statvfs::FsFlags as F;
            for (a, b) in [
                (F::ST_NOSUID, MsFlags::MS_NOSUID),
                (F::ST_NODEV, MsFlags::MS_NODEV),
                (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
            ] {
                if f.contains(a) {
                    m |= b;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked | extra;
    do_mount(None, target, None, flags, None)
}

fn setup_dev(root: &Path) -> Result<()> {
    let dev = resolve_in_root(root, Path::new("/dev"))?;
    ensure_mountpoint(&dev, false)?;
    do_mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        ensure_mountpoint(&target, true)?;
        do_mount(Some(&host), &target, None, MsFlags::MS_BIND, None)?;
    }
    let pts = dev.join("pts");
    ensure_mountpoint(&pts, false)?;
    do_mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = dev.join("shm");
    ensure_mountpoint(&shm, false)?;
    do_mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let mqueue = dev.join("mqueue");
    ensure_mountpoint(&mqueue, false)?;
    // Optional: only possible in an IPC namespace this process owns.
    let _ = mount(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    );
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        std::os::unix::fs::symlink(target, &p).ctx(|| format!("symlink {}", p.display()))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` stacks the old root under the new one; detaching
/// it leaves nothing of the host reachable.
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).ctx(|| format!("chdir {}", root.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root {}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root".to_string())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".to_string())
}

fn mask_paths() -> Result<()> {
    for p in MASKED {
        let path = Path::new(p);
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            do_mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?;
        } else {
            do_mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for p in READONLY {
        let path = Path::new(p);
        if !path.exists() {
            continue;
        }
        do_mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_readonly(path, MsFlags::MS_REC)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        fs::create_dir_all(root.join("real/etc")).expect("mkdir");
        std::os::unix::fs::symlink("/real/etc", root.join("etc")).expect("symlink");
        std::os::unix::fs::symlink("../../../../..", root.join("up")).expect("symlink");
        assert_eq!(
            resolve_in_root(root, Path::new("/etc/hosts")).expect("r"),
            root.join("real/etc/hosts")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/up/etc/passwd")).expect("r"),
            root.join("real/etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/a/../../b")).expect("r"),
            root.join("b")
        );
    }
}
