#![allow(clippy::unwrap_used)] // fixtures are built by the tests themselves

//! The image store against a real registry (Debian's `docker-registry`
//! on loopback) and hand-written OCI layouts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderValue;
use oci_client::secrets::RegistryAuth as OciAuth;
use serde_json::json;

use super::manifest::{DOCKER_LIST, OCI_INDEX, OCI_MANIFEST};
use super::*;

const MODULE: &[u8] = b"\0asm\x01\0\0\0";

/// `docker-registry serve` on a free loopback port, stopped on drop.
struct Registry {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    host: String,
}

impl Registry {
    fn start() -> Registry {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "{} is missing: these tests need a real registry (apt-get install docker-registry)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {host}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child: Some(child),
            _dir: dir,
            host,
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn store_for(dir: &Path, reg: &Registry) -> ImageStore {
    ImageStore::open(
        dir,
        StoreConfig {
            insecure_registries: vec![reg.host.clone()],
        },
    )
    .unwrap()
}

fn wasm_file(dir: &Path) -> PathBuf {
    let p = dir.join("hello.wasm");
    std::fs::write(&p, MODULE).unwrap();
    p
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

#[tokio::test]
async fn pushed_wasm_is_pulled_classified_and_kept_for_if_not_present() {
    let mut reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/skiff/hello:v1", reg.host);
    let pushed = Mutex::new(0u64);
    let digest = push_wasm(&wasm_file(tmp.path()), &reference, true, &[], &|p| {
        if let PullProgress::Blob { done, .. } = p {
            *pushed.lock().unwrap() = done;
        }
    })
    .await
    .unwrap();
    assert!(*pushed.lock().unwrap() > 0, "push reports bytes");

    let dir = tmp.path().join("store");
    let store = store_for(&dir, &reg);
    let events = Mutex::new(Vec::new());
    let image = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|p| {
            events.lock().unwrap().push(p)
        })
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.reference, reference);
    assert_eq!(image.platform, Some(Platform::new("wasip1", "wasm")));
    let module = require_wasm(&image).unwrap();
    assert_eq!(std::fs::read(module).unwrap(), MODULE);
    assert!(matches!(
        image.kind,
        ImageKind::Wasm {
            component: false,
            ..
        }
    ));
    let events = events.into_inner().unwrap();
    assert!(
        matches!(events.first(), Some(PullProgress::Resolved { .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            PullProgress::Blob {
                done: 8,
                size: 8,
                ..
            }
        )),
        "{events:?}"
    );

    // IfNotPresent and Never do not touch the registry: stop it.
    reg.stop();
    let again = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again, image);
    // Always does, and says which registry it could not reach.
    let err = store
        .ensure(&reference, PullPolicy::Always, &[], &amd64(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&reg.host), "{err}");

    // The index survives a restart of the node.
    drop(store);
    let store = store_for(&dir, &reg);
    let kept = store
        .ensure(&reference, PullPolicy::Never, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    assert_eq!(kept.digest, digest);
}

#[tokio::test]
async fn always_pulls_the_new_tag_and_reuses_blobs_it_has() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/skiff/moving:latest", reg.host);
    let file = wasm_file(tmp.path());
    push_wasm(&file, &reference, true, &[], &|_| {})
        .await
        .unwrap();
    let store = store_for(&tmp.path().join("store"), &reg);
    let first = store
        .ensure(&reference, PullPolicy::Always, &[], &amd64(), &|_| {})
        .await
        .unwrap();

    // A new module under the same tag (a custom section makes it differ).
    let mut v2 = MODULE.to_vec();
    v2.extend_from_slice(&[0x00, 0x03, 0x01, b'x', 0x00]);
    std::fs::write(&file, &v2).unwrap();
    let d2 = push_wasm(&file, &reference, true, &[], &|_| {})
        .await
        .unwrap();
    let stale = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    assert_eq!(stale.digest, first.digest, "IfNotPresent keeps what it has");
    let fresh = store
        .ensure(&reference, PullPolicy::Always, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    assert_eq!(fresh.digest, d2, "Always resolves the tag again");
    assert_eq!(std::fs::read(require_wasm(&fresh).unwrap()).unwrap(), v2);
}

#[tokio::test]
async fn never_with_nothing_local_fails_like_err_image_never_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), StoreConfig::default()).unwrap();
    let err = store
        .ensure(
            "example.com/app:1",
            PullPolicy::Never,
            &[],
            &amd64(),
            &|_| {},
        )
        .await
        .unwrap_err();
    // kubelet: Container image "…" is not present with pull policy of Never
    assert!(matches!(err, ImageError::NotPresent { .. }));
    assert!(
        err.to_string().contains("example.com/app:1") && err.to_string().contains("Never"),
        "{err}"
    );
}

