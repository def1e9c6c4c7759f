//! Every key of the store, built here and nowhere else, from validated names only:
//!
//! ```text
//! service/runs.json                            the coordinator service's runs
//! runs/<run>/plan.json, state.json, summary.json, report.html
//! runs/<run>/jobs/<job>/…                      one stage's output (below)
//! models/<category>/current, previous          the version each alias names
//! models/<category>/history.jsonl              every registry decision
//! models/<category>/versions/<version>/model.json, weights.ckpt, card.json, data.json
//! ```
//!
//! `slsg fit --out DIR` keeps `config.toml` (the config its checkpoints belong to) beside its two
//! stage folders. A stage's output — a cluster job's folder, or `<out>/pretrain` and
//! `<out>/segnet` of `slsg fit` — holds `spec.json` (jobs only), `curve.jsonl`, `result.json`,
//! `checkpoints/<stage>-<step>.ckpt`, and `encoder.ckpt` (pre-training) or `model/`,
//! `data.json` (the training images' manifest), `eval.json`,
//! `maps/<category>/test/<kind>/<id>.tiff`, `maps/maps.json`, and for the run report
//! `figures.json`, `gallery/<kind>/<id>.jpg` and `simulated.jpg` (SegNet).
//!
//! A dataset URL holds the dataset folder's files under the same names (`<category>/…`) and,
//! once `slsg dataset push` has written to it, `slsg-push.json`: each pushed file's size and
//! content hash.

use super::{Key, NameError};

/// The card of a model folder (`model/`, a registered version, a folder `slsg predict` reads).
pub const MODEL_CARD_FILE: &str = "model.json";
/// The weights of a model folder.
pub const MODEL_WEIGHTS_FILE: &str = "weights.ckpt";

/// How the model that wrote a folder of maps scores an image, beside the maps (a SegNet stage's
/// `maps/`, or the folder `slsg predict` writes).
pub const MAPS_INFO_FILE: &str = "maps.json";

/// The manifest of a model's training images, beside the model.
const DATA_FILE: &str = "data.json";

/// The folder of every category's registered models.
const MODELS: &str = "models";
/// The folder of every run.
const RUNS: &str = "runs";
/// A registered version's card, written last.
const VERSION_CARD_FILE: &str = "card.json";

/// `key/segment` for a segment written in this module (always a valid name).
fn fixed(key: &Key, segment: &'static str) -> Key {
    key.join(segment)
        .expect("the layout's own segments are valid names")
}

/// The coordinator service's list of its runs.
pub fn service_runs() -> Key {
    Key::new(["service", "runs.json"]).expect("a valid literal")
}

/// The folder of the coordinator lock's markers: one coordinator writes to a store at a time.
pub fn coordinator_lock() -> Key {
    Key::new(["service", "lock"]).expect("a valid literal")
}

/// One marker of the coordinator lock: `service/lock/<epoch>/<beat>` (20 digits each, so that
/// they sort as numbers) or `service/lock/<epoch>/released`.
pub fn coordinator_lock_marker(epoch: u64, marker: LockMarker) -> Key {
    let name = match marker {
        LockMarker::Beat(beat) => format!("{beat:020}"),
        LockMarker::Released => LOCK_RELEASED.to_string(),
    };
    coordinator_lock()
        .join_all([format!("{epoch:020}"), name])
        .expect("digits and a literal are valid names")
}

/// A marker of the coordinator lock, read back from a listing: its epoch and what it marks;
/// `None` for any other key.
pub fn lock_marker_of(key: &Key) -> Option<(u64, LockMarker)> {
    let (epoch, name) = key.strip_prefix(&coordinator_lock())?.split_once('/')?;
    let epoch = epoch.parse().ok()?;
    let marker = if name == LOCK_RELEASED {
        LockMarker::Released
    } else {
        LockMarker::Beat(name.parse().ok()?)
    };
    Some((epoch, marker))
}

/// What a coordinator lock marker says: its holder was alive (beat `n`) or let the lock go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMarker {
    Beat(u64),
    Released,
}

const LOCK_RELEASED: &str = "released";

/// What `slsg dataset push` sent to a dataset URL.
pub fn dataset_push_record() -> Key {
    Key::new(["slsg-push.json"]).expect("a valid literal")
}

/// The config a `slsg fit` output folder was trained with.
pub fn fit_config() -> Key {
    Key::new(["config.toml"]).expect("a valid literal")
}

/// `runs/<run>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKeys {
    root: Key,
}

