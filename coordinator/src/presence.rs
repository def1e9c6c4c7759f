//! Which workers the coordinator heard from lately, with their devices: a pure, bounded map (time
//! passed in), so made-up worker names cannot grow the coordinator's memory.

use std::collections::HashMap;

use crate::metrics::WorkerPresence;

/// A worker not heard from for this long is no longer shown or counted.
pub const WORKER_SEEN_MS: u64 = 90_000;
/// Most workers remembered at once; past it, the one heard from longest ago is forgotten.
pub const MAX_WORKERS_REMEMBERED: usize = 4096;

struct Seen {
    device: Option<String>,
    /// Milliseconds since the epoch.
    last: u64,
    /// It asked for work or reported on it: a registration alone (a worker process checking
    /// that the coordinator answers) is not a working slot.
    active: bool,
}

#[derive(Default)]
pub struct Presence {
    workers: HashMap<String, Seen>,
}

impl Presence {
    /// `worker` registered with `device`.
    pub fn registered(&mut self, worker: &str, device: &str, now_ms: u64) {
        self.entry(worker, now_ms).device = Some(device.to_string());
    }

    /// `worker` asked for work or reported on it.
    pub fn seen(&mut self, worker: &str, now_ms: u64) {
        let seen = self.entry(worker, now_ms);
        seen.last = now_ms;
        seen.active = true;
    }

    /// Forgets the workers not heard from within `WORKER_SEEN_MS`.
    pub fn prune(&mut self, now_ms: u64) {
        self.workers
            .retain(|_, seen| now_ms.saturating_sub(seen.last) < WORKER_SEEN_MS);
    }

    /// The working slots heard from within `WORKER_SEEN_MS`, by name.
    pub fn active(&self, now_ms: u64) -> Vec<WorkerPresence> {
        let mut workers: Vec<WorkerPresence> = self
            .workers
            .iter()
            .filter(|(_, seen)| seen.active && now_ms.saturating_sub(seen.last) < WORKER_SEEN_MS)
            .map(|(name, seen)| WorkerPresence {
                name: name.clone(),
                device: seen.device.clone(),
                seen_ms_ago: now_ms.saturating_sub(seen.last),
            })
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        workers
    }

    fn entry(&mut self, worker: &str, now_ms: u64) -> &mut Seen {
        if !self.workers.contains_key(worker) && self.workers.len() >= MAX_WORKERS_REMEMBERED {
            let oldest = self
                .workers
                .iter()
                .min_by_key(|(name, seen)| (seen.last, name.as_str()))
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.workers.remove(&oldest);
            }
        }
        self.workers.entry(worker.to_string()).or_insert(Seen {
            device: None,
            last: now_ms,
            active: false,
        })
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.workers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_alone_is_not_a_working_slot() {
        let mut presence = Presence::default();
        presence.registered("host", "probe", 0);
        assert!(presence.active(10).is_empty());
        presence.registered("host-0", "cuda:0", 0);
        presence.seen("host-0", 5);
        let active = presence.active(10);
        assert_eq!(active.len(), 1);
        assert_eq!(
            (
                active[0].name.as_str(),
                active[0].device.as_deref(),
                active[0].seen_ms_ago
            ),
            ("host-0", Some("cuda:0"), 5)
        );
    }

    #[test]
    fn silent_workers_are_dropped_and_forgotten() {
        let mut presence = Presence::default();
        presence.seen("a", 0);
        presence.seen("b", 50_000);
        assert_eq!(
            presence.active(WORKER_SEEN_MS).len(),
            1,
            "a is silent for 90 s"
        );
        presence.prune(WORKER_SEEN_MS);
        assert_eq!(presence.remembered(), 1);
        presence.seen("a", WORKER_SEEN_MS + 1);
        assert_eq!(
            presence.active(WORKER_SEEN_MS + 1).len(),
            2,
            "and back when heard"
        );
    }

    #[test]
    fn made_up_names_cannot_grow_it_past_its_bound() {
        let mut presence = Presence::default();
        presence.seen("real", 10_000);
        for i in 0..MAX_WORKERS_REMEMBERED as u64 + 100 {
            presence.registered(&format!("made-up-{i}"), "cpu", i);
        }
        assert_eq!(presence.remembered(), MAX_WORKERS_REMEMBERED);
        presence.seen("real", 20_000);
        assert!(
            presence.active(20_000).iter().any(|w| w.name == "real"),
            "a worker that keeps talking stays"
        );
    }
}
