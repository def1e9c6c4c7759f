//! The live dashboard on the coordinator's health port: one page that polls `/api/dashboard`
//! (runs and their jobs by state, running jobs with their progress, workers and their devices,
//! leaderboards as they fill, the model registry, links to finished runs' reports). The bearer
//! token protects it: given once through a form, then carried by an `HttpOnly`,
//! `SameSite=Strict` cookie.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use slsg::job::{JobState, LeaderboardEntry, RunOverview};
use slsg::registry::{HistoryEntry, Registry};
use slsg::store::layout::RunKeys;
use tokio::sync::Mutex;

use crate::actor::CoordinatorMessage;
use crate::http::Peer;
use crate::metrics::WorkerPresence;
use crate::probes::{CoordinatorProbes, PROBE_TIMEOUT};
use crate::service::constant_time_eq;

const PAGE: &str = include_str!("page.html");
const LOGIN: &str = include_str!("login.html");
const COOKIE: &str = "slsg_token";
/// How long a browser keeps the token: a working day.
const COOKIE_SECONDS: u64 = 12 * 3600;
/// The registry is read from the store at most this often, however many browsers poll.
const REGISTRY_REFRESH: Duration = Duration::from_secs(30);
/// Decisions shown per category.
const HISTORY_SHOWN: usize = 5;
/// Longest token a login form may carry.
const TOKEN_LIMIT: usize = 4096;

/// Who may see the dashboard.
#[derive(Clone, Debug)]
pub enum Access {
    /// Anyone who reaches the port (the coordinator takes workers without a token).
    Open,
    /// Whoever gives the token: over a connection from this machine (a browser here, an SSH
    /// tunnel, `kubectl port-forward`, which connects inside the pod), or from anywhere when
    /// `plaintext` says the network is encrypted below. The form and the cookie cross the
    /// connection in plain HTTP, so a token from another machine is otherwise refused.
    Token { token: String, plaintext: bool },
}

impl Access {
    /// The token, if the connection from `peer` may carry it; `None` when none is needed.
    fn token_for(&self, peer: Peer) -> Result<Option<&str>, (StatusCode, String)> {
        match self {
            Access::Open => Ok(None),
            // Canonical: an IPv4 loopback peer on a dual-stack socket reads `::ffff:127.0.0.1`.
            Access::Token { token, plaintext }
                if *plaintext || peer.0.ip().to_canonical().is_loopback() =>
            {
                Ok(Some(token.as_str()))
            }
            Access::Token { .. } => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "the dashboard takes the coordinator's token in plain HTTP, so not from {}: reach it from the coordinator's machine (an SSH tunnel, kubectl port-forward) or give the coordinator --allow-plaintext on an encrypted network",
                    peer.0.ip()
                ),
            )),
        }
    }
}

/// What the page polls.
#[derive(Serialize)]
struct Snapshot {
    unix_ms: u64,
    runs: Vec<RunRow>,
    running: Vec<RunningRow>,
    workers: Vec<WorkerPresence>,
    leaderboards: Vec<Board>,
    registry: Vec<CategoryModels>,
    /// Why the registry could not be read, if it could not.
    registry_error: Option<String>,
    next_check_unix: Option<u64>,
}

#[derive(Serialize)]
struct RunRow {
    #[serde(flatten)]
    overview: RunOverview,
    /// The finished run's report, on this port.
    report: Option<String>,
}

#[derive(Serialize)]
struct RunningRow {
    run: String,
    job: String,
    kind: &'static str,
    category: String,
    worker: String,
    attempt: u32,
    stage: Option<String>,
    step: Option<u64>,
    total_steps: Option<u64>,
    losses: std::collections::BTreeMap<String, f64>,
    images_per_second: Option<f64>,
}

#[derive(Serialize)]
struct Board {
    run: String,
    category: String,
    entries: Vec<LeaderboardEntry>,
}

#[derive(Clone, Serialize)]
struct CategoryModels {
    category: String,
    current: Option<String>,
    previous: Option<String>,
    /// The newest decisions, newest first.
    history: Vec<HistoryEntry>,
}

type RegistryCache = Option<(Instant, Result<Vec<CategoryModels>, String>)>;

