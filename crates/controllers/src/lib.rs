//! skiff's scheduler and workload controllers.
//!
//! Every one of them is a client of the Kubernetes API (kube-rs), whether it
//! runs inside `skiff up` or elsewhere: watch, cache, reconcile
//! idempotently, requeue with back-off. Besides the workload controllers,
//! [`endpointslice`] publishes which pods back each Service and
//! [`nodeipam`] gives each Node its pod subnet.

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod hash;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod reconcile;
pub mod replicaset;
pub mod scaletozero;
pub mod scheduler;
pub mod statefulset;
#[cfg(test)]
pub(crate) mod testing;

/// Settings of the controllers that have any, as `skiff up` flags set them.
#[derive(Clone, Default)]
pub struct Settings {
    pub node_lifecycle: nodelifecycle::Config,
    /// The cluster CIDR node pod subnets are cut from, and their size
    /// (default `10.244.0.0/16` in `/24`s).
    pub pod_network: nodeipam::Config,
    /// Where the scheduler reads images' platforms from.
    pub images: Option<std::sync::Arc<dyn scheduler::ImageResolver>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("node_lifecycle", &self.node_lifecycle)
            .field("pod_network", &self.pod_network)
            .field("images", &self.images.is_some())
            .finish()
    }
}

/// Run every controller and the scheduler until one of them fails.
pub async fn run_all(client: kube::Client, settings: Settings) -> anyhow::Result<()> {
    // One watch per kind for every controller; it lives as long as they do.
    let informers = reconcile::Informers::new(client.clone());
    let mut parts = tokio::task::JoinSet::new();
    let c = client.clone();
    let images = settings.images.clone();
    parts.spawn(async move {
        let cfg = scheduler::Config {
            images,
            ..Default::default()
        };
        let r = scheduler::run(c, cfg).await;
        ("scheduler", r)
    });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move { ("ReplicaSet controller", replicaset::run_with(c, &i).await) });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move { ("Deployment controller", deployment::run_with(c, &i).await) });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move { ("DaemonSet controller", daemonset::run_with(c, &i).await) });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move { ("Job controller", job::run_with(c, &i).await) });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move {
        let r = nodelifecycle::run_with(c, settings.node_lifecycle, &i).await;
        ("node lifecycle controller", r)
    });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move { ("StatefulSet controller", statefulset::run_with(c, &i).await) });
    let c = client.clone();
    let i = informers.clone();
    let pod_network = settings.pod_network.clone();
    parts.spawn(async move {
        let r = nodeipam::run_with(c, pod_network, &i).await;
        ("node IPAM controller", r)
    });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move {
        let r = endpointslice::run_with(c, &i).await;
        ("EndpointSlice and Endpoints controller", r)
    });
    let c = client.clone();
    let i = informers.clone();
    parts.spawn(async move {
        (
            "scale-to-zero controller",
            scaletozero::run_with(c, &i).await,
        )
    });
    match parts.join_next().await {
        Some(Ok((name, Ok(())))) => anyhow::bail!("the {name} stopped"),
        Some(Ok((name, Err(e)))) => Err(e.context(format!("the {name} failed"))),
        Some(Err(e)) => anyhow::bail!("a controller task panicked: {e}"),
        None => anyhow::bail!("no controllers to run"),
    }
}
