//! The slsg worker: leases jobs from the coordinator, runs the anomaly simulation on CPU
//! threads and the training loop on its device, checkpoints and reports progress.
//! (The training it drives arrives with the model issue; this crate is its future home.)
