//! Encryption at rest, configured as Kubernetes configures it.
//!
//! The file is an `EncryptionConfiguration` (apiserver.config.k8s.io/v1):
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//! - resources: [secrets]
//!   providers:
//!   - aesgcm:
//!       keys:
//!       - name: key1
//!         secret: <base64 of 16 or 32 random bytes>
//!   - identity: {}
//! ```
//!
//! For each listed resource the first provider encrypts what is written;
//! every provider is tried, in order, to read, so keys can be rotated (add
//! the new key first, rewrite the objects, drop the old key) and plaintext
//! written before encryption was turned on stays readable (`identity`).
//! `aesgcm` values are stored as Kubernetes stores them:
//! `k8s:enc:aesgcm:v1:<key name>:` then a random 12-byte nonce and the
//! AES-GCM ciphertext with its tag, the object's storage key being the
//! additional authenticated data — a value moved under another key does
//! not decrypt. Providers skiff does not implement (aescbc, secretbox, kms)
//! are refused with a message rather than ignored.

use std::path::Path;

use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

/// The mark every encrypted value starts with.
const ENCRYPTED: &[u8] = b"k8s:enc:";

/// Why the configuration cannot be used, or a value cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("encryption configuration {path}: {why}")]
    Config { path: String, why: String },
    #[error("cannot decrypt {key}: {why}")]
    Decrypt { key: String, why: String },
    #[error("cannot encrypt {key}: {why}")]
    Encrypt { key: String, why: String },
}

enum Provider {
    Identity,
    AesGcm(Vec<(String, LessSafeKey)>),
}

/// The configured transformations: storage prefix → providers.
pub struct Transformer {
    /// Storage prefix → the providers of the rule naming that resource
    /// (shared by every resource of one rule).
    rules: Vec<(String, std::sync::Arc<[Provider]>)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        let prefixes: Vec<&str> = self.rules.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("Transformer")
            .field("encrypts", &prefixes)
            .finish()
    }
}

/// The storage prefix of a resource as an EncryptionConfiguration names it
/// (`secrets`, `deployments.apps`).
fn prefix_of(resource: &str) -> String {
    match resource.split_once('.') {
        Some((plural, group)) => format!("/{group}/{plural}/"),
        None => format!("/core/{resource}/"),
    }
}

impl Transformer {
    /// Read an `EncryptionConfiguration` file.
    pub fn load(path: &Path) -> Result<Transformer, EncryptionError> {
        let bad = |why: String| EncryptionError::Config {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Transformer::parse(&text).map_err(bad)
    }

    /// Parse the YAML of an `EncryptionConfiguration`.
    pub fn parse(text: &str) -> Result<Transformer, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        if doc["kind"] != "EncryptionConfiguration" {
            return Err(format!(
                "kind is {}, not EncryptionConfiguration",
                doc["kind"]
            ));
        }
        let mut rules = Vec::new();
        for (i, rule) in doc["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut providers = Vec::new();
            for p in rule["providers"].as_array().into_iter().flatten() {
                providers.push(provider(p).map_err(|e| format!("resources[{i}]: {e}"))?);
            }
            if providers.is_empty() {
                return Err(format!("resources[{i}] has no providers"));
            }
            let names: Vec<&str> = rule["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if names.is_empty() {
                return Err(format!("resources[{i}] names no resources"));
            }
            if let Some(w) = names.iter().find(|n| n.contains('*')) {
                return Err(format!(
                    "resources[{i}]: wildcards ({w}) are not supported; name the resources"
                ));
            }
            let providers: std::sync::Arc<[Provider]> = providers.into();
            for name in names {
                rules.push((prefix_of(name), providers.clone()));
            }
        }
        if rules.is_empty() {
            return Err("no resources are configured".into());
        }
        Ok(Transformer {
            rules,
            rng: SystemRandom::new(),
        })
    }

    /// A new configuration with one fresh AES-256-GCM key for Secrets,
    /// identity after it; written with mode 0600.
    pub fn generate(path: &Path) -> Result<(), EncryptionError> {
        let bad = |why: String| EncryptionError::Config {
            path: path.display().to_string(),
            why,
        };
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| bad("no randomness for a key".into()))?;
        let text = format!(
            "# Written by skiff on first start: Secrets are encrypted at rest with this key.\n\
             # Keep a copy: without it, the Secrets in the store cannot be read.\n\
             apiVersion: apiserver.config.k8s.io/v1\n\
             kind: EncryptionConfiguration\n\
             resources:\n\
             - resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: key1\n        secret: {}\n  - identity: {{}}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| bad(e.to_string()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        f.sync_all().map_err(|e| bad(e.to_string()))
    }

