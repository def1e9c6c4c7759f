//! What a finished run publishes and every reader of it shares: its summary (the jobs' status,
//! the version registered per category, each promotion decision) and how a sweep point is named.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slsg::job::RunStatus;
use slsg::registry::VersionCard;

/// What a run decided for one category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub version: String,
    pub promoted: bool,
    pub candidate_score: Option<f64>,
    pub current_score: Option<f64>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    /// The version registered per category.
    pub models: BTreeMap<String, VersionCard>,
    /// Per category, whether its version went into production and why.
    #[serde(default)]
    pub promotions: BTreeMap<String, Promotion>,
}

/// A sweep point as `key=value key=value` (empty for a run without a sweep).
pub fn sweep_point(point: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

/// A sweep point in parentheses after a model's name; nothing for a run without a sweep.
pub fn after_model(point: &BTreeMap<String, String>) -> String {
    if point.is_empty() {
        String::new()
    } else {
        format!(" ({})", sweep_point(point))
    }
}
