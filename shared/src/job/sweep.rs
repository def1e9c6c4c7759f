//! The `[sweep]` section of a cluster config: the values and ranges to search, how points are
//! drawn, the early-stopping rule with its rungs, and the step budget; checked before anything runs.
//! Which trial stops is decided by the coordinator; this module only says what the user asked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ranges::{InvalidField, Section};

/// Most sweep points a config may expand to.
pub const MAX_SWEEP_POINTS: usize = 10_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    #[default]
    Grid,
    /// `samples` points: drawn without replacement from the grid of `values`, each range sampled.
    Random,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    #[serde(default)]
    pub mode: SweepMode,
    #[serde(default)]
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    /// Config field (`segnet.lr`) → the values to try.
    #[serde(default)]
    pub values: BTreeMap<String, Vec<toml::Value>>,
    /// Config field → the range a random sweep samples it from.
    #[serde(default)]
    pub ranges: BTreeMap<String, SearchRange>,
    pub early_stopping: Option<EarlyStoppingSection>,
    pub budget: Option<BudgetSection>,
}

/// A range of a numeric config field, both ends included: `{ uniform = [0.001, 0.1] }`,
/// `{ log_uniform = [1e-5, 1e-1] }` (uniform in the logarithm), `{ int = [2, 16] }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchRange {
    Uniform([f64; 2]),
    LogUniform([f64; 2]),
    Int([i64; 2]),
}

impl SearchRange {
    fn check(&self, field: &str) -> Result<(), String> {
        let (min, max) = match *self {
            SearchRange::Uniform([a, b]) | SearchRange::LogUniform([a, b]) => (a, b),
            SearchRange::Int([a, b]) => (a as f64, b as f64),
        };
        if !min.is_finite() || !max.is_finite() {
            return Err(format!(
                "ranges.\"{field}\": both ends must be finite numbers"
            ));
        }
        if min >= max {
            return Err(format!(
                "ranges.\"{field}\": the minimum ({min}) must be below the maximum ({max})"
            ));
        }
        if matches!(self, SearchRange::LogUniform(_)) && min <= 0.0 {
            return Err(format!(
                "ranges.\"{field}\": a log_uniform range must be above 0, got [{min}, {max}]"
            ));
        }
        Ok(())
    }

    /// A value drawn from the range; floats keep 4 significant digits, so points stay readable.
    fn sample(&self, rng: &mut impl rand::Rng) -> toml::Value {
        let unit: f64 = rand::RngExt::random(rng);
        match *self {
            SearchRange::Uniform([a, b]) => toml::Value::Float(significant(a + unit * (b - a))),
            SearchRange::LogUniform([a, b]) => {
                let (la, lb) = (a.ln(), b.ln());
                toml::Value::Float(significant((la + unit * (lb - la)).exp()).clamp(a, b))
            }
            SearchRange::Int([a, b]) => {
                // Widened: the span of the whole i64 range does not fit an i64.
                let span = (i128::from(b) - i128::from(a)) as u64;
                let offset = rand::RngExt::random_range(rng, 0..=span);
                toml::Value::Integer((i128::from(a) + i128::from(offset)) as i64)
            }
        }
    }
}

fn significant(value: f64) -> f64 {
    if value == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(3 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

/// `[sweep.early_stopping]`, as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSection {
    pub rule: StopRuleName,
    #[serde(default)]
    pub metric: StopMetric,
    pub grace_steps: Option<u64>,
    pub reduction_factor: Option<u64>,
    /// Must equal the trials' `segnet.steps` when given (rungs stop below it).
    pub max_steps: Option<u64>,
    pub start_step: Option<u64>,
    pub min_trials: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopRuleName {
    Asha,
    Median,
}

/// The validation number early stopping compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    /// Model selection's score: the mean of image and pixel AUROC.
    #[default]
    Score,
    ImageAuroc,
    PixelAuroc,
}

impl StopMetric {
    /// The name a config gives it.
    pub fn name(self) -> &'static str {
        match self {
            StopMetric::Score => "score",
            StopMetric::ImageAuroc => "image_auroc",
            StopMetric::PixelAuroc => "pixel_auroc",
        }
    }
}

