//! slsg: SLSG industrial anomaly detection (Yang et al.) as a library: datasets, synthetic data,
//! anomaly simulation, metrics, and the contracts the worker and coordinator share.
//!
//! Data flows one way: `data` → `simulate` → `metrics`; `raster` and `seed` are the
//! shared ground floor and `synth` only writes files.

pub mod backend;
pub mod config;
pub mod data;
pub mod infer;
pub mod job;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod prepare;
pub mod proto;
pub mod raster;
pub mod seed;
pub mod simulate;
pub mod store;
pub mod synth;
pub mod train;
