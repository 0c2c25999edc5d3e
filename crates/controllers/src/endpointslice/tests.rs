//! Against the real API server. No node agent runs: the tests play the
//! kubelet by setting pods' IPs and Ready conditions through the status
//! subresource.

use super::*;
use crate::replicaset::tests::support::eventually;
use crate::testing::{cluster, Cluster};
use k8s_openapi::api::core::v1::EndpointSubset;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

fn start(c: &Cluster) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client).await {
            panic!("endpoint controller: {e}");
        }
    });
}

async fn service(c: &Cluster, name: &str, spec: serde_json::Value) -> Service {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}},
        "spec": spec,
    }))
    .unwrap();
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
}

/// Create a pod bound to `n1` and give it an IP and a Ready condition.
async fn pod(c: &Cluster, name: &str, app: &str, ip: &str, web_port: i32) -> Pod {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "example.com/web:1",
            "ports": [{"name": "web", "containerPort": web_port}]}]},
    }))
    .unwrap();
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &p).await.unwrap();
    set_status(c, name, ip, true).await
}

async fn set_status(c: &Cluster, name: &str, ip: &str, ready: bool) -> Pod {
    let status = if ready { "True" } else { "False" };
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": status}],
            }})),
        )
        .await
        .unwrap()
}

async fn slices_of(c: &Cluster, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={svc}")))
        .await
        .unwrap()
        .items
}

/// Wait until the Service's slices satisfy `check`.
async fn wait_slices(
    c: &Cluster,
    svc: &str,
    what: &str,
    check: impl Fn(&[EndpointSlice]) -> bool,
) -> Vec<EndpointSlice> {
    eventually(20, what, || async {
        let s = slices_of(c, svc).await;
        check(&s).then_some(s)
    })
    .await
}

/// Wait until the Service's Endpoints satisfy `check`.
async fn wait_endpoints(
    c: &Cluster,
    svc: &str,
    what: &str,
    check: impl Fn(&[EndpointSubset]) -> bool,
) -> Endpoints {
    let api = Api::<Endpoints>::namespaced(c.client.clone(), "default");
    eventually(20, what, || async {
        let e = api.get_opt(svc).await.unwrap()?;
        check(e.subsets.as_deref().unwrap_or_default()).then_some(e)
    })
    .await
}

fn endpoint_count(slices: &[EndpointSlice]) -> usize {
    slices.iter().map(|s| s.endpoints.len()).sum()
}

fn conditions(slices: &[EndpointSlice], pod: &str) -> Option<(bool, bool, bool)> {
    let e = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))?;
    let c = e.conditions.as_ref()?;
    Some((c.ready?, c.serving?, c.terminating?))
}

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    list.iter().flatten().map(|a| a.ip.clone()).collect()
}

fn web_spec() -> serde_json::Value {
    json!({"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "web"},
        {"name": "metrics", "port": 9090, "targetPort": 9100},
    ]})
}