#[tokio::test]
async fn a_registry_that_is_down_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let store = ImageStore::open(
        tmp.path(),
        StoreConfig {
            insecure_registries: vec![host.clone()],
        },
    )
    .unwrap();
    let err = store
        .ensure(
            &format!("{host}/x/y:1"),
            PullPolicy::IfNotPresent,
            &[],
            &amd64(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("registry {host} is unreachable")),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("refused"),
        "the cause is shown: {text}"
    );
}

#[tokio::test]
async fn a_missing_image_names_the_reference() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_for(tmp.path(), &reg);
    let reference = format!("{}/skiff/nope:v1", reg.host);
    let err = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&reference), "{err}");
}

#[tokio::test]
async fn a_corrupted_blob_on_disk_is_detected_and_fetched_again() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/skiff/hello:v1", reg.host);
    push_wasm(&wasm_file(tmp.path()), &reference, true, &[], &|_| {})
        .await
        .unwrap();
    let store = store_for(&tmp.path().join("store"), &reg);
    let image = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    let module = require_wasm(&image).unwrap().to_path_buf();
    std::fs::write(&module, b"\0asm\x01\0\0\x01").unwrap();

    let err = store
        .ensure(&reference, PullPolicy::Never, &[], &amd64(), &|_| {})
        .await
        .unwrap_err();
    let ImageError::DigestMismatch {
        expected, actual, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(expected, &digest::of(MODULE));
    assert_eq!(actual, &digest::of(b"\0asm\x01\0\0\x01"));
    assert!(
        err.to_string().contains(expected.as_str()) && err.to_string().contains(actual.as_str())
    );

    // IfNotPresent heals it from the registry.
    std::fs::write(&module, b"garbage").unwrap();
    let healed = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &amd64(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(require_wasm(&healed).unwrap()).unwrap(),
        MODULE
    );
}

/// Pushes a tiny Linux image for each platform and an index over them.
async fn push_multi_platform(reg: &Registry, repo: &str, platforms: &[(&str, &str)]) -> String {
    let client = pull::registry_client(std::slice::from_ref(&reg.host)).unwrap();
    let reference = format!("{}/{repo}:multi", reg.host);
    let r = reference::parse(&reference).unwrap();
    client
        .auth(
            &r.oci,
            &OciAuth::Anonymous,
            oci_client::RegistryOperation::Push,
        )
        .await
        .unwrap();
    let mut entries = Vec::new();
    for (os, arch) in platforms {
        let config = serde_json::to_vec(
            &json!({"os": os, "architecture": arch, "rootfs": {"type": "layers", "diff_ids": []}}),
        )
        .unwrap();
        let layer = format!("layer for {arch}").into_bytes();
        let (cd, ld) = (digest::of(&config), digest::of(&layer));
        client.push_blob(&r.oci, config.clone(), &cd).await.unwrap();
        client.push_blob(&r.oci, layer.clone(), &ld).await.unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
        }))
        .unwrap();
        let md = digest::of(&manifest);
        client
            .push_manifest_raw(
                &r.at(&md),
                manifest.clone(),
                HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .unwrap();
        entries.push(json!({"mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(), "platform": {"os": os, "architecture": arch}}));
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    client
        .push_manifest_raw(&r.oci, index, HeaderValue::from_static(OCI_INDEX))
        .await
        .unwrap();
    reference
}

#[tokio::test]
async fn an_index_without_the_nodes_platform_says_what_it_offers() {
    let reg = Registry::start();
    let reference = push_multi_platform(
        &reg,
        "skiff/multi",
        &[("linux", "amd64"), ("linux", "arm64")],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store_for(tmp.path(), &reg);
    let err = store
        .ensure(
            &reference,
            PullPolicy::Always,
            &[],
            &Platform::new("linux", "riscv64"),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NoPlatformMatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("linux/riscv64") && text.contains("linux/amd64, linux/arm64"),
        "{text}"
    );

    // The arm64 node gets the arm64 manifest, a Linux image, which a
    // wasmtime pod refuses clearly.
    let image = store
        .ensure(
            &reference,
            PullPolicy::Always,
            &[],
            &Platform::new("linux", "arm64"),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(image.platform, Some(Platform::new("linux", "arm64")));
    let ImageKind::Linux { layers, .. } = &image.kind else {
        panic!("{:?}", image.kind)
    };
    assert_eq!(std::fs::read(&layers[0].path).unwrap(), b"layer for arm64");
    let err = require_wasm(&image).unwrap_err().to_string();
    assert!(
        err.contains("not a Wasm image") && err.contains("linux/arm64"),
        "{err}"
    );
}

/// Writes an OCI layout by hand: a Wasm artifact, plus a Docker-style
/// manifest list for the node's platform.
fn write_layout(dir: &Path, name: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = digest::of(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    put(MODULE);
    let (config, manifest) = push::wasm_artifact(MODULE).unwrap();
    put(&config);
    let md = put(&manifest);
    let list = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(), "platform": {"os": "wasip1", "architecture": "wasm"}}
    ]}))
    .unwrap();
    let ld = put(&list);
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(),
         "annotations": {"org.opencontainers.image.ref.name": name}},
        {"mediaType": DOCKER_LIST, "digest": ld, "size": list.len(),
         "annotations": {"io.containerd.image.name": format!("{name}-list")}},
    ]});
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    md
}

