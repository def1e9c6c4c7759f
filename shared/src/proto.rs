//! The wire contract between coordinator and remote workers, generated from
//! `proto/cluster.proto`: messages, the client stub and the server trait (no handlers here).

tonic::include_proto!("slsg.cluster.v1");

impl From<crate::job::FailureKind> for FailureKind {
    fn from(kind: crate::job::FailureKind) -> Self {
        match kind {
            crate::job::FailureKind::Retryable => FailureKind::Retryable,
            crate::job::FailureKind::Permanent => FailureKind::Permanent,
            crate::job::FailureKind::GiveBack => FailureKind::GiveBack,
        }
    }
}

impl From<FailureKind> for crate::job::FailureKind {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Retryable => crate::job::FailureKind::Retryable,
            FailureKind::Permanent => crate::job::FailureKind::Permanent,
            FailureKind::GiveBack => crate::job::FailureKind::GiveBack,
        }
    }
}
