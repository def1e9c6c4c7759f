//! A stage's training curve (`curve.jsonl`) read back for the report: each loss and the
//! learning rate by step, and the validation scores; an attempt that resumed from a checkpoint
//! replaces what the earlier attempt logged after it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::chart::{LineChart, Marker, Series};

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    Started {
        step: u64,
    },
    Step {
        step: u64,
        losses: Vec<(String, f64)>,
        learning_rate: f64,
    },
    Validation {
        step: u64,
        score: f64,
        image_auroc: Option<f64>,
        pixel_auroc: Option<f64>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, PartialEq)]
pub struct TrainingCurve {
    /// Loss name → (step, value), in the order the losses first appear.
    pub losses: Vec<(String, Vec<(f64, f64)>)>,
    pub learning_rate: Vec<(f64, f64)>,
    /// Score name → (step, value).
    pub validation: BTreeMap<&'static str, Vec<(f64, f64)>>,
    /// Lines that are not JSON events (a line cut by a crash).
    pub unreadable: usize,
}

impl TrainingCurve {
    pub fn parse(bytes: &[u8]) -> TrainingCurve {
        let mut curve = TrainingCurve::default();
        for line in String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Started { step }) => curve.forget_after(step as f64),
                Ok(Line::Step {
                    step,
                    losses,
                    learning_rate,
                }) => {
                    let step = step as f64;
                    for (name, value) in losses {
                        match curve.losses.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, points)) => points.push((step, value)),
                            None => curve.losses.push((name, vec![(step, value)])),
                        }
                    }
                    curve.learning_rate.push((step, learning_rate));
                }
                Ok(Line::Validation {
                    step,
                    score,
                    image_auroc,
                    pixel_auroc,
                }) => {
                    let step = step as f64;
                    let mut add = |name, value: Option<f64>| {
                        if let Some(value) = value {
                            curve
                                .validation
                                .entry(name)
                                .or_default()
                                .push((step, value));
                        }
                    };
                    add("selection score", Some(score));
                    add("image AUROC", image_auroc);
                    add("pixel AUROC", pixel_auroc);
                }
                Ok(Line::Other) => {}
                Err(_) => curve.unreadable += 1,
            }
        }
        curve
    }

    /// Drops the points after `step`: a later attempt trains them again.
    fn forget_after(&mut self, step: f64) {
        let keep = |points: &mut Vec<(f64, f64)>| points.retain(|p| p.0 <= step);
        for (_, points) in &mut self.losses {
            keep(points);
        }
        keep(&mut self.learning_rate);
        for points in self.validation.values_mut() {
            keep(points);
        }
    }

    /// The losses (log scale), the learning rate and, where there are any, the validation
    /// scores with the chosen step marked.
    pub fn charts(&self, title: &str, chosen: Option<u64>) -> Vec<String> {
        let markers = || -> Vec<Marker> {
            chosen
                .map(|step| Marker {
                    x: step as f64,
                    label: format!("chosen: step {step}"),
                })
                .into_iter()
                .collect()
        };
        let chart = |what: &str, y_label: &str, series: Vec<Series>, log_y: bool, y_range| {
            LineChart {
                title: format!("{title} {what}"),
                x_label: "step".into(),
                y_label: y_label.into(),
                series,
                x_range: None,
                y_range,
                diagonal: false,
                markers: markers(),
                log_y,
                note: None,
            }
            .to_svg()
        };
        let mut charts = Vec::new();
        if !self.losses.is_empty() {
            let series = self
                .losses
                .iter()
                .map(|(name, points)| Series {
                    name: name.clone(),
                    points: points.clone(),
                })
                .collect();
            charts.push(chart("losses", "loss", series, true, None));
        }
        if !self.learning_rate.is_empty() {
            let series = vec![Series {
                name: "learning rate".into(),
                points: self.learning_rate.clone(),
            }];
            charts.push(chart("learning rate", "learning rate", series, false, None));
        }
        if !self.validation.is_empty() {
            let series = self
                .validation
                .iter()
                .map(|(name, points)| Series {
                    name: name.to_string(),
                    points: points.clone(),
                })
                .collect();
            charts.push(chart(
                "validation",
                "score",
                series,
                false,
                Some((0.0, 1.0)),
            ));
        }
        charts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_attempt_replaces_the_steps_after_its_checkpoint() {
        let text = r#"{"event":"started","stage":"segnet","step":0,"total_steps":30}
{"event":"step","stage":"segnet","step":10,"total_steps":30,"losses":[["focal",0.5],["l1",0.2]],"learning_rate":0.1,"images_per_second":3.0,"queued_batches":1}
{"event":"validation","step":10,"image_auroc":0.7,"pixel_auroc":null,"score":0.7,"threshold":0.4,"best":true}
{"event":"step","stage":"segnet","step":20,"total_steps":30,"losses":[["focal",0.4],["l1",0.1]],"learning_rate":0.05,"images_per_second":3.0,"queued_batches":1}
{"event":"checkpoint","stage":"segnet","step":10}
{"event":"started","stage":"segnet","step":10,"total_steps":30}
{"event":"step","stage":"segnet","step":20,"total_steps":30,"losses":[["focal",0.3],["l1",0.1]],"learning_rate":0.05,"images_per_second":3.0,"queued_batches":1}
{"event":"step","stage":"segnet","ste
"#;
        let curve = TrainingCurve::parse(text.as_bytes());
        assert_eq!(curve.unreadable, 1, "the line cut short");
        assert_eq!(curve.losses[0].0, "focal");
        assert_eq!(curve.losses[0].1, [(10.0, 0.5), (20.0, 0.3)]);
        assert_eq!(curve.learning_rate, [(10.0, 0.1), (20.0, 0.05)]);
        assert_eq!(curve.validation["selection score"], [(10.0, 0.7)]);
        assert!(!curve.validation.contains_key("pixel AUROC"));
        let charts = curve.charts("washer: SegNet", Some(10));
        assert_eq!(charts.len(), 3);
        assert!(charts.iter().all(|c| c.contains("chosen: step 10")));
    }

    #[test]
    fn an_empty_curve_draws_nothing() {
        let curve = TrainingCurve::parse(b"");
        assert!(curve.charts("x", None).is_empty());
    }
}
