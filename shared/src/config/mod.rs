//! The run configuration: one TOML document with a section per stage and every default of
//! docs/method.md. Unknown fields and out-of-range values are refused with the field's path;
//! `section.field=value` overrides apply on top of a file or the defaults.

mod training;

pub use training::{
    MAX_BATCH, MAX_STEPS, MaskFill, PretrainConfig, SegnetConfig, ValidationConfig,
};

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::ImageScore;
use crate::model::ModelConfig;
use crate::ranges::InvalidField;
use crate::simulate::SimulationConfig;

/// The most CPU threads a config may ask for.
pub const MAX_THREADS: usize = 256;

/// Fields added after configs were first recorded (a fit's `config.toml`, a job's spec), as
/// `(section, field, value)`: the value that keeps the behaviour a record without the field ran
/// under, where the field's default would change it.
const ADDED_FIELDS: &[(&str, &str, f64)] = &[("simulation", "min_visible_change", 0.0)];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seeds weight initialisation, masks, simulation and the validation split.
    pub seed: u64,
    /// CPU threads for data loading and anomaly simulation (0: every core).
    pub threads: usize,
    pub model: ModelConfig,
    pub pretrain: PretrainConfig,
    pub segnet: SegnetConfig,
    pub validation: ValidationConfig,
    pub inference: InferenceConfig,
    pub simulation: SimulationConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// The image score of a map: the paper's mean of the 100 highest pixels, or the maximum. The
    /// decision threshold is chosen on validation data with the same score.
    pub image_score: ImageScore,
    pub batch_size: usize,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            image_score: ImageScore::Top100,
            batch_size: 16,
        }
    }
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
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
}

impl Config {
    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(Some(path), &[])
    }

    /// The defaults, or `path` if given, with `section.field=value` assignments applied.
    pub fn load_with(path: Option<&Path>, assignments: &[String]) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(path) => (
                crate::store::limits::read_text(path).map_err(|source| ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None => (String::new(), "defaults".to_string()),
        };
        let mut document: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: origin.clone(),
            message: toml_error(&e, Some(&text)),
        })?;
        let known = toml::Table::try_from(Config::default()).expect("the defaults serialise");
        for assignment in assignments {
            apply_override(&mut document, &known, assignment)?;
        }
        Self::from_document(document, &origin)
    }

    /// A config from a TOML table (e.g. the `[training]` section of a cluster config) with
    /// `field → value` assignments on top, validated.
    pub fn from_table(
        mut document: toml::Table,
        values: &[(String, toml::Value)],
        origin: &str,
    ) -> Result<Config, ConfigError> {
        let known = toml::Table::try_from(Config::default()).expect("the defaults serialise");
        for (path, value) in values {
            apply_value(&mut document, &known, path, value.clone()).map_err(|message| {
                ConfigError::Invalid {
                    origin: origin.to_string(),
                    field: path.clone(),
                    message,
                }
            })?;
        }
        Self::from_document(document, origin)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let document: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: toml_error(&e, Some(text)),
        })?;
        Self::from_document(document, origin)
    }

    /// Parses a config this project recorded (a fit's `config.toml`): a field the record
    /// predates takes the value that keeps the behaviour it ran under, not today's default.
    pub fn parse_recorded(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let document: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: toml_error(&e, Some(text)),
        })?;
        let config = Self::deserialize_recorded(toml::Value::Table(document)).map_err(
            |e: toml::de::Error| ConfigError::Parse {
                origin: origin.to_string(),
                message: toml_error(&e, None),
            },
        )?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Deserialises a recorded config inside a larger record (a job's spec) as
    /// [`Config::parse_recorded`] parses one: for `#[serde(deserialize_with)]`.
    pub fn deserialize_recorded<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Config, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        if let Some(document) = value.as_object_mut() {
            for &(section, field, default) in ADDED_FIELDS {
                if let Some(table) = document
                    .entry(section)
                    .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    .as_object_mut()
                {
                    table
                        .entry(field)
                        .or_insert(serde_json::Value::from(default));
                }
            }
        }
        serde_json::from_value(value).map_err(serde::de::Error::custom)
    }

    fn from_document(document: toml::Table, origin: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::Value::Table(document)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: origin.to_string(),
                    message: toml_error(&e, None),
                })?;
        config.validate(origin)?;
        Ok(config)
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |e: InvalidField| ConfigError::Invalid {
            origin: origin.to_string(),
            field: e.field,
            message: e.message,
        };
        self.model.validate("model").map_err(invalid)?;
        self.pretrain.validate("pretrain").map_err(invalid)?;
        self.segnet.validate("segnet").map_err(invalid)?;
        self.validation.validate("validation").map_err(invalid)?;
        self.simulation.validate("simulation").map_err(invalid)?;
        crate::ranges::Section::new("inference")
            .whole(
                "batch_size",
                self.inference.batch_size,
                1,
                training::MAX_BATCH,
            )
            .map_err(invalid)?;
        crate::ranges::Section::new("")
            .whole("threads", self.threads, 0, MAX_THREADS)
            .map_err(invalid)?;
        Ok(())
    }

    /// Threads for CPU-side work.
    pub fn threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config always serialises")
    }
}