/// The default reduction factor of ASHA.
pub const DEFAULT_REDUCTION_FACTOR: u64 = 3;
/// The default number of other trials the median rule waits for.
pub const DEFAULT_MIN_TRIALS: usize = 3;

/// A checked early-stopping rule, as the coordinator applies it to each category's trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub metric: StopMetric,
    pub rule: StopRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum StopRule {
    /// Asynchronous successive halving: rungs at `grace_steps · reduction_factor^k` steps.
    Asha {
        grace_steps: u64,
        reduction_factor: u64,
    },
    /// A trial stops when its best score is below the median of the others' running averages.
    Median { start_step: u64, min_trials: usize },
}

impl EarlyStopping {
    /// ASHA on the selection score.
    pub fn asha(grace_steps: u64, reduction_factor: u64) -> EarlyStopping {
        EarlyStopping {
            metric: StopMetric::Score,
            rule: StopRule::Asha {
                grace_steps,
                reduction_factor,
            },
        }
    }

    /// The median rule on the selection score.
    pub fn median(start_step: u64, min_trials: usize) -> EarlyStopping {
        EarlyStopping {
            metric: StopMetric::Score,
            rule: StopRule::Median {
                start_step,
                min_trials,
            },
        }
    }

    /// The steps at which an ASHA trial is judged (none for the median rule): every
    /// `grace_steps · reduction_factor^k` below `max_steps`.
    pub fn rungs(&self, max_steps: u64) -> Vec<u64> {
        let StopRule::Asha {
            grace_steps,
            reduction_factor,
        } = self.rule
        else {
            return Vec::new();
        };
        let mut rungs = Vec::new();
        let mut rung = grace_steps;
        while rung < max_steps {
            rungs.push(rung);
            match rung.checked_mul(reduction_factor) {
                Some(next) => rung = next,
                None => break,
            }
        }
        rungs
    }

    /// The first step at which a trial can be stopped.
    pub fn first_decision(&self) -> u64 {
        match self.rule {
            StopRule::Asha { grace_steps, .. } => grace_steps,
            StopRule::Median { start_step, .. } => start_step,
        }
    }

    /// SegNet steps of `trials` trials of `max_steps` each if, at every rung, only the top
    /// `1/reduction_factor` go on (ASHA); the median rule's savings depend on the scores, so
    /// they are counted as if half the trials stopped at `start_step`.
    pub fn expected_steps(&self, trials: u64, max_steps: u64) -> f64 {
        let trials = trials as f64;
        match self.rule {
            StopRule::Asha {
                reduction_factor, ..
            } => {
                let mut total = 0.0;
                let mut survivors = trials;
                let mut from = 0;
                for rung in self.rungs(max_steps) {
                    total += survivors * (rung - from) as f64;
                    survivors /= reduction_factor as f64;
                    from = rung;
                }
                total + survivors * (max_steps - from) as f64
            }
            StopRule::Median { start_step, .. } => {
                let start = start_step.min(max_steps) as f64;
                trials * start + trials / 2.0 * (max_steps as f64 - start)
            }
        }
    }
}