#[tokio::test]
async fn a_service_with_three_ready_pods_gets_one_slice_and_endpoints() {
    let c = cluster().await;
    c.node("n1", json!({ZONE_LABEL: "zone-a"}), &[]).await;
    start(&c);
    let svc = service(&c, "web", web_spec()).await;
    for (i, name) in ["web-a", "web-b", "web-c"].iter().enumerate() {
        pod(&c, name, "web", &format!("10.244.0.{}", i + 10), 8080).await;
    }
    pod(&c, "db", "db", "10.244.0.99", 8080).await;
    let slices = wait_slices(&c, "web", "one slice of 3", |s| {
        s.len() == 1 && endpoint_count(s) == 3
    })
    .await;
    let s = &slices[0];
    assert_eq!(s.address_type, "IPv4");
    assert!(s.metadata.name.as_deref().unwrap().starts_with("web-"));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(labels["team"], "a", "the Service's labels are copied");
    let owner = reconcile::controller_of(&s.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", svc.metadata.uid.as_deref().unwrap())
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    let mut ports: Vec<(String, i32)> = s
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [("http".to_string(), 8080), ("metrics".to_string(), 9100)]
    );
    for e in &s.endpoints {
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.zone.as_deref(), Some("zone-a"));
        let r = e.target_ref.as_ref().unwrap();
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert!(
            r.name.as_deref().unwrap().starts_with("web-"),
            "not the db pod"
        );
    }
    assert_eq!(conditions(&slices, "web-a"), Some((true, true, false)));

    let ep = wait_endpoints(&c, "web", "3 ready addresses", |s| {
        s.len() == 1 && ips(&s[0].addresses).len() == 3
    })
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(
        ips(&subset.addresses),
        ["10.244.0.10", "10.244.0.11", "10.244.0.12"]
    );
    let ep_ports: Vec<(Option<&str>, i32)> = subset
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port))
        .collect();
    assert_eq!(ep_ports, [(Some("http"), 8080), (Some("metrics"), 9100)]);

    // What the API server stores (after its defaulting) compares equal to
    // what the controller wants: it will not rewrite them.
    let stored_svc = Api::<Service>::namespaced(c.client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let stored_pods = Api::<Pod>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let backends = pods::backends(&stored_svc, &stored_pods, |_| Some("zone-a".into()));
    let plan = slice_plan(&stored_svc, &backends, &[s]);
    assert!(plan.is_empty(), "{plan:?}");
    assert!(endpoints_current(&ep, &stored_svc, &backends));

    // Settled: a change that does not affect the outputs rewrites nothing.
    let slice_rv = s.metadata.resource_version.clone();
    let ep_rv = ep.metadata.resource_version.clone();
    Api::<Service>::namespaced(c.client.clone(), "default")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    set_status(&c, "web-a", "10.244.0.10", true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = slices_of(&c, "web").await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].metadata.resource_version, slice_rv,
        "slice rewritten"
    );
    let ep_after = Api::<Endpoints>::namespaced(c.client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        ep_after.metadata.resource_version, ep_rv,
        "Endpoints rewritten"
    );
}

#[tokio::test]
async fn a_pod_turning_not_ready_is_marked_so_in_place() {
    let c = cluster().await;
    start(&c);
    service(&c, "web", web_spec()).await;
    pod(&c, "web-a", "web", "10.244.0.10", 8080).await;
    pod(&c, "web-b", "web", "10.244.0.11", 8080).await;
    let before = wait_slices(&c, "web", "2 endpoints", |s| endpoint_count(s) == 2).await;
    set_status(&c, "web-b", "10.244.0.11", false).await;
    let after = wait_slices(&c, "web", "web-b not ready", |s| {
        conditions(s, "web-b") == Some((false, false, false))
    })
    .await;
    assert_eq!(conditions(&after, "web-a"), Some((true, true, false)));
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].metadata.name, before[0].metadata.name,
        "updated, not replaced"
    );
    let ep = wait_endpoints(&c, "web", "web-b not ready", |s| {
        s.len() == 1 && ips(&s[0].not_ready_addresses) == ["10.244.0.11"]
    })
    .await;
    assert_eq!(ips(&ep.subsets.unwrap()[0].addresses), ["10.244.0.10"]);
}

#[tokio::test]
async fn a_deleted_pod_terminates_then_leaves() {
    let c = cluster().await;
    start(&c);
    service(&c, "web", web_spec()).await;
    pod(&c, "web-a", "web", "10.244.0.10", 8080).await;
    pod(&c, "web-b", "web", "10.244.0.11", 8080).await;
    wait_slices(&c, "web", "2 endpoints", |s| endpoint_count(s) == 2).await;
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default");
    // Bound to a node, the pod waits for its kubelet: terminating.
    pods.delete("web-b", &DeleteParams::default())
        .await
        .unwrap();
    wait_slices(&c, "web", "web-b terminating", |s| {
        conditions(s, "web-b") == Some((false, true, true))
    })
    .await;
    wait_endpoints(&c, "web", "web-b gone from Endpoints", |s| {
        s.len() == 1
            && ips(&s[0].addresses) == ["10.244.0.10"]
            && s[0].not_ready_addresses.is_none()
    })
    .await;
    // The kubelet confirms: the pod is gone.
    pods.delete("web-b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let s = wait_slices(&c, "web", "web-b gone", |s| {
        endpoint_count(s) == 1 && conditions(s, "web-b").is_none()
    })
    .await;
    assert_eq!(conditions(&s, "web-a"), Some((true, true, false)));
}

