//! RuntimeHandler: a pod with `spec.runtimeClassName` runs only on nodes
//! that advertise its RuntimeClass's handler in `status.runtimeHandlers`
//! (skiff nodes list `wasmtime` and friends there). Kubernetes leaves this
//! to the RuntimeClass's nodeSelector; skiff checks the node's own claim
//! as well, so a mislabelled node cannot receive a pod it cannot run.

use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, Rejection};

const NAME: &str = "RuntimeHandler";

/// The RuntimeHandler filter.
pub struct RuntimeHandler;

/// The handler the pod needs, resolved once per cycle.
struct Needed(Option<String>);

/// The reason a node without the handler gives.
pub fn reason(handler: &str) -> String {
    format!("node(s) lack runtime handler {handler:?}")
}

impl FilterPlugin for RuntimeHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), String> {
        let class = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            .filter(|c| !c.is_empty());
        let needed = match class {
            None => None,
            Some(c) => Some(
                cache
                    .runtime_handler(c)
                    .ok_or_else(|| format!("RuntimeClass {c:?} not found"))?
                    .to_string(),
            ),
        };
        state.write(NAME, Needed(needed));
        Ok(())
    }

    fn filter(&self, _pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
        match state.read::<Needed>(NAME).and_then(|n| n.0.as_deref()) {
            Some(h) if !node.runtime_handlers.contains(h) => Err(Rejection::new(reason(h))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use k8s_openapi::api::node::v1::RuntimeClass;
    use serde_json::json;

    fn cache() -> Cache {
        let mut c = Cache::default();
        let rc: RuntimeClass =
            serde_json::from_value(json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"}))
                .expect("rc");
        c.upsert_runtime_class(&rc);
        c
    }

    fn run(p: &PodInfo, n: &NodeInfo) -> Result<(), Rejection> {
        let mut s = CycleState::default();
        RuntimeHandler
            .pre_filter(p, &cache(), &mut s)
            .expect("prefilter");
        RuntimeHandler.filter(p, n, &s)
    }

    #[test]
    fn pod_lands_only_where_the_handler_is() {
        let p = pod(json!({"runtimeClassName": "wasm"}));
        let with = node(
            "a",
            json!({}),
            json!({}),
            json!({"runtimeHandlers": [{"name": "wasmtime"}]}),
        );
        let without = node(
            "b",
            json!({}),
            json!({}),
            json!({"runtimeHandlers": [{"name": "runc"}]}),
        );
        assert_eq!(run(&p, &with), Ok(()));
        assert_eq!(
            run(&p, &without),
            Err(Rejection::new("node(s) lack runtime handler \"wasmtime\""))
        );
    }

    #[test]
    fn pod_without_runtime_class_goes_anywhere() {
        let n = node("b", json!({}), json!({}), json!({}));
        assert_eq!(run(&pod(json!({})), &n), Ok(()));
    }

    #[test]
    fn unknown_runtime_class_fails_prefilter() {
        let p = pod(json!({"runtimeClassName": "gvisor"}));
        let mut s = CycleState::default();
        assert_eq!(
            RuntimeHandler.pre_filter(&p, &cache(), &mut s),
            Err("RuntimeClass \"gvisor\" not found".to_string())
        );
    }
}
