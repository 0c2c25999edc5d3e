//! The StatefulSet controller (in progress).

/// Run the StatefulSet controller.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let _ = client;
    std::future::pending::<()>().await;
    Ok(())
}