    fn providers(&self, key: &str) -> Option<&[Provider]> {
        self.rules
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map(|(_, ps)| &**ps)
    }

    /// What to store for `plaintext` under `key`.
    pub fn seal(&self, key: &str, plaintext: Vec<u8>) -> Result<Vec<u8>, EncryptionError> {
        let Some(first) = self.providers(key).and_then(|p| p.first()) else {
            return Ok(plaintext);
        };
        let (name, k) = match first {
            Provider::Identity => return Ok(plaintext),
            Provider::AesGcm(keys) => match keys.first() {
                Some(k) => k,
                None => return Ok(plaintext),
            },
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| EncryptionError::Encrypt {
                key: key.to_string(),
                why: "no randomness for a nonce".into(),
            })?;
        let mut data = plaintext;
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(key.as_bytes()),
            &mut data,
        )
        .map_err(|_| EncryptionError::Encrypt {
            key: key.to_string(),
            why: "AES-GCM failed".into(),
        })?;
        let mut out = format!("k8s:enc:aesgcm:v1:{name}:").into_bytes();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// The plaintext of what is stored under `key`.
    pub fn open(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        open_with(Some(self), key, stored)
    }
}

/// Reads a stored value: plaintext passes, encrypted values need a
/// transformer holding their key.
pub fn open_with(
    t: Option<&Transformer>,
    key: &str,
    stored: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    if !stored.starts_with(ENCRYPTED) {
        return Ok(stored.to_vec());
    }
    let fail = |why: String| EncryptionError::Decrypt {
        key: key.to_string(),
        why,
    };
    let rest = &stored[ENCRYPTED.len()..];
    let Some(rest) = rest.strip_prefix(b"aesgcm:v1:".as_slice()) else {
        return Err(fail(
            "it was encrypted by a provider skiff does not have".into(),
        ));
    };
    let colon = rest
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(|| fail("the key name is not terminated".into()))?;
    let name = String::from_utf8_lossy(&rest[..colon]).into_owned();
    let body = &rest[colon + 1..];
    let providers = t.and_then(|t| t.providers(key)).unwrap_or(&[]);
    let k = providers
        .iter()
        .find_map(|p| match p {
            Provider::AesGcm(keys) => keys.iter().find(|(n, _)| *n == name).map(|(_, k)| k),
            Provider::Identity => None,
        })
        .ok_or_else(|| {
            fail(format!(
                "it was encrypted with aesgcm key {name:?}, which the encryption configuration does not hold"
            ))
        })?;
    if body.len() < NONCE_LEN {
        return Err(fail("it is too short".into()));
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail("bad nonce".into()))?;
    let mut data = sealed.to_vec();
    let plain = k
        .open_in_place(nonce, Aad::from(key.as_bytes()), &mut data)
        .map_err(|_| {
            fail("authentication failed (wrong key, or the value was moved or altered)".into())
        })?;
    Ok(plain.to_vec())
}

