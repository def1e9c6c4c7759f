//! What can go wrong in the coordinator library: the store, the registry, the journal, the actor
//! system and the gRPC transport, each its own variant.

use std::sync::Arc;

use slsg::job::PlanError;
use slsg::proto::TokenError;
use slsg::registry::RegistryError;
use slsg::retrain::RetrainError;
use slsg::store::{NameError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Retrain(#[from] RetrainError),
    #[error("{origin}: its store `{store}` is not the one this coordinator serves (`{serving}`)")]
    OtherStore {
        origin: String,
        store: String,
        serving: String,
    },
    #[error("{origin}: dataset `{dataset}`{}", not_allowed(link.as_deref()))]
    DatasetNotAllowed {
        origin: String,
        dataset: String,
        /// The link in the dataset that leads outside, when its own folder does not.
        link: Option<String>,
    },
    #[error("writing the journal: {0}")]
    Journal(Arc<StoreError>),
    #[error("the journal writer stopped")]
    JournalStopped,
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "run `{run}` is in progress with another plan; wait for it to finish or give the new one another [run] name"
    )]
    RunInProgress { run: String },
    #[error(
        "this coordinator holds its limit of {limit} open run(s) (--max-open-runs); submit again once one has finished"
    )]
    TooManyRuns { limit: usize },
    #[error("no run `{run}` in this coordinator")]
    UnknownRun { run: String },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
    #[error("starting the coordinator: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("the coordinator actor stopped: {0}")]
    ActorGone(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("listening on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A certificate or key file, or plain text where TLS is needed.
    #[error("{0}")]
    Tls(String),
}

fn not_allowed(link: Option<&str>) -> String {
    const ROOTS: &str = "the folders this coordinator reads datasets from (--dataset-root)";
    match link {
        None => format!(" is not a folder below {ROOTS}"),
        Some(link) => format!(": `{link}` is a link that does not resolve below {ROOTS}"),
    }
}

impl CoordinatorError {
    /// A call to the coordinator actor that found it gone.
    pub fn gone(e: impl std::fmt::Display) -> Self {
        CoordinatorError::ActorGone(e.to_string())
    }
}
