//! Scale to zero: Deployments that opt in drop to 0 replicas after an
//! idle window, and come back on the next request.
//!
//! A Deployment opts in with the annotation [`IDLE_ANNOTATION`], the idle
//! window as a duration (`30s`, `5m`). The node agents record on each pod
//! serving HTTP functions when it last answered a request
//! ([`LAST_REQUEST_ANNOTATION`], RFC 3339, written at most every few
//! seconds while requests come). This controller looks at every opted-in
//! Deployment each second: when none of its pods has answered a request
//! (or, for a pod that never did, started) within the window, it scales the
//! Deployment to 0 and remembers the replica count in
//! [`SCALED_FROM_ANNOTATION`].
//!
//! Waking up is the gateway's job: a request for a Service whose endpoints
//! are gone and whose Deployment was scaled to zero scales it back to the
//! remembered count and is held until an endpoint is ready (see the
//! runtime's gateway).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::reconcile::{self, Informers};

/// On a Deployment: scale to zero after this long without requests.
pub const IDLE_ANNOTATION: &str = "skiff.dev/scale-to-zero";
/// On a pod: when it last answered a request (written by node agents).
pub const LAST_REQUEST_ANNOTATION: &str = "skiff.dev/last-request";
/// On a Deployment scaled to zero: its replicas before.
pub const SCALED_FROM_ANNOTATION: &str = "skiff.dev/scaled-from";

/// How often opted-in Deployments are looked at.
const PERIOD: Duration = Duration::from_secs(1);

/// `30s`, `5m`, `1h`, `500ms`, or plain seconds.
pub fn parse_window(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn chrono_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).ok()?,
    )
}

/// When the Deployment's pods were last busy: the latest request any of
/// them answered, or for one that never answered, when it started. None
/// when it has no pods (nothing to judge by yet).
pub fn last_busy(d: &Deployment, pods: &[Arc<Pod>]) -> Option<DateTime<Utc>> {
    let ns = d.metadata.namespace.as_deref()?;
    let spec = d.spec.as_ref()?;
    let sel = reconcile::selector(&spec.selector);
    let mut latest: Option<DateTime<Utc>> = None;
    for p in pods {
        if p.metadata.namespace.as_deref() != Some(ns) || !sel.matches(p.metadata.labels.as_ref()) {
            continue;
        }
        let busy = annotation(&p.metadata, LAST_REQUEST_ANNOTATION)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                p.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .and_then(chrono_of)
            })
            .or_else(|| p.metadata.creation_timestamp.as_ref().and_then(chrono_of));
        latest = latest.max(busy);
    }
    latest
}

/// What to do with one Deployment now: Some(replicas) to scale it to zero
/// from `replicas`.
pub fn decide(d: &Deployment, pods: &[Arc<Pod>], now: DateTime<Utc>) -> Option<i32> {
    let window = parse_window(annotation(&d.metadata, IDLE_ANNOTATION)?)?;
    let replicas = d.spec.as_ref()?.replicas.unwrap_or(1);
    if replicas == 0 || d.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let busy = last_busy(d, pods)?;
    let idle = (now - busy).to_std().unwrap_or(Duration::ZERO);
    (idle >= window).then_some(replicas)
}

/// Scale idle opted-in Deployments to zero until the watches end.
pub async fn run_with(client: kube::Client, informers: &Arc<Informers>) -> anyhow::Result<()> {
    // Read from the caches every PERIOD; their events are not needed.
    let deployments = informers.cache::<Deployment>(None);
    let pods = informers.cache::<Pod>(None);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let all_pods = pods.state();
        for d in deployments.state() {
            let Some(from) = decide(&d, &all_pods, Utc::now()) else {
                continue;
            };
            let (ns, name) = (
                d.metadata.namespace.clone().unwrap_or_default(),
                d.metadata.name.clone().unwrap_or_default(),
            );
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let mut annotations = BTreeMap::new();
            annotations.insert(SCALED_FROM_ANNOTATION, from.to_string());
            // The resourceVersion makes this a no-op if a request woke it
            // (or a person scaled it) since the cache saw it.
            let patch = json!({
                "metadata": {
                    "annotations": annotations,
                    "resourceVersion": d.metadata.resource_version,
                },
                "spec": {"replicas": 0},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(deployment = %format!("{ns}/{name}"), from, "idle: scaled to zero")
                }
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(deployment = %format!("{ns}/{name}"), error = %e, "scaling to zero")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(annotations: serde_json::Value, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "fn", "namespace": "default", "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "fn"}},
                     "template": {"metadata": {"labels": {"app": "fn"}}, "spec": {"containers": []}}},
        }))
        .expect("deployment")
    }

    fn pod(labels: serde_json::Value, started: &str, last: Option<&str>) -> Arc<Pod> {
        let annotations = last.map(|l| json!({LAST_REQUEST_ANNOTATION: l}));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default", "labels": labels, "annotations": annotations},
                "status": {"startTime": started},
            }))
            .expect("pod"),
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn windows_parse_as_people_write_them() {
        assert_eq!(parse_window("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_window("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_window("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_window("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_window("0s"), None);
        assert_eq!(parse_window("soon"), None);
        assert_eq!(parse_window("3d"), None);
    }

    #[test]
    fn idle_past_the_window_scales_to_zero_from_the_current_count() {
        let d = deployment(json!({IDLE_ANNOTATION: "30s"}), 3);
        let pods = [
            pod(
                json!({"app": "fn"}),
                "2026-12-05T10:00:00Z",
                Some("2026-12-05T10:01:00Z"),
            ),
            pod(json!({"app": "fn"}), "2026-12-05T10:00:00Z", None),
            // Not selected: its traffic does not keep the Deployment up.
            pod(
                json!({"app": "other"}),
                "2026-12-05T10:00:00Z",
                Some("2026-12-05T10:05:00Z"),
            ),
        ];
        assert_eq!(
            decide(&d, &pods, at("2026-12-05T10:01:29Z")),
            None,
            "busy 29 s ago"
        );
        assert_eq!(decide(&d, &pods, at("2026-12-05T10:01:30Z")), Some(3));
    }

    #[test]
    fn a_pod_that_never_answered_counts_from_its_start() {
        let d = deployment(json!({IDLE_ANNOTATION: "1m"}), 1);
        let pods = [pod(json!({"app": "fn"}), "2026-12-05T10:00:00Z", None)];
        assert_eq!(decide(&d, &pods, at("2026-12-05T10:00:59Z")), None);
        assert_eq!(decide(&d, &pods, at("2026-12-05T10:01:00Z")), Some(1));
    }

    #[test]
    fn not_opted_in_already_zero_or_podless_are_left_alone() {
        let pods = [pod(json!({"app": "fn"}), "2026-12-05T10:00:00Z", None)];
        let late = at("2026-12-06T00:00:00Z");
        assert_eq!(decide(&deployment(json!({}), 2), &pods, late), None);
        assert_eq!(
            decide(&deployment(json!({IDLE_ANNOTATION: "1m"}), 0), &pods, late),
            None
        );
        assert_eq!(
            decide(
                &deployment(json!({IDLE_ANNOTATION: "bogus"}), 2),
                &pods,
                late
            ),
            None
        );
        assert_eq!(
            decide(&deployment(json!({IDLE_ANNOTATION: "1m"}), 2), &[], late),
            None
        );
    }
}