impl EarlyStoppingSection {
    /// Checks the section against the trials' SegNet `steps` and `validate_every` (every sweep
    /// point's, which may differ).
    pub fn check(&self, trials: &[(u64, u64)]) -> Result<EarlyStopping, InvalidField> {
        let s = Section::new("sweep.early_stopping");
        let unused = |name: &str, rule: &str| {
            s.invalid(name, format!("is not a setting of rule = \"{rule}\""))
        };
        let shortest = trials.iter().map(|t| t.0).min().unwrap_or(0);
        let rule = match self.rule {
            StopRuleName::Asha => {
                for (name, given) in [
                    ("start_step", self.start_step.is_some()),
                    ("min_trials", self.min_trials.is_some()),
                ] {
                    if given {
                        return Err(unused(name, "asha"));
                    }
                }
                let grace_steps = self
                    .grace_steps
                    .ok_or_else(|| s.invalid("grace_steps", "is needed by rule = \"asha\""))?;
                let reduction_factor = self.reduction_factor.unwrap_or(DEFAULT_REDUCTION_FACTOR);
                s.whole("reduction_factor", reduction_factor, 2, 1000)?;
                if grace_steps == 0 || grace_steps >= shortest {
                    return Err(s.invalid(
                        "grace_steps",
                        format!(
                            "must be from 1 to below segnet.steps ({shortest}), got {grace_steps}"
                        ),
                    ));
                }
                StopRule::Asha {
                    grace_steps,
                    reduction_factor,
                }
            }
            StopRuleName::Median => {
                for (name, given) in [
                    ("grace_steps", self.grace_steps.is_some()),
                    ("reduction_factor", self.reduction_factor.is_some()),
                ] {
                    if given {
                        return Err(unused(name, "median"));
                    }
                }
                let start_step = self
                    .start_step
                    .ok_or_else(|| s.invalid("start_step", "is needed by rule = \"median\""))?;
                let min_trials = self.min_trials.unwrap_or(DEFAULT_MIN_TRIALS);
                s.whole("min_trials", min_trials, 1, MAX_SWEEP_POINTS)?;
                if start_step == 0 || start_step >= shortest {
                    return Err(s.invalid(
                        "start_step",
                        format!(
                            "must be from 1 to below segnet.steps ({shortest}), got {start_step}"
                        ),
                    ));
                }
                StopRule::Median {
                    start_step,
                    min_trials,
                }
            }
        };
        let stopping = EarlyStopping {
            metric: self.metric,
            rule,
        };
        if let Some(max_steps) = self.max_steps
            && let Some(&(steps, _)) = trials.iter().find(|t| t.0 != max_steps)
        {
            return Err(s.invalid(
                "max_steps",
                format!("is the trials' segnet.steps ({steps}), got {max_steps}"),
            ));
        }
        // A trial is judged where it validates: each decision step must be one.
        let first = stopping.first_decision();
        if let Some(&(_, every)) = trials.iter().find(|t| !first.is_multiple_of(t.1)) {
            let name = match rule {
                StopRule::Asha { .. } => "grace_steps",
                StopRule::Median { .. } => "start_step",
            };
            return Err(s.invalid(
                name,
                format!(
                    "must be a multiple of segnet.validate_every ({every}), got {first}: trials are judged when they validate"
                ),
            ));
        }
        Ok(stopping)
    }
}

/// `[sweep.budget]`: caps on SegNet steps. A trial is only started while the steps the finished
/// trials used plus the whole `segnet.steps` of the running ones and of itself fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Per category.
    pub category_steps: Option<u64>,
    /// For the whole run.
    pub run_steps: Option<u64>,
}

