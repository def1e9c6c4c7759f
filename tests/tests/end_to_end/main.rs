//! The `slsg` binary and cluster end to end, one module per surface. They are one test binary
//! so that the harness runs tests of different modules side by side (most wait on processes,
//! not on the CPU) and the build links one binary instead of one per module. `../outage.rs`
//! stays a binary of its own: it stops the S3 server every other module here stores in.
//!
//! One module: `cargo test -p slsg-tests --test end_to_end tls::`.

mod cli_data;
mod compat;
mod dashboard;
mod datasets;
mod deploy;
mod embedded;
mod faults;
mod fence;
mod fit;
mod gpu;
mod malformed;
mod network;
mod observability;
mod pipeline;
mod remote;
mod search;
mod service;
mod streams;
mod tls;
