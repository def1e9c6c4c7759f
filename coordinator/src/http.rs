//! The health and metrics endpoints a process (coordinator or worker) serves on a port of their
//! own, for probes and scrapers: `/healthz` (alive), `/readyz` (able to work) and `/metrics`
//! (Prometheus text); the coordinator adds its dashboard beside them. Connections are bounded
//! like the gRPC port's.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::connect_info::Connected;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use futures::{Stream, StreamExt};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use tokio::net::TcpListener;

use crate::guard::{Guarded, Limits, incoming};

/// Why a probe or a scrape is answered `503 Service Unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// What the endpoints ask of the process.
pub trait Probes: Send + Sync + 'static {
    /// The process can still make progress (its actors run).
    fn alive(&self) -> impl Future<Output = Result<(), Unavailable>> + Send;
    /// The process can take work now (its state is loaded).
    fn ready(&self) -> impl Future<Output = Result<(), Unavailable>> + Send;
    /// Every metric, in the Prometheus text format.
    fn metrics(&self) -> impl Future<Output = Result<String, Unavailable>> + Send;
}

/// Connections the health port holds at once: probes and a scraper need few. A new one is
/// always served; the one silent longest makes room.
const HTTP_CONNECTIONS: usize = 64;

/// Longest silence of a connection to the health port: a dashboard asks every 2 s, a probe
/// or a scrape opens its own connection.
const HTTP_IDLE: Duration = Duration::from_secs(30);

/// The probe and metrics endpoints, to serve alone or beside other routes.
pub fn probe_routes<P: Probes>(probes: Arc<P>) -> Router {
    Router::new()
        .route("/healthz", get(alive::<P>))
        .route("/readyz", get(ready::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probes)
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve_probes<P: Probes>(
    listener: TcpListener,
    probes: Arc<P>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_http(listener, probe_routes(probes), limits, shutdown).await
}

/// Serves `app` on `listener`, its connections bounded, until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let limits = Limits {
        max_connections: limits.max_connections.min(HTTP_CONNECTIONS),
        idle: limits.idle.min(HTTP_IDLE),
        ..limits
    };
    let listener = GuardedListener {
        connections: Box::pin(incoming(listener, limits)),
        local,
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

fn answer(outcome: Result<(), Unavailable>) -> Response {
    match outcome {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn alive<P: Probes>(State(probes): State<Arc<P>>) -> Response {
    answer(probes.alive().await)
}

async fn ready<P: Probes>(State(probes): State<Arc<P>>) -> Response {
    answer(probes.ready().await)
}

async fn metrics<P: Probes>(State(probes): State<Arc<P>>) -> Response {
    match probes.metrics().await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// The address a request's connection came from (`ConnectInfo<Peer>` in a handler).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

type Connections = Pin<Box<dyn Stream<Item = std::io::Result<Guarded>> + Send>>;

/// The bounded connections as axum's listener.
pub struct GuardedListener {
    connections: Connections,
    local: SocketAddr,
}

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            match self.connections.next().await {
                Some(Ok(connection)) => {
                    let peer = connection.peer().unwrap_or(self.local);
                    return (connection, peer);
                }
                // The guard logs failed accepts and goes on; its stream never ends.
                Some(Err(_)) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
