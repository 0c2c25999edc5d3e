//! ImagePlatform: a Linux image only lands on nodes whose
//! `kubernetes.io/os` and `kubernetes.io/arch` it was built for.
//!
//! Kubernetes has no such check: an amd64-only image bound to an arm64
//! node fails there with `exec format error`. skiff reads each image's
//! manifest from its registry once (an index's platforms, or a single
//! manifest's config) through [`super::super::ImageResolver`], and this
//! filter compares. Wasm images — and every pod whose RuntimeClass picks
//! a Wasm handler — are architecture-neutral and never looked up.
//!
//! When the lookup fails or is slow (a registry the control plane cannot
//! reach, an image only imported on nodes), the image's platforms are
//! unknown and no node is ruled out: the pod is no worse off than on
//! Kubernetes.

use crate::scheduler::cache::{Cache, ImageTarget, NodeInfo, PodInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, Rejection};

const NAME: &str = "ImagePlatform";

/// RuntimeClass handlers that run Wasm, for which images are
/// architecture-neutral.
pub const WASM_HANDLERS: &[&str] = &["wasmtime"];

/// The ImagePlatform filter.
pub struct ImagePlatform;

/// The images of a pod whose platforms matter: every container and init
/// container image, unless the pod's RuntimeClass runs Wasm. Empty when the
/// RuntimeClass is not known yet (RuntimeHandler rejects the pod then).
pub fn images_to_check(pod: &PodInfo, cache: &Cache) -> Vec<String> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    if let Some(class) = spec.runtime_class_name.as_deref().filter(|c| !c.is_empty()) {
        match cache.runtime_handler(class) {
            Some(h) if !WASM_HANDLERS.contains(&h) => {}
            _ => return Vec::new(),
        }
    }
    let mut images: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.clone())
        .filter(|i| !i.is_empty())
        .collect();
    images.sort();
    images.dedup();
    images
}

/// Images with known native platforms, per cycle.
struct Needed(Vec<(String, Vec<(String, String)>)>);

/// `linux/amd64, linux/arm64`.
fn list(platforms: &[(String, String)]) -> String {
    platforms
        .iter()
        .map(|(os, arch)| format!("{os}/{arch}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FilterPlugin for ImagePlatform {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), String> {
        let needed = images_to_check(pod, cache)
            .into_iter()
            .filter_map(|image| match cache.image_target(&image) {
                Some(ImageTarget::Platforms(p)) if !p.is_empty() => Some((image, p.clone())),
                _ => None,
            })
            .collect();
        state.write(NAME, Needed(needed));
        Ok(())
    }

    fn filter(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
        let Some(Needed(needed)) = state.read::<Needed>(NAME) else {
            return Ok(());
        };
        if needed.is_empty() {
            return Ok(());
        }
        let os = node
            .labels
            .get("kubernetes.io/os")
            .map_or("linux", String::as_str);
        let Some(arch) = node.labels.get("kubernetes.io/arch") else {
            return Ok(());
        };
        for (image, platforms) in needed {
            if !platforms.iter().any(|(o, a)| o == os && a == arch) {
                return Err(Rejection::new(format!(
                    "node(s) didn't match the platforms of image {image:?} ({})",
                    list(platforms)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use k8s_openapi::api::node::v1::RuntimeClass;
    use serde_json::json;

    fn run(c: &Cache, p: &PodInfo, n: &NodeInfo) -> Result<(), Rejection> {
        let mut s = CycleState::default();
        ImagePlatform.pre_filter(p, c, &mut s).expect("pre_filter");
        ImagePlatform.filter(p, n, &s)
    }

    fn arch(a: &str) -> NodeInfo {
        node(
            a,
            json!({"kubernetes.io/arch": a, "kubernetes.io/os": "linux"}),
            json!({}),
            json!({}),
        )
    }

    #[test]
    fn amd64_only_image_stays_off_arm64() {
        let mut c = Cache::default();
        c.set_image_target(
            "reg/amd:1",
            ImageTarget::Platforms(vec![("linux".into(), "amd64".into())]),
        );
        let p = pod(json!({"containers": [{"name": "c", "image": "reg/amd:1"}]}));
        assert!(run(&c, &p, &arch("amd64")).is_ok());
        assert_eq!(
            run(&c, &p, &arch("arm64")),
            Err(Rejection::new(
                "node(s) didn't match the platforms of image \"reg/amd:1\" (linux/amd64)"
            ))
        );
    }

    #[test]
    fn multi_arch_index_goes_to_either_and_init_containers_count() {
        let mut c = Cache::default();
        c.set_image_target(
            "reg/multi:1",
            ImageTarget::Platforms(vec![
                ("linux".into(), "amd64".into()),
                ("linux".into(), "arm64".into()),
            ]),
        );
        c.set_image_target(
            "reg/amd:1",
            ImageTarget::Platforms(vec![("linux".into(), "amd64".into())]),
        );
        let p = pod(json!({"containers": [{"name": "c", "image": "reg/multi:1"}]}));
        assert!(run(&c, &p, &arch("arm64")).is_ok());
        assert!(run(&c, &p, &arch("amd64")).is_ok());
        let with_init = pod(
            json!({"initContainers": [{"name": "i", "image": "reg/amd:1"}],
                                   "containers": [{"name": "c", "image": "reg/multi:1"}]}),
        );
        assert!(run(&c, &with_init, &arch("arm64")).is_err());
    }

    #[test]
    fn wasm_unknown_and_wasm_handlers_rule_nothing_out() {
        let mut c = Cache::default();
        c.set_image_target("reg/w:1", ImageTarget::Wasm);
        c.set_image_target("reg/u:1", ImageTarget::Unknown);
        c.set_image_target(
            "reg/amd:1",
            ImageTarget::Platforms(vec![("linux".into(), "amd64".into())]),
        );
        for img in ["reg/w:1", "reg/u:1", "reg/never-asked:1"] {
            let p = pod(json!({"containers": [{"name": "c", "image": img}]}));
            assert!(run(&c, &p, &arch("arm64")).is_ok(), "{img}");
        }
        // A pod whose RuntimeClass runs Wasm is never checked, nor looked up.
        let rc: RuntimeClass =
            serde_json::from_value(json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"}))
                .expect("rc");
        c.upsert_runtime_class(&rc);
        let p = pod(
            json!({"runtimeClassName": "wasm", "containers": [{"name": "c", "image": "reg/amd:1"}]}),
        );
        assert!(images_to_check(&p, &c).is_empty());
        assert!(run(&c, &p, &arch("arm64")).is_ok());
        // A Linux handler is checked.
        let rc: RuntimeClass =
            serde_json::from_value(json!({"metadata": {"name": "runc"}, "handler": "linux"}))
                .expect("rc");
        c.upsert_runtime_class(&rc);
        let p = pod(
            json!({"runtimeClassName": "runc", "containers": [{"name": "c", "image": "reg/amd:1"}]}),
        );
        assert_eq!(images_to_check(&p, &c), vec!["reg/amd:1".to_string()]);
        assert!(run(&c, &p, &arch("arm64")).is_err());
    }
}
