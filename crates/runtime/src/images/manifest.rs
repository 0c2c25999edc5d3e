//! The OCI JSON documents the store reads: image manifests, image indexes
//! (Docker manifest lists too) and their descriptors. Parsed here rather
//! than through `oci-client`'s types so that unknown architectures and
//! annotations survive untouched and parsing errors name the document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ImageError;

/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest media type skiff asks registries for.
pub(crate) const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// The `org.opencontainers.image.ref.name` annotation of an OCI layout.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A platform as written in an index entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformJson>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A manifest document of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Document {
    Manifest(Manifest),
    Index(Index),
}

impl Document {
    /// Parses a manifest or index; `media_type` (from the registry's
    /// Content-Type or a descriptor) decides when the body does not say.
    pub(crate) fn parse(
        bytes: &[u8],
        media_type: Option<&str>,
        what: &str,
    ) -> Result<Document, ImageError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::Invalid(format!("{what} is not JSON: {e}")))?;
        let declared = value["mediaType"].as_str().or(media_type).unwrap_or("");
        let is_index =
            declared == OCI_INDEX || declared == DOCKER_LIST || value.get("manifests").is_some();
        let bad = |e: serde_json::Error| {
            ImageError::Invalid(format!("{what} is not a valid manifest: {e}"))
        };
        if is_index {
            Ok(Document::Index(serde_json::from_value(value).map_err(bad)?))
        } else {
            Ok(Document::Manifest(
                serde_json::from_value(value).map_err(bad)?,
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    #[test]
    fn index_and_manifest_are_told_apart() {
        let idx = br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:00","size":1,"platform":{"os":"linux","architecture":"riscv64"}}]}"#;
        assert!(matches!(
            Document::parse(idx, None, "t").unwrap(),
            Document::Index(_)
        ));
        let man = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:00","size":2},"layers":[]}"#;
        assert!(matches!(
            Document::parse(man, None, "t").unwrap(),
            Document::Manifest(_)
        ));
        let err = Document::parse(b"{\"schemaVersion\":2}", None, "the manifest of x").unwrap_err();
        assert!(err.to_string().contains("the manifest of x"), "{err}");
    }
}
