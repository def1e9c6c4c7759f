//! The `[retrain]` section of a cluster config: when the retraining service checks for newly
//! arrived normal images, what makes a category retrain, how it retrains, and the promotion
//! gate's tolerance.

use serde::{Deserialize, Serialize};

use super::schedule::{Schedule, ScheduleError};
use crate::config::MAX_STEPS;
use crate::ranges::{InvalidField, Section};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrainMode {
    /// Pre-train a new encoder and train SegNet on it, as a first training does.
    #[default]
    Full,
    /// Continue the current SegNet from its weights (encoder included) for `fine_tune_steps`.
    FineTune,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainSection {
    /// A five-field cron expression in UTC, e.g. `"0 2 * * *"` (nightly at 02:00).
    pub schedule: Option<String>,
    /// An interval instead: `"30s"`, `"15m"`, `"6h"`, `"1d"`.
    pub every: Option<String>,
    /// With a limit, a category whose images changed retrains only when the current model
    /// flags more than this share of the newly arrived normal images (its false-alarm rate on
    /// them at its own threshold); without one, any change of its images retrains it.
    pub drift_limit: Option<f64>,
    pub mode: RetrainMode,
    /// SegNet steps of a fine-tuning run.
    pub fine_tune_steps: u64,
    /// The gate promotes a candidate whose validation score is at least the current model's
    /// minus this (and whose false-alarm rate on the new images is not higher).
    pub tolerance: f64,
    /// The share of newly arrived training images held out for validation and the gate.
    pub new_image_holdout: f64,
    /// The drift check scores at most this many new images per category (the newest by name).
    pub max_drift_images: usize,
}

impl Default for RetrainSection {
    fn default() -> Self {
        Self {
            schedule: None,
            every: None,
            drift_limit: None,
            mode: RetrainMode::Full,
            fine_tune_steps: 500,
            tolerance: 0.01,
            new_image_holdout: 0.25,
            max_drift_images: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainConfigError {
    #[error("retrain.{field}: {source}")]
    Schedule {
        field: &'static str,
        source: ScheduleError,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidField),
}

impl RetrainSection {
    /// Checks every field; the schedule, if any (`None`: checks run only when asked).
    pub fn validate(&self) -> Result<Option<Schedule>, RetrainConfigError> {
        let s = Section::new("retrain");
        if let Some(limit) = self.drift_limit {
            s.real("drift_limit", limit, 0.0, 1.0)?;
        }
        s.whole("fine_tune_steps", self.fine_tune_steps, 1, MAX_STEPS)?;
        s.real("tolerance", self.tolerance, 0.0, 1.0)?;
        s.below("new_image_holdout", self.new_image_holdout, 0.0, 0.9)?;
        s.whole("max_drift_images", self.max_drift_images, 1, 100_000)?;
        match (&self.schedule, &self.every) {
            (Some(_), Some(_)) => Err(s
                .invalid(
                    "schedule",
                    "give a cron `schedule` or an interval `every`, not both",
                )
                .into()),
            (Some(cron), None) => Schedule::parse_cron(cron).map(Some).map_err(|source| {
                RetrainConfigError::Schedule {
                    field: "schedule",
                    source,
                }
            }),
            (None, Some(every)) => Schedule::parse_interval(every).map(Some).map_err(|source| {
                RetrainConfigError::Schedule {
                    field: "every",
                    source,
                }
            }),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_named() {
        let section = |text: &str| toml::from_str::<RetrainSection>(text).unwrap().validate();
        assert!(matches!(
            section("every = \"30s\""),
            Ok(Some(Schedule::Every(30)))
        ));
        assert!(matches!(section(""), Ok(None)));
        for (text, needle) in [
            (
                "schedule = \"0 25 * * *\"",
                "retrain.schedule: `0 25 * * *`: hour",
            ),
            ("every = \"3x\"", "retrain.every"),
            ("drift_limit = 1.5", "retrain.drift_limit"),
            ("drift_limit = nan", "retrain.drift_limit"),
            ("tolerance = -0.1", "retrain.tolerance"),
            ("fine_tune_steps = 0", "retrain.fine_tune_steps"),
            ("new_image_holdout = 0.95", "retrain.new_image_holdout"),
            ("schedule = \"0 2 * * *\"\nevery = \"1h\"", "not both"),
        ] {
            let err = section(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(toml::from_str::<RetrainSection>("schedul = \"x\"").is_err());
    }
}
