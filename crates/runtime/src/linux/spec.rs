//! From a resolved [`ContainerConfig`] to the launcher's [`container::Spec`]:
//! environment, working directory, user, capabilities, mounts and cgroup,
//! each field decided as the kubelet and containerd decide it.
//!
//! Nothing here touches the system except reading the rootfs'
//! `/etc/passwd` and `/etc/group` to resolve an image's `User` given by
//! name.

use std::path::{Path, PathBuf};

use crate::cri::{ContainerConfig, LinuxConfig, RuntimeError};

/// Where a container's files live, decided by the runtime.
pub struct Paths<'a> {
    /// The prepared root file system.
    pub rootfs: &'a Path,
    /// The launcher's state dir.
    pub state: &'a Path,
    /// The pod's generated `/etc` files (`hosts`, `hostname`,
    /// `resolv.conf`).
    pub etc: &'a Path,
}

/// Node-wide settings that shape every spec.
#[derive(Debug, Clone, Default)]
pub struct NodeLimits {
    /// `pids.max` for each container unless something lower is asked.
    pub pids_max: Option<u64>,
    /// The executable re-executed as shim and init (`/proc/self/exe` when
    /// None).
    pub exe: Option<PathBuf>,
}

/// The launcher id of a container: `<uid without dashes, 12>-<name>`.
pub fn container_id(pod_uid: &str, name: &str) -> String {
    let uid: String = pod_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{uid}-{name}")
}

/// The pod's cgroup, relative to each hierarchy's root.
pub fn pod_cgroup(pod_uid: &str) -> PathBuf {
    let uid: String = pod_uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    PathBuf::from("skiff").join(format!("pod{uid}"))
}

