//! The live dashboard on the coordinator's health port: one page that polls `/api/dashboard`
//! (runs and their jobs by state, running jobs with their progress, workers and their devices,
//! leaderboards as they fill, the model registry, links to finished runs' reports). The bearer
//! token protects it: given once through a form, then carried by an `HttpOnly`,
//! `SameSite=Strict` cookie.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use slsg::job::{JobState, LeaderboardEntry, RunOverview};
use slsg::registry::{HistoryEntry, Registry};
use slsg::store::layout::RunKeys;
use tokio::sync::Mutex;

use crate::actor::CoordinatorMessage;
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
    /// Whoever gives the token.
    Token(String),
    /// Nobody: the token would travel in clear text to other machines; the reason says what to do.
    Refused(String),
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
    /// `Ok` if the request carries the token (cookie or bearer header), else the refusal.
    fn admit(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let token = match &self.access {
            Access::Open => return Ok(()),
            Access::Refused(reason) => return Err((StatusCode::FORBIDDEN, reason.clone())),
            Access::Token(token) => token,
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

async fn page(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    no_store(match dashboard.admit(&headers) {
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

async fn login(State(dashboard): State<Arc<Dashboard>>, Form(form): Form<Login>) -> Response {
    let token = match &dashboard.access {
        Access::Open => return redirect_home(None),
        Access::Refused(reason) => {
            return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
        }
        Access::Token(token) => token,
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

async fn api(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if let Err((status, reason)) = dashboard.admit(&headers) {
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
    headers: HeaderMap,
) -> Response {
    if let Err((status, reason)) = dashboard.admit(&headers) {
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

    #[test]
    fn the_cookie_carries_any_token_as_hex() {
        assert_eq!(hex(b"a; b=c"), "613b20623d63");
    }
}