#[tokio::test]
async fn removing_the_selector_or_the_service_deletes_what_was_managed() {
    let c = cluster().await;
    start(&c);
    service(&c, "web", web_spec()).await;
    service(
        &c,
        "other",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
    )
    .await;
    pod(&c, "web-a", "web", "10.244.0.10", 8080).await;
    wait_slices(&c, "web", "a slice", |s| endpoint_count(s) == 1).await;
    wait_slices(&c, "other", "a slice", |s| endpoint_count(s) == 1).await;
    wait_endpoints(&c, "other", "Endpoints", |s| s.len() == 1).await;

    let services = Api::<Service>::namespaced(c.client.clone(), "default");
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"selector": null}})),
        )
        .await
        .unwrap();
    wait_slices(&c, "web", "no slices", |s| s.is_empty()).await;
    let endpoints = Api::<Endpoints>::namespaced(c.client.clone(), "default");
    eventually(20, "web's Endpoints deleted", || async {
        endpoints
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    services
        .delete("other", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "other's Endpoints deleted", || async {
        endpoints
            .get_opt("other")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    wait_slices(&c, "other", "no slices", |s| s.is_empty()).await;
}

#[tokio::test]
async fn pods_whose_named_port_differs_are_grouped_apart() {
    let c = cluster().await;
    start(&c);
    service(&c, "web", web_spec()).await;
    pod(&c, "web-a", "web", "10.244.0.10", 8080).await;
    pod(&c, "web-b", "web", "10.244.0.11", 8080).await;
    pod(&c, "web-c", "web", "10.244.0.12", 8443).await;
    let slices = wait_slices(&c, "web", "two slices", |s| {
        s.len() == 2 && endpoint_count(s) == 3
    })
    .await;
    let http_port = |s: &EndpointSlice| {
        s.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .and_then(|p| p.port)
    };
    let mut sizes: Vec<(Option<i32>, usize)> = slices
        .iter()
        .map(|s| (http_port(s), s.endpoints.len()))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [(Some(8080), 2), (Some(8443), 1)]);
    let ep = wait_endpoints(&c, "web", "two subsets", |s| s.len() == 2).await;
    let subsets = ep.subsets.unwrap();
    let by_port: Vec<(i32, usize)> = subsets
        .iter()
        .map(|s| {
            let http = s
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("http"));
            (http.unwrap().port, ips(&s.addresses).len())
        })
        .collect();
    assert!(
        by_port.contains(&(8080, 2)) && by_port.contains(&(8443, 1)),
        "{by_port:?}"
    );
}

#[tokio::test]
async fn two_hundred_fifty_pods_fill_three_slices() {
    let c = cluster().await;
    service(&c, "web", web_spec()).await;
    futures::stream::iter(0..250)
        .map(|i| {
            let c = &c;
            async move {
                let ip = format!("10.244.{}.{}", i / 200, i % 200 + 1);
                pod(c, &format!("web-{i}"), "web", &ip, 8080).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    // Started on a full cache, as after a restart: one plan for all 250.
    // (Pods arriving one by one fill slices as they come and may leave
    // one more, partly filled slice, as in Kubernetes.)
    start(&c);
    let slices = wait_slices(&c, "web", "250 endpoints", |s| endpoint_count(s) == 250).await;
    assert_eq!(
        slices.len(),
        3,
        "{:?}",
        slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>()
    );
    assert!(slices.iter().all(|s| s.endpoints.len() <= MAX_ENDPOINTS));
    let ep = wait_endpoints(&c, "web", "250 addresses", |s| {
        s.iter().map(|s| ips(&s.addresses).len()).sum::<usize>() == 250
    })
    .await;
    assert_eq!(ep.subsets.unwrap().len(), 1);
}
