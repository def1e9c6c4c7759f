//! The library's integration tests, one module per concern, in one test binary so that the
//! harness runs the long ones (the backend parity runs, the training loops) beside the short
//! ones, and the build links one binary instead of one per module.
//!
//! One module: `cargo test --workspace --test library parity::`.

mod common;
mod formats;
mod metrics_hand;
mod metrics_reference;
mod model;
#[cfg(feature = "wgpu")]
mod parity;
mod training;
