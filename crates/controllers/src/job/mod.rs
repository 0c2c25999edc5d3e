//! The Job controller (in progress).

/// Run the Job controller.
pub async fn run(_client: kube::Client) -> anyhow::Result<()> {
    std::future::pending().await
}
