//! What the long-lived commands (`coordinator`, `worker`, `retrain`'s schedule, `fit`) share: the
//! signals they stop on and the health port they serve.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use slsg_coordinator::guard::Limits;
use slsg_coordinator::http::serve_http;

use super::streams::outln;

/// SIGTERM (what Kubernetes and systemd send) or Ctrl-C.
pub(super) async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Serves `app` on the health port in a task of its own; it ends when the task is aborted.
pub(super) async fn start_http(
    address: SocketAddr,
    app: Router,
    what: &str,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("--http-listen {address}"))?;
    let local = listener.local_addr()?;
    outln!("{what} on http://{local}");
    Ok(tokio::spawn(async move {
        if let Err(e) = serve_http(listener, app, Limits::default(), std::future::pending()).await {
            tracing::error!("the health port {local} stopped: {e}");
        }
    }))
}
