//! Namespaces that outlive their processes: what `ip netns add` does for
//! network namespaces, for the IPC namespace a pod's containers share.
//!
//! A new namespace is made by a short-lived thread that unshares it (a
//! thread may take a new IPC namespace of its own even in a multi-threaded
//! process) and bind-mounts its `/proc/thread-self/ns/ipc` onto a file;
//! the mount keeps the namespace alive after the thread is gone, and
//! containers join it through that file.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Context, Error, Result};

/// Make a new IPC namespace kept alive by the bind mount `path`. An
/// existing namespace there is left as it is.
pub fn create_ipc(path: &Path) -> Result<()> {
    if is_mounted(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    std::fs::File::create(path).ctx(|| format!("create {}", path.display()))?;
    let target = path.to_path_buf();
    std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWIPC).ctx(|| "unshare an IPC namespace".to_string())?;
        mount(
            Some("/proc/thread-self/ns/ipc"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind the IPC namespace to {}", target.display()))
    })
    .join()
    .map_err(|_| Error::Spec("the namespace thread panicked".into()))?
}

/// Remove a namespace made by [`create_ipc`]: the namespace ends when its
/// last process does. Nothing there is fine.
pub fn remove(path: &Path) -> Result<()> {
    if is_mounted(path) {
        umount2(path, MntFlags::MNT_DETACH).ctx(|| format!("unmount {}", path.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Whether `path` is a mount point (a namespace file in place).
fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn inode(path: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).expect("stat"))
    }

    #[test]
    fn an_ipc_namespace_lives_as_long_as_its_file() {
        if !nix::unistd::Uid::effective().is_root() {
            panic!("this test needs root (unshare and mount)");
        }
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("ipc");
        create_ipc(&file).expect("create");
        assert!(is_mounted(&file));
        // A namespace (nsfs inode) other than this thread's.
        let ours = inode(Path::new("/proc/thread-self/ns/ipc"));
        let theirs = inode(&file);
        assert_ne!(ours, theirs);
        let before = std::fs::metadata(&file).expect("stat").dev();
        assert_ne!(
            before,
            std::fs::metadata(dir.path()).expect("stat").dev(),
            "not the tmp fs"
        );
        create_ipc(&file).expect("again: kept");
        remove(&file).expect("remove");
        assert!(!is_mounted(&file) && !file.exists());
        remove(&file).expect("nothing there is fine");
    }
}
