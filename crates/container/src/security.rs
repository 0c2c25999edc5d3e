//! Who the container process is: capabilities, user and groups, and
//! `no_new_privs`, applied by the init (and the exec helper) right before exec.

use rustix::thread::{self as rt, CapabilitySet, CapabilitySets};

use crate::error::{Context, Error, Result};
use crate::spec::Spec;

/// The capabilities a Kubernetes container gets by default: the container
/// runtimes' default set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability the running kernel knows (`cap_last_cap`).
fn kernel_capabilities() -> CapabilitySet {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63);
    CapabilitySet::from_bits_retain(if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    })
}

fn parse_capability(name: &str) -> Result<CapabilitySet> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(kernel_capabilities());
    }
    CapabilitySet::from_name(bare)
        .ok_or_else(|| Error::Spec(format!("unknown capability {name:?}")))
}

/// The bounding set for `spec`: the default set plus `add` minus `drop`, or
/// everything the kernel knows when privileged.
pub fn capability_set(spec: &Spec) -> Result<CapabilitySet> {
    if spec.privileged {
        return Ok(kernel_capabilities());
    }
    let mut set = CapabilitySet::empty();
    for name in DEFAULT_CAPABILITIES.iter().copied() {
        set |= parse_capability(name)?;
    }
    for name in &spec.capabilities.add {
        set |= parse_capability(name)?;
    }
    for name in &spec.capabilities.drop {
        set &= !parse_capability(name)?;
    }
    Ok(set & kernel_capabilities())
}

/// Drops what the container may not have, then becomes its user. Root keeps
/// the set as effective and permitted; any other user starts with none (as
/// Kubernetes' runtimes do), the set bounding what file capabilities grant.
pub(crate) fn apply(spec: &Spec) -> Result<()> {
    let keep = capability_set(spec)?;
    let all = kernel_capabilities();
    for bit in 0..64u32 {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if all.contains(cap) && !keep.contains(cap) {
            rt::remove_capability_from_bounding_set(cap)
                .map_err(std::io::Error::from)
                .ctx(|| format!("drop capability bit {bit} from the bounding set"))?;
        }
    }
    let u = &spec.user;
    let groups: Vec<nix::unistd::Gid> = u
        .additional_gids
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).ctx(|| "setgroups".to_string())?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(u.gid)).ctx(|| format!("setgid {}", u.gid))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(u.uid)).ctx(|| format!("setuid {}", u.uid))?;
    let held = if u.uid == 0 {
        keep
    } else {
        CapabilitySet::empty()
    };
    rt::set_capabilities(
        None,
        CapabilitySets {
            effective: held,
            permitted: held,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(std::io::Error::from)
    .ctx(|| "capset".to_string())?;
    // Kernels before 4.3 have no ambient set; there is nothing to clear then.
    let _ = rt::clear_ambient_capability_set();
    if !spec.privileged {
        rt::set_no_new_privs(true)
            .map_err(std::io::Error::from)
            .ctx(|| "set no_new_privs".to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_add_drop() {
        let mut spec = Spec::default();
        let set = capability_set(&spec).expect("set");
        assert_eq!(set.bits().count_ones(), 14);
        assert!(set.contains(CapabilitySet::NET_BIND_SERVICE));
        spec.capabilities.add = vec!["NET_ADMIN".into()];
        spec.capabilities.drop = vec!["CAP_CHOWN".into()];
        let set = capability_set(&spec).expect("set");
        assert!(set.contains(CapabilitySet::NET_ADMIN));
        assert!(!set.contains(CapabilitySet::CHOWN));
        spec.capabilities.drop = vec!["ALL".into()];
        assert!(capability_set(&spec).expect("set").is_empty());
        spec.capabilities.add = vec!["NOPE".into()];
        assert!(capability_set(&spec).is_err());
    }
}
