//! Early stopping of one category's sweep trials: each validation score a trial's heartbeat
//! brings is recorded, and ASHA's rungs or the median rule say whether the trial goes on. Pure
//! logic with its records journaled, so a restarted coordinator judges as the first one would.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slsg::job::{EarlyStopping, JobId, StopRule, StoppedEarly, ValidationPoint};

/// What the rule says of a trial after its latest validation.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Continue,
    Stop(StoppedEarly),
}

/// One category's trials under an early-stopping rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trials {
    trials: BTreeMap<JobId, Trial>,
    /// ASHA: per rung, the trials recorded there and their score, in the order they arrived
    /// (a trial is compared with those recorded before it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    rungs: BTreeMap<u64, Vec<(JobId, f64)>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Trial {
    /// Validation scores by step.
    scores: BTreeMap<u64, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stopped: Option<StoppedEarly>,
}

impl Trial {
    /// The best score at or before `step` (the model a trial stopped there would keep).
    fn best_until(&self, step: u64) -> Option<f64> {
        self.scores
            .range(..=step)
            .map(|(_, &score)| score)
            .max_by(f64::total_cmp)
    }

    /// The mean of the scores at or before `step`.
    fn running_average(&self, step: u64) -> Option<f64> {
        let scores: Vec<f64> = self.scores.range(..=step).map(|(_, &s)| s).collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

impl Trials {
    /// Records `point` of trial `job` (whose last step is `max_steps`) and judges it. A step
    /// already recorded (a heartbeat repeats the latest validation; a resumed trial validates a
    /// step again) changes nothing; a stopped trial stays stopped.
    pub fn report(
        &mut self,
        rule: &EarlyStopping,
        job: &str,
        max_steps: u64,
        point: ValidationPoint,
    ) -> Verdict {
        let trial = self.trials.entry(job.to_string()).or_default();
        if let Some(stopped) = &trial.stopped {
            return Verdict::Stop(stopped.clone());
        }
        if !point.score.is_finite() || trial.scores.contains_key(&point.step) {
            return Verdict::Continue;
        }
        trial.scores.insert(point.step, point.score);
        let reason = match rule.rule {
            StopRule::Asha {
                reduction_factor, ..
            } => self.asha(rule, reduction_factor, job, max_steps, point.step),
            StopRule::Median {
                start_step,
                min_trials,
            } => self.median(start_step, min_trials, job, point.step),
        };
        match reason {
            Some(reason) => {
                let stopped = StoppedEarly {
                    step: point.step,
                    reason,
                };
                if let Some(trial) = self.trials.get_mut(job) {
                    trial.stopped = Some(stopped.clone());
                }
                Verdict::Stop(stopped)
            }
            None => Verdict::Continue,
        }
    }

    /// Whether reporting `step` of `job` would change nothing (recorded, or the trial stopped).
    pub fn knows(&self, job: &str, step: u64) -> bool {
        self.trials
            .get(job)
            .is_some_and(|t| t.stopped.is_some() || t.scores.contains_key(&step))
    }

    /// Where a trial stands: its latest recorded step, and whether it was stopped.
    pub fn judged(&self, job: &str) -> (Option<u64>, Option<&StoppedEarly>) {
        let trial = self.trials.get(job);
        (
            trial.and_then(|t| t.scores.keys().next_back().copied()),
            trial.and_then(|t| t.stopped.as_ref()),
        )
    }

    /// ASHA: at each rung the trial has reached and is not recorded at yet (a late report
    /// reaches several at once), its best score so far is compared with the `1 − 1/η` quantile
    /// of the scores recorded there before it; below it, the trial stops. Ties go on, and an
    /// empty rung stops nobody.
    fn asha(
        &mut self,
        rule: &EarlyStopping,
        reduction_factor: u64,
        job: &str,
        max_steps: u64,
        step: u64,
    ) -> Option<String> {
        let trial = &self.trials[job];
        for rung in rule.rungs(max_steps).into_iter().filter(|&r| r <= step) {
            let recorded = self.rungs.entry(rung).or_default();
            if recorded.iter().any(|(id, _)| id == job) {
                continue;
            }
            let score = trial
                .best_until(rung)
                .or_else(|| trial.best_until(step))
                .unwrap_or(f64::NEG_INFINITY);
            let others: Vec<f64> = recorded.iter().map(|(_, s)| *s).collect();
            recorded.push((job.to_string(), score));
            let Some(cutoff) = quantile(&others, 1.0 - 1.0 / reduction_factor as f64) else {
                continue;
            };
            if score < cutoff {
                return Some(format!(
                    "ASHA rung {rung}: best score {score:.4} is below {cutoff:.4}, the cutoff for the top 1/{reduction_factor} of the {} trials recorded there before it",
                    others.len()
                ));
            }
        }
        None
    }

    /// Median stopping: from `start_step` on, once `min_trials` other trials have validated at
    /// this step or later, the trial stops if its best score so far is below the median of
    /// their running averages up to this step. Ties go on.
    fn median(&self, start_step: u64, min_trials: usize, job: &str, step: u64) -> Option<String> {
        if step < start_step {
            return None;
        }
        let averages: Vec<f64> = self
            .trials
            .iter()
            .filter(|(id, t)| {
                id.as_str() != job && t.scores.keys().next_back().is_some_and(|&s| s >= step)
            })
            .filter_map(|(_, t)| t.running_average(step))
            .collect();
        if averages.len() < min_trials {
            return None;
        }
        let median = quantile(&averages, 0.5)?;
        let best = self.trials[job].best_until(step)?;
        (best < median).then(|| {
            format!(
                "median rule at step {step}: best score {best:.4} is below {median:.4}, the median of {} other trials' running averages",
                averages.len()
            )
        })
    }
}

/// The `q` quantile of `values`, interpolated linearly between neighbours (as NumPy's default);
/// `None` for no values.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    Some(sorted[low] + (position - low as f64) * (sorted[high] - sorted[low]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asha(grace_steps: u64, reduction_factor: u64) -> EarlyStopping {
        EarlyStopping::asha(grace_steps, reduction_factor)
    }