/// A TOML error on one line: `line L, column C: message` where the position in `source` is
/// known (the parser's own report spans several lines, with a drawing of the spot).
pub fn toml_error(error: &toml::de::Error, source: Option<&str>) -> String {
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let place = error.span().zip(source).and_then(|(span, text)| {
        let before = text.get(..span.start)?;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = text[start..].lines().next().unwrap_or_default();
        Some((
            before.matches('\n').count() + 1,
            before.len() - start + 1,
            line,
        ))
    });
    match place {
        Some((line, column, text)) => format!(
            "line {line}, column {column} (`{}`): {}",
            crate::ranges::truncated(text.trim(), 80),
            one_line(error.message())
        ),
        // Without a position the full report names the field (`… in `segnet.lr``).
        None => one_line(&error.to_string()),
    }
}

/// Sets `a.b.c = value` from `assignment`; the value is read as TOML (`0.5`, `true`, `[1, 2]`,
/// `"text"`), or as a plain string when it is not valid TOML.
fn apply_override(
    document: &mut toml::Table,
    known: &toml::Table,
    assignment: &str,
) -> Result<(), ConfigError> {
    let fail = |message: String| ConfigError::Override {
        assignment: assignment.to_string(),
        message,
    };
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| fail("expected section.field=value".into()))?;
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("just parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    apply_value(document, known, path.trim(), value).map_err(fail)
}