/// Build the spec for `config`, whose Linux part is `linux`.
pub fn build(
    config: &ContainerConfig,
    linux: &LinuxConfig,
    paths: &Paths<'_>,
    node: &NodeLimits,
) -> Result<container::Spec, RuntimeError> {
    if config.args.is_empty() {
        return Err(RuntimeError::Config(
            "no command specified: the image has no Entrypoint or Cmd and the container no command"
                .into(),
        ));
    }
    let user = resolve_user(linux, paths.rootfs)?;
    if linux.security.run_as_non_root && user.uid == 0 {
        // The kubelet's wording.
        return Err(RuntimeError::Config(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }
    let env = merge_env(&linux.image.env, &config.env, &linux.hostname, &user.home);
    let cwd = linux
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(linux.image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut mounts: Vec<container::Mount> = config
        .mounts
        .iter()
        .map(|m| container::Mount {
            source: m.host_path.clone(),
            destination: PathBuf::from(&m.container_path),
            readonly: m.read_only,
        })
        .collect();
    // The pod's own /etc files, unless a volume is mounted there.
    for name in ["hosts", "hostname", "resolv.conf"] {
        let dest = PathBuf::from("/etc").join(name);
        if mounts.iter().any(|m| m.destination == dest) {
            continue;
        }
        mounts.push(container::Mount {
            source: paths.etc.join(name),
            destination: dest,
            readonly: false,
        });
    }
    let resources = container::Resources {
        memory_limit: config.limits.memory_bytes,
        cpu_limit_milli: config.limits.cpu_millis,
        cpu_request_milli: linux.cpu_request_millis,
        pids_max: node.pids_max,
    };
    let s = &linux.security;
    Ok(container::Spec {
        id: container_id(&config.pod_uid, &config.container_name),
        state_dir: paths.state.to_path_buf(),
        rootfs: paths.rootfs.to_path_buf(),
        args: config.args.clone(),
        env,
        cwd: cwd.into(),
        hostname: Some(linux.hostname.clone()),
        user: container::User {
            uid: user.uid,
            gid: user.gid,
            additional_gids: s.supplemental_groups.clone(),
        },
        capabilities: container::Capabilities {
            add: s.capabilities_add.clone(),
            drop: s.capabilities_drop.clone(),
        },
        privileged: s.privileged,
        readonly_rootfs: s.read_only_root_filesystem,
        mounts,
        namespaces: container::Namespaces {
            network: linux.netns.clone(),
            ipc: linux.ipcns.clone(),
        },
        cgroup: Some(container::CgroupSpec {
            path: pod_cgroup(&config.pod_uid).join(&config.container_name),
            resources,
        }),
        exe: node.exe.clone(),
    })
}

/// The environment: `HOSTNAME`, then the image's `Env`, then the
/// container's (later entries win, keeping the first position); `PATH`
/// and `HOME` get defaults when neither sets them.
pub fn merge_env(
    image: &[String],
    container: &[(String, String)],
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut out: Vec<(String, String)> = vec![("HOSTNAME".into(), hostname.into())];
    let image = image.iter().filter_map(|kv| {
        kv.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    });
    for (k, v) in image.chain(container.iter().cloned()) {
        match out.iter_mut().find(|(have, _)| *have == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), container::DEFAULT_PATH.into()));
    }
    if !out.iter().any(|(k, _)| k == "HOME") {
        out.push(("HOME".into(), home.into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// `runAsUser`/`runAsGroup`, else the image's `User` (numeric, or a name
/// looked up in the rootfs' `/etc/passwd` and `/etc/group`).
pub fn resolve_user(linux: &LinuxConfig, rootfs: &Path) -> Result<ResolvedUser, RuntimeError> {
    let passwd = read_etc(rootfs, "passwd");
    let group = read_etc(rootfs, "group");
    let (image_user, image_group) = match linux.image.user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (linux.image.user.as_str(), None),
    };
    let by_uid = |uid: u32| passwd_entries(&passwd).find(|e| e.1 == uid);
    let (uid, mut gid, home) = match linux.security.run_as_user {
        Some(uid) => {
            let e = by_uid(uid);
            (uid, e.as_ref().map(|e| e.2), e.map(|e| e.3))
        }
        None if image_user.is_empty() => {
            let e = by_uid(0);
            (0, e.as_ref().map(|e| e.2), e.map(|e| e.3))
        }
        None => match image_user.parse::<u32>() {
            Ok(uid) => {
                let e = by_uid(uid);
                (uid, e.as_ref().map(|e| e.2), e.map(|e| e.3))
            }
            Err(_) => {
                let e = passwd_entries(&passwd)
                    .find(|e| e.0 == image_user)
                    .ok_or_else(|| {
                        RuntimeError::Config(format!(
                            "unable to find user {image_user}: no matching entries in passwd file"
                        ))
                    })?;
                (e.1, Some(e.2), Some(e.3))
            }
        },
    };
    if linux.security.run_as_user.is_none() {
        if let Some(g) = image_group.filter(|g| !g.is_empty()) {
            gid = Some(match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => group
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.first() == Some(&g))
                    .and_then(|f| f.get(2).and_then(|n| n.parse().ok()))
                    .ok_or_else(|| {
                        RuntimeError::Config(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            });
        }
    }
    let gid = linux.security.run_as_group.or(gid).unwrap_or(0);
    Ok(ResolvedUser {
        uid,
        gid,
        home: home.filter(|h| !h.is_empty()).unwrap_or_else(|| "/".into()),
    })
}

/// `(name, uid, gid, home)` of each well-formed passwd line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (String, u32, u32, String)> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((
            (*f.first()?).to_string(),
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
            f.get(5).copied().unwrap_or("/").to_string(),
        ))
    })
}

