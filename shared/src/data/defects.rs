use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DataError;

/// One entry of MVTec LOCO AD's `defects_config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefectSpec {
    pub defect_name: String,
    pub pixel_value: u8,
    pub saturation_threshold: f64,
    pub relative_saturation: bool,
}

impl DefectSpec {
    /// Pixels a region must cover to reach sPRO 1, as the official evaluation computes it:
    /// `floor(t · area)` when relative, `min(t, area)` otherwise. Never below one pixel, so a
    /// tiny region with a relative threshold cannot divide by zero.
    pub fn saturation_area(&self, defect_area: u64) -> u64 {
        let area = if self.relative_saturation {
            (self.saturation_threshold * defect_area as f64).floor() as u64
        } else {
            (self.saturation_threshold as u64).min(defect_area)
        };
        area.max(1)
    }
}

/// The defect types of a LOCO category, keyed by the pixel value used in its ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefectsConfig {
    pub entries: Vec<DefectSpec>,
}

impl DefectsConfig {
    pub fn read(path: &Path) -> Result<DefectsConfig, DataError> {
        let text = crate::store::limits::read_text(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<DefectsConfig, DataError> {
        let invalid = |message: String| DataError::DefectsConfig {
            path: PathBuf::from(path),
            message,
        };
        let entries: Vec<DefectSpec> =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (i, entry) in entries.iter().enumerate() {
            let t = entry.saturation_threshold;
            if entry.pixel_value == 0 {
                return Err(invalid(format!(
                    "entry {i} ({}): pixel_value must be 1..=255",
                    entry.defect_name
                )));
            }
            if entry.relative_saturation && !(t > 0.0 && t <= 1.0) {
                return Err(invalid(format!(
                    "entry {i} ({}): a relative saturation_threshold must be in (0, 1], got {t}",
                    entry.defect_name
                )));
            }
            if !entry.relative_saturation && (t < 0.0 || t.fract() != 0.0) {
                return Err(invalid(format!(
                    "entry {i} ({}): an absolute saturation_threshold must be a whole pixel count, got {t}",
                    entry.defect_name
                )));
            }
            if entries[..i]
                .iter()
                .any(|e| e.pixel_value == entry.pixel_value)
            {
                return Err(invalid(format!(
                    "pixel_value {} appears twice",
                    entry.pixel_value
                )));
            }
        }
        Ok(DefectsConfig { entries })
    }

    pub fn by_pixel_value(&self, value: u8) -> Option<&DefectSpec> {
        self.entries.iter().find(|e| e.pixel_value == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(t: f64, relative: bool) -> DefectSpec {
        DefectSpec {
            defect_name: "x".into(),
            pixel_value: 1,
            saturation_threshold: t,
            relative_saturation: relative,
        }
    }

    #[test]
    fn saturation_area_relative_and_absolute() {
        assert_eq!(spec(0.5, true).saturation_area(101), 50);
        assert_eq!(spec(1.0, true).saturation_area(101), 101);
        assert_eq!(spec(2000.0, false).saturation_area(5000), 2000);
        assert_eq!(spec(2000.0, false).saturation_area(300), 300);
        assert_eq!(spec(0.1, true).saturation_area(3), 1);
    }

    #[test]
    fn rejects_bad_entries_naming_the_file() {
        let path = Path::new("cat/defects_config.json");
        let bad = r#"[{"defect_name":"a","pixel_value":1,"saturation_threshold":1.5,"relative_saturation":true}]"#;
        let err = DefectsConfig::parse(bad, path).unwrap_err().to_string();
        assert!(
            err.contains("cat/defects_config.json") && err.contains("(0, 1]"),
            "{err}"
        );
        let dup = r#"[{"defect_name":"a","pixel_value":1,"saturation_threshold":10,"relative_saturation":false},
                      {"defect_name":"b","pixel_value":1,"saturation_threshold":10,"relative_saturation":false}]"#;
        assert!(
            DefectsConfig::parse(dup, path)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let ok = r#"[{"defect_name":"a","pixel_value":7,"saturation_threshold":10,"relative_saturation":false}]"#;
        assert_eq!(
            DefectsConfig::parse(ok, path)
                .unwrap()
                .by_pixel_value(7)
                .unwrap()
                .defect_name,
            "a"
        );
    }
}
