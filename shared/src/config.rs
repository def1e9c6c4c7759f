//! The run configuration: one TOML document with a section per stage, every default from the
//! SPEC, unknown fields and out-of-range values refused with the field's path.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::simulate::SimulationConfig;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub simulation: SimulationConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

impl Config {
    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.simulation
            .validate("simulation")
            .map_err(|e| ConfigError::Invalid {
                origin: origin.to_string(),
                field: e.field,
                message: e.message,
            })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let config = Config::default();
        assert_eq!(Config::parse(&config.to_toml(), "default").unwrap(), config);
    }

    #[test]
    fn unknown_field_and_bad_range_name_the_field() {
        let err = Config::parse("[simulation]\nlogical_probabilty = 0.3\n", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run.toml") && err.contains("logical_probabilty"),
            "{err}"
        );
        let err = Config::parse("[simulation]\nlogical_probability = 1.5\n", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("simulation.logical_probability"), "{err}");
        let err = Config::parse(
            "[simulation.categories.screw]\nlogical_probability = -1\n",
            "run.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("simulation.categories.screw.logical_probability"),
            "{err}"
        );
    }
}
