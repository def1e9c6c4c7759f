//! The slsg coordinator: the actor that owns every run's job table (leases, heartbeats, retries,
//! journals, results) as a long-lived service or for one run, the retraining scheduler, the gRPC
//! service workers and operators talk to, and embedded runs that put the coordinator and its
//! workers in one process.

pub mod actor;
pub mod client;
pub mod dashboard;
pub mod embedded;
pub mod error;
pub mod fence;
pub mod guard;
pub mod http;
pub mod lease;
pub mod local_link;
pub mod metrics;
pub mod presence;
pub mod probes;
pub mod publish;
pub mod report;
mod run;
pub mod scheduler;
pub mod service;
pub mod stopping;
pub mod summary;
pub mod table;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod writer;
