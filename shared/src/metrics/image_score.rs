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
}