#[tokio::test]
async fn import_of_an_oci_layout_for_air_gapped_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let md = write_layout(&layout, "registry.local/air/hello:1");
    let store = ImageStore::open(&tmp.path().join("store"), StoreConfig::default()).unwrap();
    let images = store.import(&layout).unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].reference, "registry.local/air/hello:1");
    assert_eq!(images[0].digest, md);
    assert_eq!(images[1].reference, "registry.local/air/hello:1-list");
    assert_eq!(images[1].digest, md, "the list resolved to its wasm entry");
    // Now usable with Never: no registry is involved.
    let image = store
        .ensure(
            "registry.local/air/hello:1",
            PullPolicy::Never,
            &[],
            &amd64(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(require_wasm(&image).unwrap()).unwrap(),
        MODULE
    );
}

#[test]
fn import_of_an_archive_gzip_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, "registry.local/air/tarred:2");
    for gzip in [false, true] {
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", &layout).unwrap();
        let raw = b.into_inner().unwrap();
        let bytes = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &raw).unwrap();
            enc.finish().unwrap()
        } else {
            raw
        };
        let archive = tmp.path().join(format!("image-{gzip}.tar"));
        std::fs::write(&archive, bytes).unwrap();
        let store_dir = tmp.path().join(format!("store-{gzip}"));
        let store = ImageStore::open(&store_dir, StoreConfig::default()).unwrap();
        let images = store.import(&archive).unwrap();
        assert_eq!(images[0].reference, "registry.local/air/tarred:2");
        assert_eq!(
            std::fs::read_dir(store_dir.join("tmp")).unwrap().count(),
            0,
            "unpacked copy removed"
        );
    }
}

#[test]
fn import_refuses_broken_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store"), StoreConfig::default()).unwrap();
    let err = store.import(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("no index.json"), "{err}");

    // A blob whose bytes are not its name: refused, nothing recorded.
    let layout = tmp.path().join("layout");
    write_layout(&layout, "registry.local/air/bad:1");
    let module_blob = layout.join("blobs/sha256").join(&digest::of(MODULE)[7..]);
    std::fs::write(&module_blob, b"\0asm\x02\0\0\0").unwrap();
    let err = store.import(&layout).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert_eq!(store.lookup("registry.local/air/bad:1"), None);

    std::fs::remove_file(&module_blob).unwrap();
    let err = store.import(&layout).unwrap_err().to_string();
    assert!(err.contains("lacks blob"), "{err}");

    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar").unwrap();
    assert!(store.import(&junk).is_err());
}

#[tokio::test]
async fn a_bad_reference_is_invalid_before_any_network() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), StoreConfig::default()).unwrap();
    let err = store
        .ensure(
            "Not A Reference",
            PullPolicy::Always,
            &[],
            &amd64(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
}

#[test]
fn pull_policy_parses_kubernetes_spelling() {
    assert_eq!(
        PullPolicy::parse("IfNotPresent"),
        Some(PullPolicy::IfNotPresent)
    );
    assert_eq!(PullPolicy::parse("Always"), Some(PullPolicy::Always));
    assert_eq!(PullPolicy::parse("Never"), Some(PullPolicy::Never));
    assert_eq!(PullPolicy::parse("never"), None);
}

#[test]
fn an_import_by_another_process_is_seen_by_a_running_store() {
    // `skiff image import` writes the index while the node's store is open.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let node = ImageStore::open(&dir, StoreConfig::default()).unwrap();
    let cli = ImageStore::open(&dir, StoreConfig::default()).unwrap();
    assert_eq!(node.lookup("docker.io/library/late:v1"), None);
    let image = cli.add_wasm("late:v1", MODULE).unwrap();
    assert_eq!(
        node.lookup("docker.io/library/late:v1"),
        Some(image.digest.clone())
    );
    // And the node's own writes keep what the other process added.
    node.add_wasm("mine:v1", MODULE).unwrap();
    let again = ImageStore::open(&dir, StoreConfig::default()).unwrap();
    assert!(again.lookup("docker.io/library/late:v1").is_some());
    assert!(again.lookup("docker.io/library/mine:v1").is_some());
}
