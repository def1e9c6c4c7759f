//! The wire contract between coordinator and remote workers, generated from
//! `proto/cluster.proto`: messages, the client stub and the server trait (no handlers here),
//! the message size limit both sides set, and the bearer token's header value.

tonic::include_proto!("slsg.cluster.v1");

use tonic::metadata::{Ascii, MetadataValue};

/// The largest message either side sends or accepts.
pub const MESSAGE_LIMIT: usize = 4 << 20;

/// The largest cluster config an operator may submit: the bound on any config read.
pub const CONFIG_LIMIT: usize = crate::store::limits::CONFIG_BYTES as usize;
/// The most jobs one status page holds.
pub const STATUS_PAGE_LIMIT: usize = 1000;

/// Longest worker name (or device) the coordinator keeps; longer ones are refused.
pub const NAME_LIMIT: usize = 128;
/// Longest error message the coordinator keeps from a failure report; longer ones are cut.
pub const ERROR_LIMIT: usize = 4096;
/// Largest progress report (JSON) the coordinator keeps; larger ones are dropped.
pub const PROGRESS_LIMIT: usize = 16 * 1024;
/// Largest result summary (JSON) a completion may carry: the bound on a stored `result.json`.
pub const RESULT_LIMIT: usize = crate::store::limits::RESULT_BYTES as usize;

/// The version of the wire contract and of the documents kept in the store (journals,
/// results, specifications, cards). Adding a field that older readers may skip does not change
/// it: every reader accepts fields it does not know. A change older processes cannot follow
/// raises it, and a coordinator refuses workers that speak another.
pub const PROTOCOL_VERSION: u32 = 1;

/// The protocol of a worker that sent `protocol` at `Register`: workers from before the field
/// existed send 0 and speak protocol 1.
pub fn worker_protocol(protocol: u32) -> u32 {
    protocol.max(1)
}

/// The metadata key every request carries its token in.
pub const AUTHORIZATION: &str = "authorization";

#[derive(Debug, thiserror::Error)]
#[error("the token must be printable ASCII")]
pub struct TokenError;

/// `Bearer <token>`, the value of the [`AUTHORIZATION`] header.
pub fn bearer(token: &str) -> Result<MetadataValue<Ascii>, TokenError> {
    format!("Bearer {token}").parse().map_err(|_| TokenError)
}

impl From<crate::job::FailureKind> for FailureKind {
    fn from(kind: crate::job::FailureKind) -> Self {
        match kind {
            crate::job::FailureKind::Retryable => FailureKind::Retryable,
            crate::job::FailureKind::Permanent => FailureKind::Permanent,
            crate::job::FailureKind::GiveBack => FailureKind::GiveBack,
            crate::job::FailureKind::Upstream => FailureKind::Upstream,
        }
    }
}

impl From<FailureKind> for crate::job::FailureKind {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Retryable => crate::job::FailureKind::Retryable,
            FailureKind::Permanent => crate::job::FailureKind::Permanent,
            FailureKind::GiveBack => crate::job::FailureKind::GiveBack,
            FailureKind::Upstream => crate::job::FailureKind::Upstream,
        }
    }
}