    fn median(start_step: u64, min_trials: usize) -> EarlyStopping {
        EarlyStopping::median(start_step, min_trials)
    }

    fn at(step: u64, score: f64) -> ValidationPoint {
        ValidationPoint { step, score }
    }

    fn stops(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Stop(_))
    }

    #[test]
    fn quantiles_interpolate_between_neighbours() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[0.3], 0.9), Some(0.3));
        assert_eq!(quantile(&[0.9, 0.5, 0.6], 0.5), Some(0.6));
        let q = quantile(&[0.5, 0.6, 0.9], 2.0 / 3.0).unwrap();
        assert!((q - 0.7).abs() < 1e-12, "{q}");
        assert_eq!(quantile(&[0.2, 0.4], 0.5), Some(0.30000000000000004));
    }

    #[test]
    fn asha_keeps_the_top_third_of_a_rung() {
        let rule = asha(10, 3);
        let mut trials = Trials::default();
        // The first trial meets an empty rung and goes on.
        assert_eq!(
            trials.report(&rule, "a", 100, at(10, 0.5)),
            Verdict::Continue
        );
        // One recorded: the cutoff is its score; a tie goes on, a lower score stops.
        assert_eq!(
            trials.report(&rule, "b", 100, at(10, 0.5)),
            Verdict::Continue
        );
        assert!(stops(&trials.report(&rule, "c", 100, at(10, 0.49))));
        // Recorded 0.5, 0.5, 0.49: the 2/3 quantile is 0.5.
        assert_eq!(
            trials.report(&rule, "d", 100, at(10, 0.9)),
            Verdict::Continue
        );
        // Recorded 0.49, 0.5, 0.5, 0.9: position 2 → 0.5; then 0.49, 0.5, 0.5, 0.6, 0.9:
        // position 8/3 → 0.5 + 2/3 · 0.1.
        assert_eq!(
            trials.report(&rule, "e", 100, at(10, 0.6)),
            Verdict::Continue
        );
        let Verdict::Stop(stopped) = trials.report(&rule, "f", 100, at(10, 0.566)) else {
            panic!("0.566 is below the cutoff 0.5667");
        };
        assert_eq!(stopped.step, 10);
        assert!(stopped.reason.contains("rung 10"), "{}", stopped.reason);
        assert!(stopped.reason.contains("0.5667"), "{}", stopped.reason);
    }

    #[test]
    fn a_rung_with_fewer_trials_than_the_reduction_factor_compares_with_those_there() {
        let rule = asha(10, 4);
        let mut trials = Trials::default();
        trials.report(&rule, "a", 100, at(10, 0.75));
        trials.report(&rule, "b", 100, at(10, 0.25));
        // b met one trial (0.75) and stopped. Two recorded (0.25, 0.75): the 3/4 quantile is
        // 0.625, which c ties.
        assert!(trials.judged("b").1.is_some());
        assert_eq!(
            trials.report(&rule, "c", 100, at(10, 0.625)),
            Verdict::Continue
        );
        // Three recorded (0.25, 0.625, 0.75): position 1.5 gives 0.6875.
        assert!(stops(&trials.report(&rule, "d", 100, at(10, 0.68))));
    }

    #[test]
    fn a_trial_is_judged_at_every_rung_with_its_best_score_so_far() {
        let rule = asha(10, 3);
        let mut trials = Trials::default();
        for (job, first, third) in [("a", 0.5, 0.95), ("b", 0.6, 0.97)] {
            trials.report(&rule, job, 100, at(10, first));
            trials.report(&rule, job, 100, at(30, third));
        }
        // c is well ahead at rung 10 (0.99), and its score then falls: rung 30 takes its best.
        assert_eq!(
            trials.report(&rule, "c", 100, at(10, 0.99)),
            Verdict::Continue
        );
        assert_eq!(
            trials.report(&rule, "c", 100, at(20, 0.1)),
            Verdict::Continue
        );
        assert_eq!(
            trials.report(&rule, "c", 100, at(30, 0.1)),
            Verdict::Continue
        );
        // d passes rung 10 (0.75 against 0.6 + 1/3 · 0.39 = 0.73 of 0.5, 0.6, 0.99) and stops
        // at rung 30 (0.8 against 0.97 + 1/3 · 0.02 of 0.95, 0.97, 0.99).
        assert_eq!(
            trials.report(&rule, "d", 100, at(10, 0.75)),
            Verdict::Continue
        );
        let Verdict::Stop(stopped) = trials.report(&rule, "d", 100, at(30, 0.8)) else {
            panic!("d should stop at rung 30");
        };
        assert_eq!(stopped.step, 30);
        assert!(stopped.reason.contains("rung 30"), "{}", stopped.reason);
        // Rungs stop below the trial's last step: trials of 10 steps are never judged.
        let mut short = Trials::default();
        short.report(&rule, "a", 10, at(10, 0.9));
        assert_eq!(short.report(&rule, "b", 10, at(10, 0.1)), Verdict::Continue);
    }

    #[test]
    fn late_and_repeated_reports() {
        let rule = asha(10, 3);
        let mut trials = Trials::default();
        trials.report(&rule, "a", 100, at(10, 0.9));
        trials.report(&rule, "a", 100, at(30, 0.9));
        // b's report of step 10 was lost: its first report, at 30, is recorded at rungs 10
        // and 30, at 10 with its best up to then (none: its best so far).
        assert!(stops(&trials.report(&rule, "b", 100, at(30, 0.5))));
        assert_eq!(trials.rungs[&10].len(), 2);
        // A stopped trial stays stopped, whatever it reports next.
        assert!(stops(&trials.report(&rule, "b", 100, at(40, 0.99))));
        // Out of order: c reports 30 before 10; 10 then only adds its score.
        assert_eq!(
            trials.report(&rule, "c", 100, at(30, 0.95)),
            Verdict::Continue
        );
        assert_eq!(
            trials.report(&rule, "c", 100, at(10, 0.2)),
            Verdict::Continue
        );
        assert_eq!(trials.judged("c"), (Some(30), None));
        // A heartbeat repeating a recorded step changes nothing.
        let before = trials.clone();
        assert_eq!(
            trials.report(&rule, "c", 100, at(30, 0.0)),
            Verdict::Continue
        );
        assert_eq!(trials, before);
        // A non-finite score is not recorded.
        assert_eq!(
            trials.report(&rule, "d", 100, at(10, f64::NAN)),
            Verdict::Continue
        );
        assert_eq!(trials.judged("d"), (None, None));
    }

    #[test]
    fn a_resumed_trial_keeps_its_history() {
        let rule = asha(10, 3);
        let mut trials = Trials::default();
        trials.report(&rule, "a", 100, at(10, 0.9));
        trials.report(&rule, "b", 100, at(10, 0.95));
        // b's worker is lost after step 20; its next attempt resumes from the checkpoint at 10
        // and validates 10 and 20 again: nothing is recorded twice, and its rung stays met.
        trials.report(&rule, "b", 100, at(20, 0.96));
        let journaled: Trials =
            serde_json::from_str(&serde_json::to_string(&trials).unwrap()).unwrap();
        assert_eq!(journaled, trials);
        let mut restored = journaled;
        assert_eq!(
            restored.report(&rule, "b", 100, at(10, 0.1)),
            Verdict::Continue
        );
        assert_eq!(
            restored.report(&rule, "b", 100, at(20, 0.1)),
            Verdict::Continue
        );
        assert_eq!(restored.rungs[&10].len(), 2);
        // The same later reports get the same decisions from the restored records.
        for records in [&mut trials, &mut restored] {
            assert!(stops(&records.report(&rule, "c", 100, at(10, 0.5))));
        }
        assert_eq!(trials, restored);
    }

    #[test]
    fn median_rule_compares_with_the_others_running_averages() {
        let rule = median(20, 2);
        let mut trials = Trials::default();
        for (step, score) in [(10, 0.6), (20, 0.8), (30, 0.8)] {
            trials.report(&rule, "a", 100, at(step, score));
        }
        for (step, score) in [(10, 0.4), (20, 0.6)] {
            trials.report(&rule, "b", 100, at(step, score));
        }
        // Before start_step nobody stops.
        assert_eq!(
            trials.report(&rule, "c", 100, at(10, 0.0)),
            Verdict::Continue
        );
        // At 20: a averages 0.7, b 0.5; median 0.6. c's best is 0.55.
        let Verdict::Stop(stopped) = trials.report(&rule, "c", 100, at(20, 0.55)) else {
            panic!("0.55 is below the median 0.6");
        };
        assert!(stopped.reason.contains("0.6000"), "{}", stopped.reason);
        // d's score falls at 20, but its best (0.6, at step 10) is above the median of a's, b's
        // and c's averages (0.7, 0.5, 0.275): it goes on.
        trials.report(&rule, "d", 100, at(10, 0.6));
        assert_eq!(
            trials.report(&rule, "d", 100, at(20, 0.3)),
            Verdict::Continue
        );
    }

    #[test]
    fn median_rule_waits_for_enough_trials_at_the_step() {
        let rule = median(20, 2);
        let mut trials = Trials::default();
        trials.report(&rule, "a", 100, at(20, 0.9));
        trials.report(&rule, "b", 100, at(10, 0.9));
        // Only a has reached step 20 (b stopped reporting at 10): one other, two needed.
        assert_eq!(
            trials.report(&rule, "c", 100, at(20, 0.1)),
            Verdict::Continue
        );
        // At 30 the others that got there are c's own rivals: none has.
        assert_eq!(
            trials.report(&rule, "c", 100, at(30, 0.1)),
            Verdict::Continue
        );
        trials.report(&rule, "b", 100, at(20, 0.9));
        // Now a, b and c are at 20 or beyond (averages 0.9, 0.9, 0.1): the median is 0.9.
        assert!(stops(&trials.report(&rule, "d", 100, at(20, 0.5))));
    }
}
