//! Cross-process end-to-end tests of the slsg binary (embedded runs, remote workers over gRPC,
//! the S3 server, faults) live in `tests/`; this library holds their shared helpers.
