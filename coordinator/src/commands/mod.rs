//! One module per subcommand of `slsg`: thin handlers that parse arguments, forward to the
//! libraries and print; no training, scheduling or storage logic lives here.

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
mod progress;
pub mod retrain;
pub mod serve;
pub mod simulate;
pub mod status;
pub mod submit;
pub mod synth;
pub mod train;
pub mod worker;
