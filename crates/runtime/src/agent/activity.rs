//! Request activity of the node's HTTP functions, for scale to zero.
//!
//! Every [`REPORT_EVERY`], each pod whose functions answered a request
//! since the last report gets the annotation `skiff.dev/last-request` (the
//! time of its latest request, RFC 3339 with milliseconds). The control
//! plane's scale-to-zero controller reads it; a quiet pod costs no writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::Ctx;
use crate::wasm::http::Functions;

/// The pod annotation written.
pub const LAST_REQUEST_ANNOTATION: &str = "skiff.dev/last-request";
/// How often activity is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Report until the agent stops.
pub(crate) async fn report(ctx: Arc<Ctx>, functions: Arc<Functions>) {
    let mut reported: HashMap<(String, String), u64> = HashMap::new();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut latest: HashMap<(String, String), u64> = HashMap::new();
        for f in functions.all() {
            let Some(at) = f.last_request_ms() else {
                continue;
            };
            let (ns, name) = f.pod();
            let e = latest
                .entry((ns.to_string(), name.to_string()))
                .or_default();
            *e = (*e).max(at);
        }
        reported.retain(|k, _| latest.contains_key(k));
        for ((ns, name), at) in latest {
            if reported.get(&(ns.clone(), name.clone())) == Some(&at) {
                continue;
            }
            let Some(when) =
                chrono::DateTime::from_timestamp_millis(i64::try_from(at).unwrap_or(0))
            else {
                continue;
            };
            let stamp = when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let patch = json!({"metadata": {"annotations": {LAST_REQUEST_ANNOTATION: stamp}}});
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    reported.insert((ns, name), at);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "reporting request activity")
                }
            }
        }
    }
}
