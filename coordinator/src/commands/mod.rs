//! One module per subcommand of `slsg`: thin handlers that parse arguments, forward to the
//! libraries and print; no training, scheduling or storage logic lives here (a retraining
//! schedule's wait is the coordinator library's, a stage's training the pipeline's).

mod args;
mod cluster_output;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod models;
pub mod plan;
pub mod predict;
mod process;
mod progress;
pub mod report;
pub mod retrain;
pub mod serve;
pub mod simulate;
pub mod status;
pub(crate) mod streams;
pub mod submit;
pub mod synth;
pub mod train;
mod watch;
pub mod worker;

/// A command's error, with what to do about it where the error alone does not say: a token
/// refused while `SLSG_TOKEN` is not set.
pub fn with_hint(error: anyhow::Error) -> anyhow::Error {
    let token_refused = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<slsg_worker::LinkError>(),
            Some(slsg_worker::LinkError::Token(_))
        )
    });
    if token_refused && args::token_from_env().is_none() {
        return error.context("SLSG_TOKEN is not set (it holds the coordinator's bearer token)");
    }
    error
}