/// A file of the rootfs' `/etc`, read only when it is a regular file (a
/// symlink could point at the host's files) and small.
fn read_etc(rootfs: &Path, name: &str) -> String {
    let path = rootfs.join("etc").join(name);
    let etc_ok = std::fs::symlink_metadata(rootfs.join("etc")).is_ok_and(|m| m.is_dir());
    match std::fs::symlink_metadata(&path) {
        Ok(m) if etc_ok && m.is_file() && m.len() < 1 << 20 => {
            std::fs::read_to_string(&path).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// `/etc/hosts` of a pod, as the kubelet writes it.
pub fn hosts_file(pod_ip: &str, hostname: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{pod_ip}\t{hostname}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{Limits, Mount, Security};
    use crate::images::ImageConfig;

    fn config() -> (ContainerConfig, LinuxConfig) {
        let linux = LinuxConfig {
            image: ImageConfig {
                env: vec![
                    "PATH=/usr/bin:/bin".into(),
                    "A=image".into(),
                    "B=image".into(),
                ],
                working_dir: "/srv".into(),
                ..Default::default()
            },
            hostname: "web-0".into(),
            ..Default::default()
        };
        let c = ContainerConfig {
            namespace: "default".into(),
            pod_name: "web-0".into(),
            pod_uid: "0123abcd-4567-89ef-0000-000000000000".into(),
            container_name: "app".into(),
            image_digest: "sha256:00".into(),
            module_path: PathBuf::new(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("B".into(), "pod".into()), ("C".into(), "pod".into())],
            mounts: vec![Mount {
                host_path: "/data/v".into(),
                container_path: "/etc/resolv.conf".into(),
                read_only: true,
            }],
            limits: Limits {
                memory_bytes: Some(64 << 20),
                cpu_millis: Some(500),
            },
            log_path: "/tmp/x.log".into(),
            ports: vec![],
            pod_ip: "10.0.0.2".parse().expect("ip"),
            pod_labels: Default::default(),
            linux: None,
        };
        (c, linux)
    }

    #[test]
    fn env_is_image_then_container_with_defaults() {
        let (c, l) = config();
        let env = merge_env(&l.image.env, &c.env, "web-0", "/root");
        assert_eq!(
            env,
            vec![
                "HOSTNAME=web-0",
                "PATH=/usr/bin:/bin",
                "A=image",
                "B=pod",
                "C=pod",
                "HOME=/root"
            ]
        );
        let env = merge_env(&[], &[], "h", "/");
        assert!(env.contains(&format!("PATH={}", container::DEFAULT_PATH)));
    }

    #[test]
    fn spec_takes_cwd_limits_mounts_and_the_pod_cgroup() {
        let (c, mut l) = config();
        let tmp = tempfile::tempdir().expect("tmp");
        let paths = Paths {
            rootfs: tmp.path(),
            state: Path::new("/run/s"),
            etc: Path::new("/pod/etc"),
        };
        let node = NodeLimits {
            pids_max: Some(1024),
            exe: None,
        };
        let s = build(&c, &l, &paths, &node).expect("spec");
        assert_eq!(s.id, "0123abcd4567-app");
        assert_eq!(s.cwd, PathBuf::from("/srv"));
        let cg = s.cgroup.expect("cgroup");
        assert_eq!(
            cg.path,
            PathBuf::from("skiff/pod0123abcd-4567-89ef-0000-000000000000/app")
        );
        assert_eq!(cg.resources.memory_limit, Some(64 << 20));
        assert_eq!(cg.resources.pids_max, Some(1024));
        let dests: Vec<_> = s
            .mounts
            .iter()
            .map(|m| m.destination.display().to_string())
            .collect();
        assert_eq!(
            dests,
            vec!["/etc/resolv.conf", "/etc/hosts", "/etc/hostname"],
            "a volume wins over the pod's file"
        );
        l.working_dir = Some("/w".into());
        l.security = Security {
            read_only_root_filesystem: true,
            ..Default::default()
        };
        let s = build(&c, &l, &paths, &node).expect("spec");
        assert_eq!(s.cwd, PathBuf::from("/w"));
        assert!(s.readonly_rootfs);
        l.security.run_as_non_root = true;
        assert!(
            matches!(build(&c, &l, &paths, &node), Err(RuntimeError::Config(m)) if m.contains("runAsNonRoot"))
        );
        l.security.run_as_user = Some(1000);
        assert_eq!(
            build(&c, &l, &paths, &node).expect("non-root").user.uid,
            1000
        );
        let mut empty = c.clone();
        empty.args.clear();
        assert!(
            matches!(build(&empty, &l, &paths, &node), Err(RuntimeError::Config(m)) if m.contains("no command"))
        );
    }

    #[test]
    fn users_come_from_the_security_context_or_the_image() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(tmp.path().join("etc")).expect("etc");
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65533:nobody:/home/nobody:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(tmp.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        let mut l = LinuxConfig::default();
        let u = resolve_user(&l, tmp.path()).expect("root");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        l.image.user = "nobody".into();
        let u = resolve_user(&l, tmp.path()).expect("nobody");
        assert_eq!(
            (u.uid, u.gid, u.home.as_str()),
            (65534, 65533, "/home/nobody")
        );
        l.image.user = "nobody:staff".into();
        assert_eq!(resolve_user(&l, tmp.path()).expect("group").gid, 50);
        l.image.user = "1000:7".into();
        let u = resolve_user(&l, tmp.path()).expect("numeric");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 7, "/"));
        l.security.run_as_user = Some(42);
        l.security.run_as_group = Some(43);
        let u = resolve_user(&l, tmp.path()).expect("runAs");
        assert_eq!((u.uid, u.gid), (42, 43));
        l.security = Security::default();
        l.image.user = "ghost".into();
        assert!(resolve_user(&l, tmp.path()).is_err());
    }

    #[test]
    fn ids_and_hosts() {
        assert_eq!(container_id("ab-cd", "x.y"), "abcd-x_y");
        let h = hosts_file("10.244.0.5", "web");
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.244.0.5\tweb\n"));
    }
}
