//! Registry credentials from Kubernetes `imagePullSecrets`.
//!
//! A `kubernetes.io/dockerconfigjson` Secret holds `.dockerconfigjson`:
//! `{"auths": {"registry": {"username", "password"} | {"auth": base64(user:pass)}}}`;
//! the older `kubernetes.io/dockercfg` holds the inner map alone. Both are
//! read. Keys may be bare hosts or URLs (`https://index.docker.io/v1/`);
//! they are matched to a reference's registry by host, as the kubelet's
//! credential keyring does for plain hosts.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use super::ImageError;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry host (`registry.example.com:5000`), normalized.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password: this ends up in logs.
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The credentials in a `.dockerconfigjson` (or `.dockercfg`) Secret value.
pub fn auths_from_dockerconfigjson(bytes: &[u8]) -> Result<Vec<RegistryAuth>, ImageError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::DockerConfig(format!("not JSON: {e}")))?;
    let map = match doc.get("auths") {
        Some(auths) => auths,
        None => &doc,
    };
    let map = map.as_object().ok_or_else(|| {
        ImageError::DockerConfig("\"auths\" must be an object of registries".into())
    })?;
    map.iter()
        .map(|(key, entry)| entry_auth(key, entry))
        .collect()
}

fn entry_auth(key: &str, entry: &Value) -> Result<RegistryAuth, ImageError> {
    let registry = normalize_registry(key);
    let field = |name: &str| entry[name].as_str().filter(|s| !s.is_empty());
    let (username, password) = match (field("username"), field("password"), field("auth")) {
        (Some(u), Some(p), _) => (u.to_string(), p.to_string()),
        (_, _, Some(auth)) => decode_auth(key, auth)?,
        _ => {
            return Err(ImageError::DockerConfig(format!(
                "the entry for {key} has neither username/password nor auth"
            )))
        }
    };
    Ok(RegistryAuth {
        registry,
        username,
        password,
    })
}

fn decode_auth(key: &str, auth: &str) -> Result<(String, String), ImageError> {
    let bad = |why: &str| ImageError::DockerConfig(format!("the auth of {key} {why}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| bad("is not user:password"))?;
    Ok((u.to_string(), p.to_string()))
}

/// `https://Index.Docker.io/v1/` → `docker.io`; `host:5000/path` → `host:5000`.
fn normalize_registry(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The credentials to use for `registry`, anonymous when none match.
pub(crate) fn for_registry(
    auths: &[RegistryAuth],
    registry: &str,
) -> oci_client::secrets::RegistryAuth {
    let wanted = normalize_registry(registry);
    auths
        .iter()
        .find(|a| normalize_registry(&a.registry) == wanted)
        .map(|a| oci_client::secrets::RegistryAuth::Basic(a.username.clone(), a.password.clone()))
        .unwrap_or(oci_client::secrets::RegistryAuth::Anonymous)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    #[test]
    fn dockerconfigjson_as_kubectl_create_secret_docker_registry_writes_it() {
        // `kubectl create secret docker-registry` writes username, password
        // and auth; `docker login` writes only auth.
        let json = br#"{"auths":{
            "registry.example.com:5000":{"username":"ann","password":"s3cret","auth":"YW5uOnMzY3JldA=="},
            "https://index.docker.io/v1/":{"auth":"Ym9iOnA6dw=="}}}"#;
        let mut auths = auths_from_dockerconfigjson(json).unwrap();
        auths.sort_by(|a, b| a.registry.cmp(&b.registry));
        assert_eq!(auths[0].registry, "docker.io");
        assert_eq!(
            (auths[0].username.as_str(), auths[0].password.as_str()),
            ("bob", "p:w")
        );
        assert_eq!(auths[1].registry, "registry.example.com:5000");
        assert_eq!(auths[1].password, "s3cret");
        assert!(
            !format!("{:?}", auths[1]).contains("s3cret"),
            "Debug hides the password"
        );

        match for_registry(&auths, "index.docker.io") {
            oci_client::secrets::RegistryAuth::Basic(u, _) => assert_eq!(u, "bob"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            for_registry(&auths, "127.0.0.1:5000"),
            oci_client::secrets::RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn legacy_dockercfg_without_the_auths_wrapper() {
        let json = br#"{"quay.io":{"auth":"dTpw"}}"#;
        let auths = auths_from_dockerconfigjson(json).unwrap();
        assert_eq!(auths[0].registry, "quay.io");
        assert_eq!(auths[0].username, "u");
    }

    #[test]
    fn broken_secrets_say_what_is_wrong() {
        let err = auths_from_dockerconfigjson(b"nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
        let err = auths_from_dockerconfigjson(br#"{"auths":{"r":{"auth":"%%%"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not base64"), "{err}");
        let err = auths_from_dockerconfigjson(br#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("user:password"), "{err}");
        let err = auths_from_dockerconfigjson(br#"{"auths":{"r":{}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither"), "{err}");
        let err = auths_from_dockerconfigjson(br#"{"auths":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("object"), "{err}");
    }
}
