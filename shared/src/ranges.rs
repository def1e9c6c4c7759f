//! The allowed range of every number a user gives: a value outside it (NaN included) is refused
//! with the field's path in the config and the range, before anything runs; and text cut to a
//! length limit.

use std::fmt::Display;

/// `text` cut to at most `limit` bytes (at a character boundary), marked when cut.
pub fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A field that is out of its valid range, named by its path in the config.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

/// Range checks for the fields of one config section (`prefix`, e.g. `segnet`).
pub struct Section<'a> {
    prefix: &'a str,
}

impl<'a> Section<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Self { prefix }
    }

    /// The error for `name`, whatever the check.
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> InvalidField {
        InvalidField {
            field: if self.prefix.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.prefix)
            },
            message: message.into(),
        }
    }

    /// `min ≤ value ≤ max` for whole numbers.
    pub fn whole<T: PartialOrd + Display + Copy>(
        &self,
        name: &str,
        value: T,
        min: T,
        max: T,
    ) -> Result<(), InvalidField> {
        if value < min || value > max {
            return Err(self.invalid(name, format!("must be in {min}..={max}, got {value}")));
        }
        Ok(())
    }

    /// `min ≤ value ≤ max`; NaN and infinities are refused.
    pub fn real(&self, name: &str, value: f64, min: f64, max: f64) -> Result<(), InvalidField> {
        if !(value.is_finite() && value >= min && value <= max) {
            return Err(self.invalid(name, format!("must be in [{min}, {max}], got {value}")));
        }
        Ok(())
    }

    /// `min < value ≤ max`; NaN and infinities are refused.
    pub fn positive(&self, name: &str, value: f64, min: f64, max: f64) -> Result<(), InvalidField> {
        if !(value.is_finite() && value > min && value <= max) {
            return Err(self.invalid(name, format!("must be in ({min}, {max}], got {value}")));
        }
        Ok(())
    }

    /// `min ≤ value < max`; NaN and infinities are refused.
    pub fn below(&self, name: &str, value: f64, min: f64, max: f64) -> Result<(), InvalidField> {
        if !(value.is_finite() && value >= min && value < max) {
            return Err(self.invalid(name, format!("must be in [{min}, {max}), got {value}")));
        }
        Ok(())
    }

    /// A `[low, high]` pair with `min ≤ low ≤ high ≤ max`.
    pub fn interval(
        &self,
        name: &str,
        pair: [f64; 2],
        min: f64,
        max: f64,
    ) -> Result<(), InvalidField> {
        if !(pair.iter().all(|v| v.is_finite())
            && min <= pair[0]
            && pair[0] <= pair[1]
            && pair[1] <= max)
        {
            return Err(self.invalid(
                name,
                format!("must be [low, high] with {min} ≤ low ≤ high ≤ {max}, got {pair:?}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nan_and_names_the_field() {
        let s = Section::new("segnet");
        assert!(s.real("lr", f64::NAN, 0.0, 1.0).is_err());
        assert!(s.positive("lr", 0.0, 0.0, 1.0).is_err());
        assert!(s.positive("lr", 1.0, 0.0, 1.0).is_ok());
        let err = s.whole("steps", 0u64, 1, 10).unwrap_err().to_string();
        assert_eq!(err, "segnet.steps: must be in 1..=10, got 0");
        assert!(s.interval("range", [0.5, 0.4], 0.0, 1.0).is_err());
        assert!(s.interval("range", [0.4, f64::INFINITY], 0.0, 1.0).is_err());
        assert!(s.interval("range", [0.4, 0.4], 0.0, 1.0).is_ok());
    }
}