fn provider(p: &Value) -> Result<Provider, String> {
    let obj = p.as_object().ok_or("a provider must be an object")?;
    let (kind, spec) = match obj.iter().next() {
        Some(kv) if obj.len() == 1 => kv,
        _ => return Err("a provider names exactly one of aesgcm, identity".into()),
    };
    match kind.as_str() {
        "identity" => Ok(Provider::Identity),
        "aesgcm" => {
            let mut keys = Vec::new();
            for k in spec["keys"].as_array().into_iter().flatten() {
                let name = k["name"]
                    .as_str()
                    .filter(|n| !n.is_empty() && !n.contains(':'));
                let name = name.ok_or("an aesgcm key needs a name without ':'")?;
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(k["secret"].as_str().unwrap_or_default())
                    .map_err(|e| format!("key {name}: the secret is not base64: {e}"))?;
                let alg = match secret.len() {
                    16 => &aead::AES_128_GCM,
                    32 => &aead::AES_256_GCM,
                    n => {
                        return Err(format!(
                            "key {name}: {n} bytes; aesgcm keys are 16 or 32 bytes"
                        ))
                    }
                };
                let unbound =
                    UnboundKey::new(alg, &secret).map_err(|_| format!("key {name}: unusable"))?;
                keys.push((name.to_string(), LessSafeKey::new(unbound)));
            }
            if keys.is_empty() {
                return Err("aesgcm has no keys".into());
            }
            Ok(Provider::AesGcm(keys))
        }
        other => Err(format!(
            "provider {other:?} is not supported by skiff (aesgcm and identity are)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    fn config(keys: &[(&str, &[u8])], identity_first: bool) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let keys: String = keys
            .iter()
            .map(|(n, k)| format!("      - name: {n}\n        secret: {}\n", b64.encode(k)))
            .collect();
        let aes = format!("  - aesgcm:\n      keys:\n{keys}");
        let id = "  - identity: {}\n";
        let providers = if identity_first {
            format!("{id}{aes}")
        } else {
            format!("{aes}{id}")
        };
        format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}")
    }

    const K1: &[u8] = &[1u8; 32];
    const K2: &[u8] = &[2u8; 16];

    #[test]
    fn secrets_round_trip_and_other_kinds_pass_through() {
        let t = Transformer::parse(&config(&[("key1", K1)], false)).unwrap();
        let key = "/core/secrets/default/db";
        let sealed = t
            .seal(key, b"{\"data\":{\"p\":\"aHVudGVyMg==\"}}".to_vec())
            .unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert!(!sealed.windows(8).any(|w| w == b"aHVudGVy"));
        assert_eq!(
            t.open(key, &sealed).unwrap(),
            b"{\"data\":{\"p\":\"aHVudGVyMg==\"}}"
        );
        let cm = t
            .seal("/core/configmaps/default/x", b"{}".to_vec())
            .unwrap();
        assert_eq!(cm, b"{}");
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(
            t.seal(key, b"x".to_vec()).unwrap(),
            t.seal(key, b"x".to_vec()).unwrap()
        );
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_decrypt() {
        let t = Transformer::parse(&config(&[("key1", K1)], false)).unwrap();
        let sealed = t.seal("/core/secrets/default/a", b"{}".to_vec()).unwrap();
        let err = t
            .open("/core/secrets/default/b", &sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("authentication failed"), "{err}");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(t.open("/core/secrets/default/a", &tampered).is_err());
    }

    #[test]
    fn rotation_reads_old_keys_and_plaintext() {
        let old = Transformer::parse(&config(&[("old", K2)], false)).unwrap();
        let key = "/core/secrets/ns/s";
        let by_old = old.seal(key, b"{\"v\":1}".to_vec()).unwrap();
        // New key first, old one kept for reading.
        let new = Transformer::parse(&config(&[("new", K1), ("old", K2)], false)).unwrap();
        assert_eq!(new.open(key, &by_old).unwrap(), b"{\"v\":1}");
        assert!(new
            .seal(key, b"{}".to_vec())
            .unwrap()
            .starts_with(b"k8s:enc:aesgcm:v1:new:"));
        assert_eq!(
            new.open(key, b"{\"plain\":true}").unwrap(),
            b"{\"plain\":true}"
        );
        // Without the key the error says which one is missing.
        let err = open_with(None, key, &by_old).unwrap_err().to_string();
        assert!(err.contains("\"old\""), "{err}");
        // identity first: writes stay plaintext, encrypted values still read.
        let off = Transformer::parse(&config(&[("old", K2)], true)).unwrap();
        assert_eq!(off.seal(key, b"{}".to_vec()).unwrap(), b"{}");
        assert_eq!(off.open(key, &by_old).unwrap(), b"{\"v\":1}");
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let cases = [
            ("kind: Foo\n", "EncryptionConfiguration"),
            ("kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: []}\n", "not supported"),
            ("kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: k, secret: AAAA}]}\n", "16 or 32 bytes"),
            ("kind: EncryptionConfiguration\nresources:\n- resources: ['*.*']\n  providers:\n  - identity: {}\n", "wildcards"),
            ("kind: EncryptionConfiguration\nresources: []\n", "no resources"),
        ];
        for (text, want) in cases {
            let err = Transformer::parse(text).err().unwrap_or_default();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn generated_configuration_is_private_and_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.yaml");
        Transformer::generate(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let t = Transformer::load(&path).unwrap();
        let sealed = t.seal("/core/secrets/a/b", b"{}".to_vec()).unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert!(
            Transformer::generate(&path).is_err(),
            "never overwrites a key"
        );
    }
}