struct Dashboard {
    probes: Arc<CoordinatorProbes>,
    registry: Registry,
    access: Access,
    cache: Mutex<RegistryCache>,
}

/// The dashboard's routes, to serve beside the probes.
pub fn routes(probes: Arc<CoordinatorProbes>, registry: Registry, access: Access) -> Router {
    let dashboard = Arc::new(Dashboard {
        probes,
        registry,
        access,
        cache: Mutex::new(None),
    });
    Router::new()
        .route("/", get(page))
        .route("/login", axum::routing::post(login))
        .route("/api/dashboard", get(api))
        .route("/runs/{run}/report", get(report))
        .with_state(dashboard)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Dashboard {
    /// `Ok` if the request carries the token (cookie or bearer header) over a connection that
    /// may carry it, else the refusal.
    fn admit(&self, peer: Peer, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let Some(token) = self.access.token_for(peer)? else {
            return Ok(());
        };
        let expected = hex(token.as_bytes());
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE && constant_time_eq(value.as_bytes(), expected.as_bytes())
            });
        let from_header = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()));
        if from_cookie || from_header {
            Ok(())
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                "the dashboard needs the coordinator's token".into(),
            ))
        }
    }

    async fn snapshot(&self) -> Result<Snapshot, String> {
        let actor = self.probes.actor().map_err(|e| e.to_string())?;
        let metrics = ractor::call_t!(
            actor,
            |reply| CoordinatorMessage::Metrics { reply },
            PROBE_TIMEOUT.as_millis() as u64
        )
        .map_err(|e| format!("the coordinator did not answer: {e}"))?;
        let mut leaderboards = Vec::new();
        for run in metrics.overview.runs.iter().filter(|r| !r.finished) {
            let status = ractor::call_t!(
                actor,
                |reply| CoordinatorMessage::RunStatus {
                    run: run.run.clone(),
                    offset: 0,
                    limit: 0,
                    reply,
                },
                PROBE_TIMEOUT.as_millis() as u64
            )
            .map_err(|e| format!("the coordinator did not answer: {e}"))?;
            if let Ok(status) = status {
                leaderboards.extend(status.leaderboard.into_iter().map(|(category, entries)| {
                    Board {
                        run: run.run.clone(),
                        category,
                        entries,
                    }
                }));
            }
        }
        let running = metrics
            .running
            .iter()
            .map(|job| {
                let (worker, attempt) = match &job.status.state {
                    JobState::Leased {
                        worker, attempt, ..
                    } => (worker.clone(), *attempt),
                    _ => (String::new(), job.status.attempts),
                };
                let progress = job.status.progress.as_ref();
                RunningRow {
                    run: job.run.clone(),
                    job: job.status.id.clone(),
                    kind: job.status.kind.name(),
                    category: job.status.category.clone(),
                    worker,
                    attempt,
                    stage: progress.map(|p| p.stage.clone()),
                    step: progress.map(|p| p.step),
                    total_steps: progress.map(|p| p.total_steps),
                    losses: progress.map(|p| p.losses.clone()).unwrap_or_default(),
                    images_per_second: progress.map(|p| p.images_per_second),
                }
            })
            .collect();
        let (registry, registry_error) = match self.registry().await {
            Ok(models) => (models, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Ok(Snapshot {
            unix_ms: now_ms(),
            runs: metrics
                .overview
                .runs
                .iter()
                .map(|overview| RunRow {
                    report: (overview.finished && RunKeys::new(&overview.run).is_ok())
                        .then(|| format!("runs/{}/report", overview.run)),
                    overview: overview.clone(),
                })
                .collect(),
            running,
            workers: metrics.workers,
            leaderboards,
            registry,
            registry_error,
            next_check_unix: metrics.overview.next_check_unix,
        })
    }

    /// The registry, read again once the cached copy is older than `REGISTRY_REFRESH`.
    async fn registry(&self) -> Result<Vec<CategoryModels>, String> {
        let mut cache = self.cache.lock().await;
        if let Some((at, models)) = cache.as_ref()
            && at.elapsed() < REGISTRY_REFRESH
        {
            return models.clone();
        }
        let models = self.read_registry().await.map_err(|e| e.to_string());
        *cache = Some((Instant::now(), models.clone()));
        models
    }

    async fn read_registry(&self) -> Result<Vec<CategoryModels>, slsg::registry::RegistryError> {
        let mut models = Vec::new();
        for category in self.registry.categories().await? {
            let mut history = self.registry.history(&category).await?;
            history.reverse();
            history.truncate(HISTORY_SHOWN);
            models.push(CategoryModels {
                current: self.registry.current(&category).await?,
                previous: self.registry.previous(&category).await?,
                category,
                history,
            });
        }
        Ok(models)
    }
}

/// The login form with a message (why it is shown), answered with `status`.
fn login_page(status: StatusCode, message: &str) -> Response {
    let escaped = crate::report::chart::escape(message);
    (status, Html(LOGIN.replace("{{message}}", &escaped))).into_response()
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page(
    State(dashboard): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    no_store(match dashboard.admit(peer, &headers) {
        Ok(()) => Html(PAGE).into_response(),
        Err((StatusCode::UNAUTHORIZED, _)) => login_page(
            StatusCode::UNAUTHORIZED,
            "Give the coordinator's token (SLSG_TOKEN) to see the dashboard.",
        ),
        Err((status, reason)) => (status, format!("{reason}\n")).into_response(),
    })
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(dashboard): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Form(form): Form<Login>,
) -> Response {
    let token = match dashboard.access.token_for(peer) {
        Ok(None) => return redirect_home(None),
        Ok(Some(token)) => token,
        Err((status, reason)) => return (status, format!("{reason}\n")).into_response(),
    };
    if form.token.len() > TOKEN_LIMIT || !constant_time_eq(form.token.as_bytes(), token.as_bytes())
    {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "That is not the coordinator's token.",
        );
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_SECONDS}",
        hex(token.as_bytes())
    );
    redirect_home(Some(cookie))
}

