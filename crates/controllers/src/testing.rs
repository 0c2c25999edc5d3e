//! A real API server, in-process, for the controllers' tests.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;

/// A running API server and an admin client of it.
pub struct Cluster {
    pub client: kube::Client,
    _dir: tempfile::TempDir,
}

/// Start the real API server on a loopback port with a fresh store.
pub async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = apiserver::server::Config::new(
        dir.path().join("api"),
        "127.0.0.1:0".parse().expect("addr"),
    );
    let running = apiserver::server::start(cfg).await.expect("API server");
    let yaml =
        apiserver::server::kubeconfig_yaml(running.addr, &running.ca_pem, &running.admin_token);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    Cluster {
        client: kube::Client::try_from(kcfg).expect("client"),
        _dir: dir,
    }
}

impl Cluster {
    /// Create a Ready node with the given labels, handlers and allocatable
    /// resources, as a node agent would register it.
    pub async fn node(&self, name: &str, labels: serde_json::Value, handlers: &[&str]) -> Node {
        let mut labels = labels;
        if let Some(l) = labels.as_object_mut() {
            l.entry("kubernetes.io/hostname").or_insert(json!(name));
            l.entry("kubernetes.io/os").or_insert(json!("linux"));
            l.entry("kubernetes.io/arch").or_insert(json!("amd64"));
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {},
        }))
        .expect("node");
        let api = Api::<Node>::all(self.client.clone());
        api.create(&PostParams::default(), &node)
            .await
            .expect("create node");
        let status = json!({"status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": chrono::Utc::now().to_rfc3339(),
                            "lastTransitionTime": chrono::Utc::now().to_rfc3339()}],
            "runtimeHandlers": handlers.iter().map(|h| json!({"name": h, "features": {}})).collect::<Vec<_>>(),
        }});
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .expect("node status")
    }
}