impl BudgetSection {
    /// A budget must let at least one trial reach its first decision (`first_steps`).
    pub fn check(&self, first_steps: u64) -> Result<(), InvalidField> {
        let s = Section::new("sweep.budget");
        for (name, cap) in [
            ("category_steps", self.category_steps),
            ("run_steps", self.run_steps),
        ] {
            if let Some(cap) = cap
                && cap < first_steps
            {
                return Err(s.invalid(
                    name,
                    format!(
                        "{cap} steps cannot take one trial to its first rung ({first_steps} steps)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The sweep's points, each a field → value assignment (one empty point without a sweep). A
/// grid is counted before it is built, and a random sweep draws its points' indices without
/// building the grid, so neither can exhaust memory.
pub(super) fn sweep_points(
    sweep: Option<&SweepSection>,
) -> Result<Vec<BTreeMap<String, toml::Value>>, String> {
    let Some(sweep) = sweep else {
        return Ok(vec![BTreeMap::new()]);
    };
    if let Some(field) = sweep.ranges.keys().find(|f| sweep.values.contains_key(*f)) {
        return Err(format!(
            "\"{field}\" is in both values and ranges: give one of them"
        ));
    }
    for (field, range) in &sweep.ranges {
        range.check(field)?;
    }
    if sweep.values.is_empty() && sweep.ranges.is_empty() {
        return Err("name at least one field in values or ranges".into());
    }
    let axes: Vec<(&String, &Vec<toml::Value>)> = sweep.values.iter().collect();
    let mut size: u128 = 1;
    for (field, values) in &axes {
        if values.is_empty() {
            return Err(format!("values.\"{field}\" is empty"));
        }
        size = size.saturating_mul(values.len() as u128);
    }
    let point = |mut index: u128| {
        let mut point = BTreeMap::new();
        for (field, values) in axes.iter().rev() {
            let n = values.len() as u128;
            point.insert((*field).clone(), values[(index % n) as usize].clone());
            index /= n;
        }
        point
    };
    match sweep.mode {
        SweepMode::Grid => {
            if let Some(field) = sweep.ranges.keys().next() {
                return Err(format!(
                    "ranges.\"{field}\": a range is sampled, so it needs mode = \"random\" with samples"
                ));
            }
            if size > MAX_SWEEP_POINTS as u128 {
                return Err(format!(
                    "the grid has {size} points; at most {MAX_SWEEP_POINTS} (use mode = \"random\" with samples)"
                ));
            }
            Ok((0..size).map(point).collect())
        }
        SweepMode::Random => {
            if !(1..=MAX_SWEEP_POINTS).contains(&sweep.samples) {
                return Err(format!(
                    "random mode needs samples from 1 to {MAX_SWEEP_POINTS}, got {}",
                    sweep.samples
                ));
            }
            let mut rng = crate::seed::rng_for(sweep.seed, &[0x5EE9]);
            let draw_index = |rng: &mut _| {
                let high = u128::from(rand::RngExt::random::<u64>(rng));
                let low = u128::from(rand::RngExt::random::<u64>(rng));
                ((high << 64) | low) % size
            };
            if sweep.ranges.is_empty() {
                let wanted = (sweep.samples as u128).min(size);
                let mut chosen = std::collections::BTreeSet::new();
                let mut order = Vec::new();
                while (chosen.len() as u128) < wanted {
                    let index = draw_index(&mut rng);
                    if chosen.insert(index) {
                        order.push(index);
                    }
                }
                return Ok(order.into_iter().map(point).collect());
            }
            // With a range the points are not a finite grid: each is drawn on its own, and
            // a point drawn twice is one trial.
            let mut points = Vec::new();
            for _ in 0..sweep.samples {
                let mut drawn = point(draw_index(&mut rng));
                for (field, range) in &sweep.ranges {
                    drawn.insert(field.clone(), range.sample(&mut rng));
                }
                if !points.contains(&drawn) {
                    points.push(drawn);
                }
            }
            Ok(points)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asha(grace_steps: u64, reduction_factor: u64) -> EarlyStopping {
        EarlyStopping::asha(grace_steps, reduction_factor)
    }

    #[test]
    fn rungs_grow_by_the_reduction_factor_below_the_last_step() {
        assert_eq!(asha(10, 3).rungs(100), vec![10, 30, 90]);
        assert_eq!(asha(10, 3).rungs(90), vec![10, 30]);
        assert_eq!(asha(50, 2).rungs(60), vec![50]);
        assert_eq!(asha(u64::MAX / 2, 3).rungs(u64::MAX), vec![u64::MAX / 2]);
    }

    #[test]
    fn expected_steps_follow_the_survivors_of_each_rung() {
        // 9 trials of 90 steps, rungs 10 and 30: 9·10 + 3·20 + 1·60.
        assert_eq!(asha(10, 3).expected_steps(9, 90), 210.0);
        let median = EarlyStopping::median(20, 3);
        assert_eq!(median.expected_steps(4, 100), 4.0 * 20.0 + 2.0 * 80.0);
    }

    fn section(text: &str) -> EarlyStoppingSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn early_stopping_settings_are_checked_against_the_trials() {
        let trials = [(100, 10)];
        let ok = section("rule = \"asha\"\ngrace_steps = 20\n");
        assert_eq!(ok.check(&trials).unwrap(), asha(20, 3));
        for (text, field, words) in [
            (
                "rule = \"asha\"\ngrace_steps = 20\nreduction_factor = 1\n",
                "reduction_factor",
                "2..=1000",
            ),
            ("rule = \"asha\"\n", "grace_steps", "needed"),
            (
                "rule = \"asha\"\ngrace_steps = 100\n",
                "grace_steps",
                "below segnet.steps",
            ),
            (
                "rule = \"asha\"\ngrace_steps = 15\n",
                "grace_steps",
                "multiple of segnet.validate_every (10)",
            ),
            (
                "rule = \"asha\"\ngrace_steps = 20\nstart_step = 3\n",
                "start_step",
                "not a setting",
            ),
            (
                "rule = \"asha\"\ngrace_steps = 20\nmax_steps = 50\n",
                "max_steps",
                "(100)",
            ),
            ("rule = \"median\"\n", "start_step", "needed"),
            (
                "rule = \"median\"\nstart_step = 0\n",
                "start_step",
                "from 1",
            ),
            (
                "rule = \"median\"\nstart_step = 10\nmin_trials = 0\n",
                "min_trials",
                "1..=",
            ),
        ] {
            let error = section(text).check(&trials).unwrap_err();
            assert_eq!(
                error.field,
                format!("sweep.early_stopping.{field}"),
                "{text}"
            );
            assert!(error.message.contains(words), "{text}: {error}");
        }
        assert!(
            toml::from_str::<EarlyStoppingSection>("rule = \"asha\"\nmetric = \"f1\"\n").is_err()
        );
        assert!(toml::from_str::<EarlyStoppingSection>("rule = \"hyperband\"\n").is_err());
    }

    #[test]
    fn metric_names_are_the_config_names() {
        for metric in [
            StopMetric::Score,
            StopMetric::ImageAuroc,
            StopMetric::PixelAuroc,
        ] {
            assert_eq!(serde_json::to_value(metric).unwrap(), metric.name());
        }
    }

    #[test]
    fn a_budget_must_reach_the_first_rung() {
        let budget = BudgetSection {
            category_steps: Some(5),
            run_steps: None,
        };
        let error = budget.check(10).unwrap_err();
        assert_eq!(error.field, "sweep.budget.category_steps");
        assert!(budget.check(5).is_ok());
    }

    fn random(ranges: &str, samples: usize) -> SweepSection {
        toml::from_str(&format!(
            "mode = \"random\"\nsamples = {samples}\nseed = 7\n[ranges]\n{ranges}\n"
        ))
        .unwrap()
    }

    #[test]
    fn ranges_are_sampled_inside_their_ends_and_reproducibly() {
        let sweep = random(
            "\"segnet.lr\" = { log_uniform = [1e-5, 1e-1] }\n\"segnet.momentum\" = { uniform = [0.5, 0.9] }\n\"segnet.steps\" = { int = [2, 4] }",
            64,
        );
        let points = sweep_points(Some(&sweep)).unwrap();
        assert_eq!(points, sweep_points(Some(&sweep)).unwrap());
        assert!(points.len() > 50);
        let mut decades = std::collections::BTreeSet::new();
        let mut steps = std::collections::BTreeSet::new();
        for point in &points {
            let lr = point["segnet.lr"].as_float().unwrap();
            assert!((1e-5..=1e-1).contains(&lr), "{lr}");
            decades.insert(lr.log10().floor() as i32);
            let momentum = point["segnet.momentum"].as_float().unwrap();
            assert!((0.5..=0.9).contains(&momentum));
            steps.insert(point["segnet.steps"].as_integer().unwrap());
        }
        // Log-uniform: every decade of the range is visited.
        assert_eq!(decades.len(), 4, "{decades:?}");
        assert_eq!(steps, [2, 3, 4].into());
    }

    #[test]
    fn an_integer_range_may_span_every_integer() {
        let sweep = random(
            &format!("seed = {{ int = [{}, {}] }}", i64::MIN, i64::MAX),
            16,
        );
        for point in sweep_points(Some(&sweep)).unwrap() {
            assert!(point["seed"].as_integer().is_some());
        }
    }

    #[test]
    fn bad_ranges_name_the_field() {
        for (range, words) in [
            ("{ uniform = [0.5, 0.5] }", "must be below the maximum"),
            ("{ int = [4, 2] }", "must be below the maximum"),
            ("{ log_uniform = [0.0, 0.1] }", "above 0"),
            ("{ log_uniform = [-1.0, 0.1] }", "above 0"),
            ("{ uniform = [0.1, inf] }", "finite"),
        ] {
            let sweep = random(&format!("\"segnet.lr\" = {range}"), 4);
            let error = sweep_points(Some(&sweep)).unwrap_err();
            assert!(
                error.contains("ranges.\"segnet.lr\"") && error.contains(words),
                "{error}"
            );
        }
        let mut grid = random("\"segnet.lr\" = { uniform = [0.1, 0.2] }", 4);
        grid.mode = SweepMode::Grid;
        assert!(
            sweep_points(Some(&grid))
                .unwrap_err()
                .contains("mode = \"random\"")
        );
    }
}
