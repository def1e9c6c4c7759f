//! slsg: SLSG industrial anomaly detection (Yang, Liu, Yang, Wu) as a library: datasets,
//! anomaly simulation, the networks, training, inference, metrics, pictures of predictions, the
//! artifact store, the model registry, the category pipeline, and the contracts the worker and
//! coordinator share.
//!
//! Modules in layers; each uses only the layers below it (the README's layout table lists them
//! top-down, and the workspace's `tests/tests/layers.rs` checks every path a file uses):
//!
//! | layer | modules |
//! |---|---|
//! | contracts | `proto` (gRPC) |
//! | service | `retrain` (which categories need a new model; the retraining run) |
//! | jobs | `job` (cluster config, plan, specs, retraining schedule) |
//! | pipeline | `fit` (one category: prepare → pre-train → SegNet → selection → test evaluation) |
//! | registry | `registry` (versions, aliases, history, promotion gate) |
//! | learning | `train` (loops, validation), `infer` (detector, model files) |
//! | setup | `config` (the run config), `checkpoint` (the container, kept in the store) |
//! | method | `model` (networks, losses, maps), `picture` (a prediction drawn), `metrics`, `simulate`, `synth` |
//! | data | `data` (datasets, fingerprints), `store` (object store, key layout) |
//! | ground | `raster`, `parallel`, `cache` (folders renamed into place whole), `walk`, `seed`, `ranges`, `backend` |

pub mod backend;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod fit;
pub mod infer;
pub mod job;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod picture;
pub mod proto;
pub mod ranges;
pub mod raster;
pub mod registry;
pub mod retrain;
pub mod seed;
pub mod simulate;
pub mod store;
pub mod synth;
pub mod train;
pub mod walk;
