//! The slsg coordinator: the actor that owns a run's job table (leases, heartbeats, retries,
//! journal, results), the gRPC service remote workers talk to, and embedded runs that put the
//! coordinator and its workers in one process.

pub mod actor;
pub mod embedded;
pub mod error;
pub mod local_link;
pub mod publish;
pub mod service;
pub mod table;