impl RunKeys {
    pub fn new(run: &str) -> Result<RunKeys, NameError> {
        Ok(RunKeys {
            root: Key::new([RUNS, run])?,
        })
    }

    pub fn prefix(&self) -> &Key {
        &self.root
    }

    pub fn plan(&self) -> Key {
        fixed(&self.root, "plan.json")
    }

    /// The coordinator's journal of the run's job table.
    pub fn journal(&self) -> Key {
        fixed(&self.root, "state.json")
    }

    pub fn summary(&self) -> Key {
        fixed(&self.root, "summary.json")
    }

    pub fn report(&self) -> Key {
        fixed(&self.root, "report.html")
    }

    /// The output folder of job `job`.
    pub fn job(&self, job: &str) -> Result<StageKeys, NameError> {
        Ok(StageKeys {
            root: fixed(&self.root, "jobs").join(job)?,
        })
    }
}

/// One stage's output folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageKeys {
    root: Key,
}

impl StageKeys {
    /// The stage folders of `slsg fit`'s output: `<out>/<stage>`.
    pub fn fit_stage(stage: &str) -> Result<StageKeys, NameError> {
        Ok(StageKeys {
            root: Key::new([stage])?,
        })
    }

    pub fn prefix(&self) -> &Key {
        &self.root
    }

    /// The job's specification (cluster jobs only).
    pub fn spec(&self) -> Key {
        fixed(&self.root, "spec.json")
    }

    /// Training events as JSON lines, continued across attempts.
    pub fn curve(&self) -> Key {
        fixed(&self.root, "curve.jsonl")
    }

    /// Written last: its presence means the stage finished.
    pub fn result(&self) -> Key {
        fixed(&self.root, "result.json")
    }

    /// The pre-trained encoder a SegNet stage starts from.
    pub fn encoder(&self) -> Key {
        fixed(&self.root, "encoder.ckpt")
    }

    pub fn model(&self) -> ModelKeys {
        ModelKeys {
            root: fixed(&self.root, "model"),
        }
    }

    /// The manifest of the normal images the model was trained and selected on.
    pub fn data(&self) -> Key {
        fixed(&self.root, DATA_FILE)
    }

    /// The test split's metrics.
    pub fn eval(&self) -> Key {
        fixed(&self.root, "eval.json")
    }

    pub fn checkpoints(&self) -> Key {
        fixed(&self.root, "checkpoints")
    }

    /// What the run report draws of the test split: curves, scores, the gallery's choice.
    pub fn figures(&self) -> Key {
        fixed(&self.root, "figures.json")
    }

    /// A gallery picture of a test image: `gallery/<kind>/<id>.jpg`.
    pub fn gallery(&self, kind: &str, id: &str) -> Result<Key, NameError> {
        fixed(&self.root, "gallery").join_all([kind, &format!("{id}.jpg")])
    }

    /// A contact sheet of the stage's simulated training anomalies.
    pub fn simulated(&self) -> Key {
        fixed(&self.root, "simulated.jpg")
    }

    /// `checkpoints/<stage>-<step>.ckpt`.
    pub fn checkpoint(&self, stage: &str, step: u64) -> Result<Key, NameError> {
        self.checkpoints().join(&format!("{stage}-{step:08}.ckpt"))
    }

    /// The step of a key listed under [`checkpoints`](Self::checkpoints), if it is one of
    /// `stage`'s checkpoints.
    pub fn checkpoint_step(&self, key: &Key, stage: &str) -> Option<u64> {
        key.strip_prefix(&self.checkpoints())?
            .strip_prefix(stage)?
            .strip_prefix('-')?
            .strip_suffix(".ckpt")?
            .parse()
            .ok()
    }

    pub fn maps(&self) -> Key {
        fixed(&self.root, "maps")
    }

    /// How the model that wrote the maps scores an image (`maps/maps.json`).
    pub fn maps_info(&self) -> Key {
        fixed(&self.maps(), MAPS_INFO_FILE)
    }

    /// A test image's anomaly map, in the layout of the official evaluation:
    /// `maps/<category>/test/<kind>/<id>.tiff`.
    pub fn map(&self, category: &str, kind: &str, id: &str) -> Result<Key, NameError> {
        self.maps()
            .join_all([category, "test", kind, &format!("{id}.tiff")])
    }
}

/// A model folder: its card and its weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelKeys {
    root: Key,
}

impl ModelKeys {
    pub fn prefix(&self) -> &Key {
        &self.root
    }

    pub fn card(&self) -> Key {
        fixed(&self.root, MODEL_CARD_FILE)
    }

