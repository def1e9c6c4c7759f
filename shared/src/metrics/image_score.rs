//! The image-level anomaly score taken from a pixel map.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageScore {
    /// The map's maximum (the official LOCO evaluation's choice).
    #[default]
    Max,
    /// The mean of the 100 highest pixels (the SLSG paper's choice).
    Top100,
}

impl ImageScore {
    pub fn score(self, map: &[f32]) -> f64 {
        match self {
            ImageScore::Max => map.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
            ImageScore::Top100 => {
                let k = map.len().min(100);
                if k == 0 {
                    return f64::NEG_INFINITY;
                }
                let mut values = map.to_vec();
                let cut = values.len() - k;
                values.select_nth_unstable_by(cut, |a, b| a.total_cmp(b));
                values[cut..].iter().map(|&v| v as f64).sum::<f64>() / k as f64
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageScore::Max => "max",
            ImageScore::Top100 => "top100",
        }
    }

    /// The label an image AUROC computed from `score` is shown under, `image AUROC (top100)`,
    /// so that two AUROCs from different scores are never taken for one; plain `image AUROC`
    /// for records written before the score was kept with them.
    pub fn auroc_label(score: Option<ImageScore>) -> String {
        score.map_or("image AUROC".into(), |s| {
            format!("image AUROC ({})", s.name())
        })
    }

    /// An image AUROC to `decimals` places with the score it was computed from, `0.953
    /// (top100)`; `—` where there is none.
    pub fn show_auroc(auroc: Option<f64>, score: Option<ImageScore>, decimals: usize) -> String {
        match (auroc, score) {
            (None, _) => "—".into(),
            (Some(a), None) => format!("{a:.decimals$}"),
            (Some(a), Some(s)) => format!("{a:.decimals$} ({})", s.name()),
        }
    }
}

impl std::str::FromStr for ImageScore {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => Ok(ImageScore::Max),
            "top100" => Ok(ImageScore::Top100),
            other => Err(format!(
                "unknown image score `{other}` (expected max or top100)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_top_k_mean() {
        let mut map: Vec<f32> = (0..300).map(|i| i as f32).collect();
        map.reverse();
        assert_eq!(ImageScore::Max.score(&map), 299.0);
        assert_eq!(
            ImageScore::Top100.score(&map),
            (200..300).sum::<i32>() as f64 / 100.0
        );
        assert_eq!(ImageScore::Top100.score(&[1.0, 3.0]), 2.0);
    }

    #[test]
    fn an_auroc_is_labelled_with_its_score() {
        assert_eq!(
            ImageScore::auroc_label(Some(ImageScore::Top100)),
            "image AUROC (top100)"
        );
        assert_eq!(ImageScore::auroc_label(None), "image AUROC");
        assert_eq!(
            ImageScore::show_auroc(Some(0.95349), Some(ImageScore::Max), 3),
            "0.953 (max)"
        );
        assert_eq!(ImageScore::show_auroc(Some(0.5), None, 2), "0.50");
        assert_eq!(ImageScore::show_auroc(None, Some(ImageScore::Max), 3), "—");
    }
}
