//! Against the real API server, which enforces that a podCIDR is set once.

use super::*;
use crate::replicaset::tests::support::eventually;
use crate::testing::{cluster, Cluster};
use k8s_openapi::api::core::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams};

fn start(c: &Cluster, cfg: Config) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client, cfg).await {
            panic!("node IPAM controller: {e}");
        }
    });
}

fn config(cluster_cidr: &str) -> Config {
    Config {
        cluster_cidr: cluster_cidr.parse().unwrap(),
        node_mask: 24,
    }
}

/// Create a Node, with a podCIDR already if given.
async fn node(c: &Cluster, name: &str, pod_cidr: Option<&str>) {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": pod_cidr},
    }))
    .unwrap();
    Api::<Node>::all(c.client.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
}

/// Wait for a Node to have a podCIDR and return it, checking that podCIDRs
/// says the same.
async fn cidr_of(c: &Cluster, name: &str) -> String {
    let api = Api::<Node>::all(c.client.clone());
    eventually(20, &format!("a podCIDR on {name}"), || async {
        let n = api.get(name).await.ok()?;
        let spec = n.spec?;
        let cidr = spec.pod_cidr?;
        assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]), "{name}");
        Some(cidr)
    })
    .await
}

#[tokio::test]
async fn nodes_get_distinct_subnets_and_one_that_has_a_subnet_keeps_it() {
    let c = cluster().await;
    // Present before the controller starts: its subnet is taken.
    node(&c, "old", Some("10.244.0.0/24")).await;
    node(&c, "manual", Some("192.168.7.0/24")).await;
    start(&c, Config::default());
    node(&c, "n1", None).await;
    let first = cidr_of(&c, "n1").await;
    node(&c, "n2", None).await;
    let second = cidr_of(&c, "n2").await;
    assert_eq!(first, "10.244.1.0/24");
    assert_eq!(second, "10.244.2.0/24");
    assert_eq!(cidr_of(&c, "old").await, "10.244.0.0/24");
    assert_eq!(
        cidr_of(&c, "manual").await,
        "192.168.7.0/24",
        "outside the range, kept"
    );

    // And nobody may move it afterwards.
    let err = Api::<Node>::all(c.client.clone())
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));
}

#[tokio::test]
async fn an_exhausted_range_leaves_the_node_waiting_with_an_event_until_a_node_goes() {
    let c = cluster().await;
    // Two /24s in a /23.
    start(&c, config("10.244.0.0/23"));
    node(&c, "a", None).await;
    node(&c, "b", None).await;
    let mut got = vec![cidr_of(&c, "a").await, cidr_of(&c, "b").await];
    got.sort();
    assert_eq!(got, ["10.244.0.0/24", "10.244.1.0/24"]);

    node(&c, "c", None).await;
    let events = Api::<Event>::namespaced(c.client.clone(), "default");
    let event = eventually(20, "a CIDRNotAvailable event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("CIDRNotAvailable"))
    })
    .await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Node"));
    assert_eq!(event.involved_object.name.as_deref(), Some("c"));
    assert_eq!(
        event.source.and_then(|s| s.component).as_deref(),
        Some("cidrAllocator")
    );
    let nodes = Api::<Node>::all(c.client.clone());
    let waiting = nodes.get("c").await.unwrap();
    assert_eq!(waiting.spec.and_then(|s| s.pod_cidr), None);

    // A deleted node gives its subnet to the one waiting.
    let freed = cidr_of(&c, "a").await;
    nodes.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(cidr_of(&c, "c").await, freed);
}