    pub fn weights(&self) -> Key {
        fixed(&self.root, MODEL_WEIGHTS_FILE)
    }
}

/// `models/<category>/`: a category's registered versions, aliases and history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryModels {
    root: Key,
}

impl CategoryModels {
    pub fn new(category: &str) -> Result<CategoryModels, NameError> {
        Ok(CategoryModels {
            root: Key::new([MODELS, category])?,
        })
    }

    /// Every category folder lives under this.
    pub fn all() -> Key {
        Key::new([MODELS]).expect("a valid literal")
    }

    pub fn prefix(&self) -> &Key {
        &self.root
    }

    /// Names the version in production.
    pub fn current(&self) -> Key {
        fixed(&self.root, "current")
    }

    /// Names the version `current` named before it.
    pub fn previous(&self) -> Key {
        fixed(&self.root, "previous")
    }

    /// One JSON line per decision.
    pub fn history(&self) -> Key {
        fixed(&self.root, "history.jsonl")
    }

    pub fn versions(&self) -> Key {
        fixed(&self.root, "versions")
    }

    pub fn version(&self, version: &str) -> Result<VersionKeys, NameError> {
        Ok(VersionKeys {
            root: self.versions().join(version)?,
        })
    }

    /// The version a key listed under [`versions`](Self::versions) belongs to.
    pub fn version_of<'k>(&self, key: &'k Key) -> Option<&'k str> {
        key.strip_prefix(&self.versions())?.split('/').next()
    }

    /// The version whose card `key` is, for a key listed under [`versions`](Self::versions).
    pub fn card_version<'k>(&self, key: &'k Key) -> Option<&'k str> {
        let version = self.version_of(key)?;
        let card = self.version(version).ok()?.card();
        (card.as_str() == key.as_str()).then_some(version)
    }

    /// The category a key listed under [`all`](Self::all) belongs to.
    pub fn category_of(key: &Key) -> Option<&str> {
        key.strip_prefix(&Self::all())?.split('/').next()
    }
}

