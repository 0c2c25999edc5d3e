//! Secrets at rest: what `kubectl create secret` writes never reaches the
//! store file in the clear, reads still give it back, a restart on the same
//! data directory keeps reading it (the key in `pki/encryption.yaml` is
//! reused), and a user's own EncryptionConfiguration is honoured.

use crate::harness::{run, Skiff};

const PASSWORD: &str = "correct-horse-battery-staple";
/// base64 of PASSWORD, as the Secret's `data` holds it.
const PASSWORD_B64: &str = "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ==";

fn file_has(path: &std::path::Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).expect("read the store file");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_are_encrypted_at_rest_and_read_back() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).expect("data dir");
    let mut s = Skiff::start_in_with(&dir, &["--api-only"]);
    s.kubectl(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "db",
            &format!("--from-literal=password={PASSWORD}"),
        ],
    )
    .ok();
    s.kubectl(
        "1.33",
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=plain-config-value",
        ],
    )
    .ok();
    let got = s
        .kubectl(
            "1.33",
            &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
        )
        .ok()
        .stdout;
    assert_eq!(got.trim(), PASSWORD_B64);
    let store = dir.join("skiff.redb");
    assert!(
        file_has(&store, "plain-config-value"),
        "the check sees plaintext"
    );
    assert!(!file_has(&store, PASSWORD_B64) && !file_has(&store, PASSWORD));
    assert!(file_has(&store, "k8s:enc:aesgcm:v1:key1:"));
    let conf = std::fs::read_to_string(dir.join("pki/encryption.yaml")).expect("key file");
    assert!(conf.contains("kind: EncryptionConfiguration"), "{conf}");
    s.stop();

    // Same data directory: the same key reads the Secret.
    let s = Skiff::start_in_with(&dir, &["--api-only"]);
    let got = s
        .kubectl(
            "1.33",
            &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
        )
        .ok()
        .stdout;
    assert_eq!(got.trim(), PASSWORD_B64);
}

#[test]
fn an_unusable_encryption_configuration_stops_startup_with_its_reason() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let conf = tmp.path().join("enc.yaml");
    std::fs::write(
        &conf,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {name: vault}\n",
    )
    .expect("write config");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(["up", "--api-only", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--encryption-provider-config")
        .arg(&conf);
    let out = run(cmd, None, std::time::Duration::from_secs(30));
    assert_ne!(out.code, 0, "started with an unusable configuration");
    assert!(
        out.stderr.contains("\"kms\" is not supported") && out.stderr.contains("enc.yaml"),
        "{}",
        out.stderr
    );
}
