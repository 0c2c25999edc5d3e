//! Image references as pods write them, normalized the way Kubernetes and
//! containerd do (`nginx` → `docker.io/library/nginx:latest`).

use oci_client::Reference;

use super::ImageError;

/// A parsed reference.
#[derive(Debug, Clone)]
pub(crate) struct Ref {
    pub oci: Reference,
    /// The normalized reference, the store's key.
    pub whole: String,
    /// The registry host the client talks to (`index.docker.io` for
    /// Docker Hub, `127.0.0.1:5000`, …).
    pub registry: String,
}

pub(crate) fn parse(reference: &str) -> Result<Ref, ImageError> {
    let oci: Reference =
        reference
            .parse()
            .map_err(|e: oci_client::ParseError| ImageError::InvalidReference {
                reference: reference.to_string(),
                reason: e.to_string(),
            })?;
    // The distribution grammar (and so containerd) allows only lowercase
    // repository names; some parsers are lenient, registries are not.
    if oci.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: "repository name must be lowercase".into(),
        });
    }
    Ok(Ref {
        whole: oci.whole(),
        registry: oci.resolve_registry().to_string(),
        oci,
    })
}

impl Ref {
    /// The same repository at `digest`.
    pub(crate) fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.oci.registry().to_string(),
            self.oci.repository().to_string(),
            digest.to_string(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    #[test]
    fn short_names_normalize_like_kubernetes() {
        let r = parse("nginx").unwrap();
        assert_eq!(r.whole, "docker.io/library/nginx:latest");
        assert_eq!(r.registry, "index.docker.io");
        let r = parse("127.0.0.1:5000/skiff/hello:v1").unwrap();
        assert_eq!(r.whole, "127.0.0.1:5000/skiff/hello:v1");
        assert_eq!(r.registry, "127.0.0.1:5000");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(r.at(&d).whole(), format!("127.0.0.1:5000/skiff/hello@{d}"));
    }

    #[test]
    fn malformed_references_are_invalid() {
        // kubelet reports InvalidImageName for these.
        for bad in ["", "UPPER/case:1", "a b", "x:@"] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, ImageError::InvalidReference { .. }),
                "{bad}: {err}"
            );
        }
    }
}
