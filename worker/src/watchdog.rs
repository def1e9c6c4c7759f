//! Whether a running job still moves: its progress (stage and step) must change within a
//! limit, or the job counts as stalled (a hung device or step) and its lease goes back.

use std::time::{Duration, Instant};

use slsg::job::JobProgress;

/// How long a job's progress may stand still unless `--stall-seconds` says otherwise: far past
/// a first step's kernel tuning on a software GPU, or a trial waiting for its early-stopping
/// decision.
pub const DEFAULT_STALL_SECONDS: u64 = 1800;

/// A job's last progress and since when it has stood still.
#[derive(Debug)]
pub struct Watchdog {
    limit: Duration,
    last: Option<(String, u64)>,
    since: Instant,
}

impl Watchdog {
    /// Watching a job that started at `now`.
    pub fn new(limit: Duration, now: Instant) -> Self {
        Self {
            limit,
            last: None,
            since: now,
        }
    }

    /// The job's progress as of `now`: how long it has stood still, once that reaches the limit.
    pub fn observe(&mut self, progress: Option<&JobProgress>, now: Instant) -> Option<Duration> {
        let position = progress.map(|p| (p.stage.clone(), p.step));
        if position != self.last {
            self.last = position;
            self.since = now;
            return None;
        }
        let still = now.duration_since(self.since);
        (still >= self.limit).then_some(still)
    }

    /// Where the job stood still, for messages: `pretrain step 12`, or `before its first step`.
    pub fn position(&self) -> String {
        match &self.last {
            Some((stage, step)) => format!("{stage} step {step}"),
            None => "before its first step".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: &str, step: u64) -> JobProgress {
        JobProgress {
            stage: stage.into(),
            step,
            ..JobProgress::default()
        }
    }

    #[test]
    fn a_job_is_stalled_once_its_stage_and_step_stand_still_for_the_limit() {
        let limit = Duration::from_secs(60);
        let start = Instant::now();
        let mut watchdog = Watchdog::new(limit, start);
        assert_eq!(watchdog.observe(None, start + limit / 2), None);
        assert_eq!(
            watchdog.observe(None, start + limit),
            Some(limit),
            "no progress at all counts from the job's start"
        );
        assert_eq!(watchdog.position(), "before its first step");

        let moved = start + limit;
        assert_eq!(watchdog.observe(Some(&at("pretrain", 1)), moved), None);
        assert_eq!(
            watchdog.observe(Some(&at("pretrain", 1)), moved + limit / 2),
            None
        );
        // Other fields (losses, images/s, a validation) are not progress; a new stage is.
        let mut same = at("pretrain", 1);
        same.images_per_second = 9.0;
        assert_eq!(watchdog.observe(Some(&same), moved + limit / 2), None);
        assert_eq!(
            watchdog.observe(Some(&at("pretrain", 1)), moved + limit),
            Some(limit)
        );
        assert_eq!(watchdog.position(), "pretrain step 1");
        assert_eq!(
            watchdog.observe(Some(&at("segnet", 1)), moved + limit),
            None
        );
        assert_eq!(
            watchdog.observe(
                Some(&at("segnet", 1)),
                moved + 2 * limit - Duration::from_millis(1)
            ),
            None
        );
    }
}