/// A run URL taken apart: `<store>/runs/<run>`, or `runs/<run>` in the current folder's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPath<'a> {
    pub store: &'a str,
    pub run: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RunPathError {
    #[error("not a run URL (expected <store>/{RUNS}/<run>)")]
    NotARun,
    #[error("no store before `/{RUNS}/`")]
    NoStore,
    #[error(transparent)]
    Name(#[from] NameError),
}

impl<'a> RunPath<'a> {
    /// Takes `url` apart; the run must be a valid name.
    pub fn parse(url: &'a str) -> Result<RunPath<'a>, RunPathError> {
        let trimmed = url.trim_end_matches('/');
        let (store, run) = trimmed
            .rsplit_once(&format!("/{RUNS}/"))
            .or_else(|| {
                trimmed
                    .strip_prefix(&format!("{RUNS}/"))
                    .map(|run| (".", run))
            })
            .ok_or(RunPathError::NotARun)?;
        if store.is_empty() || store.ends_with("://") {
            return Err(RunPathError::NoStore);
        }
        RunKeys::new(run)?;
        Ok(RunPath { store, run })
    }
}

/// What a model URL names below its store's `models/` folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAlias<'a> {
    Current,
    Previous,
    Version(&'a str),
}

/// A model URL taken apart: `<store>/models/<category>/current`, `…/previous` or
/// `…/versions/<version>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelPath<'a> {
    pub store: &'a str,
    pub category: &'a str,
    pub alias: ModelAlias<'a>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelPathError {
    #[error("no `/{MODELS}/` in it")]
    NoModels,
    #[error("no store before `/{MODELS}/`")]
    NoStore,
    #[error("it names no version")]
    NoVersion,
    #[error(transparent)]
    Name(#[from] NameError),
}

impl<'a> ModelPath<'a> {
    /// Takes `url` apart (the store being any store URL: `s3://bucket/prefix`, `file:///path`, a
    /// folder); the category and version must be valid names.
    pub fn parse(url: &'a str) -> Result<ModelPath<'a>, ModelPathError> {
        let (store, rest) = url
            .rsplit_once(&format!("/{MODELS}/"))
            .ok_or(ModelPathError::NoModels)?;
        if store.is_empty() || store.ends_with("://") {
            return Err(ModelPathError::NoStore);
        }
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let (category, alias) = match parts.as_slice() {
            [category, "current"] => (*category, ModelAlias::Current),
            [category, "previous"] => (*category, ModelAlias::Previous),
            [category, "versions", version] => (*category, ModelAlias::Version(version)),
            _ => return Err(ModelPathError::NoVersion),
        };
        let models = CategoryModels::new(category)?;
        if let ModelAlias::Version(version) = alias {
            models.version(version)?;
        }
        Ok(ModelPath {
            store,
            category,
            alias,
        })
    }
}

/// `<category>/` at a dataset URL: the category folder's files under their relative names.
pub fn dataset_category(category: &str) -> Result<Key, NameError> {
    Key::new([category])
}

/// One file of a category at a dataset URL, by its name relative to the category folder
/// (`train/good/000.png`).
pub fn dataset_file(category: &Key, relative: &str) -> Result<Key, NameError> {
    category.join_all(relative.split('/'))
}

/// One file at a dataset URL, by its name relative to the dataset folder
/// (`<category>/train/good/000.png`).
pub fn dataset_object(name: &str) -> Result<Key, NameError> {
    Key::parse(name)
}

/// `models/<category>/versions/<version>/`: a model folder plus its registration card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionKeys {
    root: Key,
}

impl VersionKeys {
    pub fn model(&self) -> ModelKeys {
        ModelKeys {
            root: self.root.clone(),
        }
    }

    /// The manifest of the normal images the version was trained and selected on.
    pub fn data(&self) -> Key {
        fixed(&self.root, DATA_FILE)
    }

    /// Written last when a version is registered: its presence means the copy is whole.
    pub fn card(&self) -> Key {
        fixed(&self.root, VERSION_CARD_FILE)
    }

    pub fn prefix(&self) -> &Key {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_markers_sort_as_numbers_and_read_back() {
        let beat = coordinator_lock_marker(3, LockMarker::Beat(12));
        assert_eq!(
            beat.as_str(),
            "service/lock/00000000000000000003/00000000000000000012"
        );
        assert!(coordinator_lock_marker(10, LockMarker::Beat(0)) > beat);
        assert_eq!(lock_marker_of(&beat), Some((3, LockMarker::Beat(12))));
        let released = coordinator_lock_marker(u64::MAX, LockMarker::Released);
        assert_eq!(
            lock_marker_of(&released),
            Some((u64::MAX, LockMarker::Released))
        );
        for other in [
            "service/runs.json",
            "service/lock/x/1",
            "service/lock/1/x",
            "service/lock/1",
        ] {
            assert_eq!(lock_marker_of(&Key::parse(other).unwrap()), None, "{other}");
        }
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let run = RunKeys::new("r1").unwrap();
        assert_eq!(run.journal().as_str(), "runs/r1/state.json");
        let job = run.job("abc").unwrap();
        assert_eq!(
            job.model().card().as_str(),
            "runs/r1/jobs/abc/model/model.json"
        );
        let checkpoint = job.checkpoint("segnet", 42).unwrap();
        assert_eq!(
            checkpoint.as_str(),
            "runs/r1/jobs/abc/checkpoints/segnet-00000042.ckpt"
        );
        assert_eq!(job.checkpoint_step(&checkpoint, "segnet"), Some(42));
        assert_eq!(job.checkpoint_step(&checkpoint, "pretrain"), None);
        assert_eq!(
            job.map("tray", "logical_anomalies", "000")
                .unwrap()
                .as_str(),
            "runs/r1/jobs/abc/maps/tray/test/logical_anomalies/000.tiff"
        );
        assert!(job.map("tray", "good", "x..y").is_err());
        assert!(RunKeys::new("../x").is_err());
        let models = CategoryModels::new("tray").unwrap();
        let version = models.version("r1-abc").unwrap();
        assert_eq!(
            version.model().weights().as_str(),
            "models/tray/versions/r1-abc/weights.ckpt"
        );
        assert_eq!(models.version_of(&version.card()), Some("r1-abc"));
        assert_eq!(models.card_version(&version.card()), Some("r1-abc"));
        assert_eq!(models.card_version(&version.model().card()), None);
        assert_eq!(CategoryModels::category_of(&models.current()), Some("tray"));
        assert_eq!(
            dataset_file(&dataset_category("tray").unwrap(), "train/good/000.png")
                .unwrap()
                .as_str(),
            "tray/train/good/000.png"
        );
        assert!(dataset_file(&dataset_category("tray").unwrap(), "../x.png").is_err());
        assert_eq!(
            StageKeys::fit_stage("segnet").unwrap().eval().as_str(),
            "segnet/eval.json"
        );
    }
}
