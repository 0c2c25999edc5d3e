//! Platforms (`os/architecture[/variant]`) and choosing one manifest from
//! an image index.
//!
//! A Wasm-first node prefers a `wasm` entry (`wasi/wasm`, `wasip1/wasm`,
//! …) when an index offers one, because that is what its wasmtime handler
//! runs; otherwise it takes the entry for its own os/architecture, as the
//! kubelet's container runtime does.

use std::fmt;

use super::manifest::{Descriptor, Index};

use super::ImageError;

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without a variant.
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// The platform this process runs on, in OCI (GOARCH) spelling.
    pub fn node() -> Platform {
        Platform::new(
            std::env::consts::OS,
            &Self::oci_arch(std::env::consts::ARCH),
        )
    }

    /// Rust's architecture names to the GOARCH names OCI uses
    /// (`x86_64` → `amd64`, `aarch64` → `arm64`); others pass through.
    pub fn oci_arch(arch: &str) -> String {
        match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        }
        .to_string()
    }

    /// Whether this platform is a Wasm one (architecture `wasm`).
    pub fn is_wasm(&self) -> bool {
        self.architecture == "wasm"
    }

    fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        // An image for `arm64` with no variant runs on any `arm64/v8`
        // node; a variant the node asks for must match when both say one.
        let variant_ok = match (self.variant.as_deref(), variant) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        self.os == os && self.architecture == arch && variant_ok
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The manifest of `index` to use on a node of `platform`.
pub(crate) fn resolve<'a>(
    index: &'a Index,
    platform: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, ImageError> {
    let wasm = index.manifests.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.architecture == "wasm")
    });
    let native = || {
        index.manifests.iter().find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
    };
    wasm.or_else(native)
        .ok_or_else(|| ImageError::NoPlatformMatch {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            offered: offered(index),
        })
}

fn offered(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .map(|e| match &e.platform {
            Some(p) => {
                let mut s = format!("{}/{}", p.os, p.architecture);
                if let Some(v) = &p.variant {
                    s.push('/');
                    s.push_str(v);
                }
                s
            }
            None => format!("{} (no platform)", e.digest),
        })
        .collect();
    if list.is_empty() {
        "nothing".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> Index {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = (*v).into();
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i),
                    "size": 10,
                    "platform": p,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    #[test]
    fn node_platform_uses_oci_architecture_names() {
        assert_eq!(Platform::oci_arch("x86_64"), "amd64");
        assert_eq!(Platform::oci_arch("aarch64"), "arm64");
        assert_eq!(Platform::oci_arch("riscv64"), "riscv64");
        assert_eq!(Platform::node().os, "linux");
    }

    #[test]
    fn index_resolves_to_the_nodes_platform() {
        let idx = index(&[("linux", "amd64", None), ("linux", "arm64", Some("v8"))]);
        let e = resolve(&idx, &Platform::new("linux", "arm64"), "x").unwrap();
        assert_eq!(e.digest, format!("sha256:{:064x}", 1));
    }

    #[test]
    fn a_wasm_entry_wins_on_a_wasm_first_node() {
        let idx = index(&[("linux", "amd64", None), ("wasip1", "wasm", None)]);
        let e = resolve(&idx, &Platform::new("linux", "amd64"), "x").unwrap();
        assert_eq!(e.digest, format!("sha256:{:064x}", 1));
    }

    #[test]
    fn no_match_lists_what_the_index_offers() {
        // Like containerd's "no match for platform in manifest" / docker's
        // "no matching manifest for linux/riscv64 in the manifest list entries".
        let idx = index(&[("linux", "amd64", None), ("linux", "arm64", Some("v8"))]);
        let err = resolve(&idx, &Platform::new("linux", "riscv64"), "r/x:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux/riscv64"), "{err}");
        assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
    }

    #[test]
    fn variant_must_agree_when_both_name_one() {
        let idx = index(&[("linux", "arm", Some("v6"))]);
        let mut want = Platform::new("linux", "arm");
        want.variant = Some("v7".into());
        assert!(resolve(&idx, &want, "x").is_err());
        want.variant = None;
        assert!(resolve(&idx, &want, "x").is_ok());
    }
}