/// Sets the field at dotted `path` in `document`. The path must exist in the defaults
/// (`known`), so a typo is an error; per-category sections may be new.
fn apply_value(
    document: &mut toml::Table,
    known: &toml::Table,
    path: &str,
    value: toml::Value,
) -> Result<(), String> {
    let keys: Vec<&str> = path.split('.').collect();
    let (last, parents) = keys
        .split_last()
        .ok_or_else(|| "empty field path".to_string())?;
    let mut table = document;
    let mut reference = Some(known);
    for (depth, key) in parents.iter().enumerate() {
        let entry = reference.and_then(|r| r.get(*key));
        let open_map = entry.is_none() && depth > 0 && keys[depth - 1] == "categories";
        if entry.is_some_and(|e| !e.is_table()) {
            return Err(format!(
                "`{}` is a field, not a section",
                keys[..=depth].join(".")
            ));
        }
        if entry.is_none() && !open_map && reference.is_some() {
            return Err(unknown_field(&keys[..=depth], reference));
        }
        reference = entry.and_then(|e| e.as_table());
        table = table
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a section", keys[..=depth].join(".")))?;
    }
    if let Some(reference) = reference
        && !reference.contains_key(*last)
        && parents.last().is_none_or(|p| *p != "categories")
        && !optional_field(path)
    {
        return Err(unknown_field(&keys, Some(reference)));
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// `unknown field `a.b``, with the known field of that section the name is closest to (a typo
/// a letter or two away, as TOML errors suggest), or the section's fields when none is close.
fn unknown_field(keys: &[&str], section: Option<&toml::Table>) -> String {
    let path = keys.join(".");
    let Some((name, parents)) = keys.split_last() else {
        return format!("unknown field `{path}`");
    };
    let Some(section) = section else {
        return format!("unknown field `{path}`");
    };
    let prefix = |field: &str| {
        parents
            .iter()
            .copied()
            .chain([field])
            .collect::<Vec<_>>()
            .join(".")
    };
    let optional = OPTIONAL_FIELDS.iter().filter_map(|field| {
        let (section, name) = field.rsplit_once('.')?;
        (section == parents.join(".")).then_some(name)
    });
    let mut fields: Vec<&str> = section.keys().map(String::as_str).chain(optional).collect();
    fields.sort_unstable();
    let closest = fields
        .iter()
        .map(|field| (edit_distance(name, field), *field))
        .min()
        .filter(|(distance, field)| *distance <= (field.len() / 3).max(1));
    match closest {
        Some((_, field)) => format!("unknown field `{path}` (did you mean `{}`?)", prefix(field)),
        None => format!("unknown field `{path}` (known: {})", fields.join(", ")),
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Fields whose default is absent (`None`), so the defaults' TOML does not list them.
const OPTIONAL_FIELDS: [&str; 2] = ["pretrain.max_steps", "simulation.textures"];

fn optional_field(path: &str) -> bool {
    OPTIONAL_FIELDS.contains(&path) || path.contains(".categories.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_config_keeps_the_behaviour_of_fields_it_predates() {
        let mut old = toml::Table::try_from(Config::default()).unwrap();
        old["simulation"]
            .as_table_mut()
            .unwrap()
            .remove("min_visible_change");
        let old = toml::to_string(&old).unwrap();
        let today = Config::parse(&old, "config.toml").unwrap();
        assert_eq!(
            today.simulation.min_visible_change,
            crate::simulate::MIN_VISIBLE_CHANGE
        );
        let recorded = Config::parse_recorded(&old, "config.toml").unwrap();
        assert_eq!(recorded.simulation.min_visible_change, 0.0);
        assert_eq!(
            Config {
                simulation: SimulationConfig {
                    min_visible_change: today.simulation.min_visible_change,
                    ..recorded.simulation.clone()
                },
                ..recorded
            },
            today
        );
        let written = Config::default().to_toml();
        assert_eq!(
            Config::parse_recorded(&written, "config.toml").unwrap(),
            Config::default()
        );
        assert_eq!(
            Config::parse_recorded("seed = 3\n", "config.toml")
                .unwrap()
                .simulation
                .min_visible_change,
            0.0
        );

        #[derive(Deserialize)]
        struct Spec {
            #[serde(deserialize_with = "Config::deserialize_recorded")]
            config: Config,
        }
        let mut spec = serde_json::json!({ "config": Config::default() });
        let parse = |spec: &serde_json::Value| {
            serde_json::from_value::<Spec>(spec.clone())
                .unwrap()
                .config
                .simulation
                .min_visible_change
        };
        assert_eq!(parse(&spec), crate::simulate::MIN_VISIBLE_CHANGE);
        spec["config"]["simulation"]
            .as_object_mut()
            .unwrap()
            .remove("min_visible_change");
        assert_eq!(parse(&spec), 0.0);
    }

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
        let err = Config::parse("[segnet]\nlr = -0.1\n", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("segnet.lr"), "{err}");
        let err = Config::parse("[model]\nimage_size = 100\n", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.image_size") && err.contains("multiple of 16"),
            "{err}"
        );
    }

    #[test]
    fn overrides_apply_and_typos_are_refused() {
        let set = |a: &[&str]| {
            Config::load_with(None, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let config = set(&[
            "segnet.steps=12",
            "model.width=0.25",
            "inference.image_score=max",
            "pretrain.max_steps=3",
        ])
        .unwrap();
        assert_eq!(
            (
                config.segnet.steps,
                config.model.width,
                config.pretrain.max_steps
            ),
            (12, 0.25, Some(3))
        );
        assert_eq!(config.inference.image_score, ImageScore::Max);
        let config = set(&["simulation.categories.screw.logical_probability=0.2"]).unwrap();
        assert_eq!(
            config.simulation.for_category("screw").logical_probability,
            0.2
        );
        for (assignment, needle) in [
            ("segnet.stepz=3", "segnet.stepz"),
            ("segment.steps=3", "segment"),
            ("segnet.steps=-3", "segnet"),
            ("segnet.lr=2000", "segnet.lr"),
            ("segnet", "section.field=value"),
        ] {
            let err = set(&[assignment]).unwrap_err().to_string();
            assert!(err.contains(needle), "{assignment}: {err}");
        }
    }

    #[test]
    fn a_mistyped_field_names_the_one_meant() {
        let error = |assignment: &str| {
            Config::load_with(None, &[assignment.to_string()])
                .unwrap_err()
                .to_string()
        };
        for (typo, meant) in [
            // An optional field, which the defaults do not list.
            ("pretrain.max_step=3", "did you mean `pretrain.max_steps`?"),
            ("segnet.stepz=3", "did you mean `segnet.steps`?"),
            ("segment.steps=3", "did you mean `segnet`?"),
            ("model.width.x=1", "`model.width` is a field, not a section"),
        ] {
            assert!(error(typo).contains(meant), "{typo}: {}", error(typo));
        }
        // Nothing close: the section's fields, not a guess.
        let far = error("segnet.zzzzzzzz=1");
        assert!(
            !far.contains("did you mean") && far.contains("known: ") && far.contains("steps"),
            "{far}"
        );
    }
}