fn redirect_home(cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    no_store(response)
}

async fn api(
    State(dashboard): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, reason)) = dashboard.admit(peer, &headers) {
        return no_store(
            (status, axum::Json(serde_json::json!({ "error": reason }))).into_response(),
        );
    }
    no_store(match dashboard.snapshot().await {
        Ok(snapshot) => axum::Json(snapshot).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": reason })),
        )
            .into_response(),
    })
}

async fn report(
    State(dashboard): State<Arc<Dashboard>>,
    Path(run): Path<String>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, reason)) = dashboard.admit(peer, &headers) {
        return (status, format!("{reason}\n")).into_response();
    }
    let Ok(keys) = RunKeys::new(&run) else {
        return (StatusCode::NOT_FOUND, "no such run\n").into_response();
    };
    match dashboard.registry.store().get(&keys.report()).await {
        Ok(Some(bytes)) => {
            no_store(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response())
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("run `{run}` has no report (yet)\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(address: &str) -> Peer {
        Peer(address.parse().unwrap())
    }

    #[test]
    fn the_token_crosses_plain_http_only_from_this_machine_unless_allowed() {
        let rule = |plaintext| Access::Token {
            token: "t".into(),
            plaintext,
        };
        let allowed = |access: Access, from: &str| {
            access.token_for(peer(from)).map(|t| t.map(str::to_string))
        };
        assert_eq!(allowed(rule(false), "127.0.0.1:5000"), Ok(Some("t".into())));
        assert_eq!(allowed(rule(false), "[::1]:5000"), Ok(Some("t".into())));
        assert_eq!(
            allowed(rule(false), "[::ffff:127.0.0.1]:5000"),
            Ok(Some("t".into()))
        );
        let refused = allowed(rule(false), "10.1.2.3:5000").unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
        assert!(refused.1.contains("10.1.2.3") && refused.1.contains("--allow-plaintext"));
        assert_eq!(allowed(rule(true), "10.1.2.3:5000"), Ok(Some("t".into())));
        assert_eq!(allowed(Access::Open, "10.1.2.3:5000"), Ok(None));
    }

    #[test]
    fn the_cookie_carries_any_token_as_hex() {
        assert_eq!(hex(b"a; b=c"), "613b20623d63");
    }
}
