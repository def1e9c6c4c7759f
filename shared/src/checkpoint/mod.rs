//! Checkpoints: a versioned, checksummed container of named sections (model, optimiser state,
//! …) plus JSON metadata, and where training keeps them (a stage's `checkpoints/` in the store).
//! A corrupt or foreign checkpoint is refused with a clear error; loading falls back to the
//! previous one. Model files use the same container.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod burn_0_21;

use crate::store::layout::StageKeys;
use crate::store::{BlockingStore, NameError, StoreError};

const MAGIC: &[u8; 8] = b"SLSGCKPT";
/// Bumped whenever the layout of the container or of a section changes. Format 1 (sections as
/// Burn 0.21's MessagePack records) is still read, converted as it is decoded.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{origin}: not an slsg checkpoint")]
    NotACheckpoint { origin: String },
    #[error(
        "{origin}: checkpoint format {found} is not supported by this slsg (format {FORMAT_VERSION}); retrain or use the slsg version that wrote it"
    )]
    UnsupportedFormat { origin: String, found: u32 },
    #[error("{origin}: checkpoint is corrupt ({reason})")]
    Corrupt { origin: String, reason: String },
    #[error("{origin}: checkpoint has no `{section}` section")]
    MissingSection { origin: String, section: String },
    #[error("{origin}: section `{section}` does not fit this model: {message}")]
    Incompatible {
        origin: String,
        section: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
}

/// What a checkpoint is, beyond its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// `pretrain`, `segnet`, or `model` for a finished model.
    pub stage: String,
    /// Training steps completed.
    pub step: u64,
    pub total_steps: u64,
    pub seed: u64,
    /// Free-form values the stage keeps across a resume (best validation score, …).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    sections: BTreeMap<String, Vec<u8>>,
}

impl Checkpoint {
    pub fn new(meta: CheckpointMeta) -> Self {
        Self {
            meta,
            sections: BTreeMap::new(),
        }
    }

    /// Adds a module's parameters and running statistics (as Burn's burnpack bytes).
    pub fn put_module<M: Module>(&mut self, name: &str, module: &M) {
        // `valid()` reads each running statistic as the forward passes left it: a training
        // module's record would hold the value last synchronised.
        let bytes = module
            .valid()
            .into_record()
            .into_bytes()
            .expect("a module's record always serialises");
        self.sections.insert(name.to_string(), bytes.to_vec());
    }

    /// Adds an optimiser's state (as Burn's burnpack bytes).
    pub fn put_optimizer(&mut self, name: &str, optimizer: &ModuleOptimizer) {
        let bytes = optimizer
            .into_bytes()
            .expect("an optimiser's state always serialises");
        self.sections.insert(name.to_string(), bytes.to_vec());
    }

    pub fn has(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    fn section(&self, name: &str, origin: &str) -> Result<Bytes, CheckpointError> {
        self.sections
            .get(name)
            .map(|bytes| Bytes::from_bytes_vec(bytes.clone()))
            .ok_or_else(|| CheckpointError::MissingSection {
                origin: origin.to_string(),
                section: name.to_string(),
            })
    }

    fn incompatible(name: &str, origin: &str, message: String) -> CheckpointError {
        CheckpointError::Incompatible {
            origin: origin.to_string(),
            section: name.to_string(),
            message,
        }
    }

    /// Loads section `name` into `module`, which fixes the architecture and the device: a
    /// section whose tensors have other shapes (weights of another model size) is refused, not
    /// loaded, naming the first tensor that differs.
    pub fn load_module<M: Module>(
        &self,
        name: &str,
        module: M,
        origin: &str,
    ) -> Result<M, CheckpointError> {
        let bytes = self.section(name, origin)?;
        fits(&shapes(&module), &bytes).map_err(|e| Self::incompatible(name, origin, e))?;
        let record = ModuleRecord::from_bytes(bytes)
            .map_err(|e| Self::incompatible(name, origin, e.to_string()))?;
        module
            .try_load_record(record)
            .map_err(|e| Self::incompatible(name, origin, e.to_string()))
    }

    /// Loads section `name` into `optimizer`. Its state lands on Burn's default device and
    /// moves to each parameter's device at the next step.
    pub fn load_optimizer(
        &self,
        name: &str,
        optimizer: ModuleOptimizer,
        origin: &str,
    ) -> Result<ModuleOptimizer, CheckpointError> {
        optimizer
            .from_bytes(self.section(name, origin)?)
            .map_err(|e| Self::incompatible(name, origin, e.to_string()))
    }

    /// `MAGIC | format u32 | sha256(format ‖ body) | body`, body = meta JSON and the sections.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(FORMAT_VERSION)
    }

    fn encode_as(&self, format: u32) -> Vec<u8> {
        let mut body = Vec::new();
        let meta = serde_json::to_vec(&self.meta).expect("metadata serialises");
        body.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        body.extend_from_slice(&meta);
        body.extend_from_slice(&(self.sections.len() as u32).to_le_bytes());
        for (name, data) in &self.sections {
            body.extend_from_slice(&(name.len() as u32).to_le_bytes());
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&(data.len() as u64).to_le_bytes());
            body.extend_from_slice(data);
        }
        let mut digest = Sha256::new();
        digest.update(format.to_le_bytes());
        digest.update(&body);
        let mut out = Vec::with_capacity(body.len() + 44);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&digest.finalize());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and verifies a checkpoint; `origin` names it in errors. The checksum covers the
    /// format field, so damage is reported as corruption and only an intact file of another
    /// version as an unsupported format.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |reason: &str| CheckpointError::Corrupt {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(CheckpointError::NotACheckpoint {
                origin: origin.to_string(),
            });
        }
        if bytes.len() < 44 {
            return Err(corrupt("truncated header"));
        }
        let body = &bytes[44..];
        let mut digest = Sha256::new();
        digest.update(&bytes[8..12]);
        digest.update(body);
        if digest.finalize().as_slice() != &bytes[12..44] {
            return Err(corrupt(
                "checksum mismatch: the file is truncated or damaged",
            ));
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != FORMAT_VERSION && format != burn_0_21::FORMAT_VERSION {
            return Err(CheckpointError::UnsupportedFormat {
                origin: origin.to_string(),
                found: format,
            });
        }
        let mut reader = Reader { bytes: body, at: 0 };
        let meta_len = reader.u64().ok_or_else(|| corrupt("truncated metadata"))? as usize;
        let meta = reader
            .take(meta_len)
            .ok_or_else(|| corrupt("truncated metadata"))?;
        let meta: CheckpointMeta =
            serde_json::from_slice(meta).map_err(|e| corrupt(&format!("metadata: {e}")))?;
        let count = reader
            .u32()
            .ok_or_else(|| corrupt("truncated section table"))?;
        let mut sections = BTreeMap::new();
        for _ in 0..count {
            let name_len = reader.u32().ok_or_else(|| corrupt("truncated section"))? as usize;
            let name = reader
                .take(name_len)
                .ok_or_else(|| corrupt("truncated section"))?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("section name"))?;
            let len = reader.u64().ok_or_else(|| corrupt("truncated section"))? as usize;
            let data = reader
                .take(len)
                .ok_or_else(|| corrupt("truncated section"))?;
            if format == FORMAT_VERSION {
                sections.insert(name, data.to_vec());
            } else if let Some(converted) = burn_0_21::convert_section(&name, data)
                .map_err(|e| corrupt(&format!("section `{name}` (Burn 0.21's records): {e}")))?
            {
                sections.insert(name, converted);
            }
        }
        Ok(Checkpoint { meta, sections })
    }
}

/// Every float tensor of a module (parameters and running statistics) by its path
/// (`encoder.stem.weight`, `decoder.blocks.0.first.conv.weight`), with its shape.
fn shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    #[derive(Default)]
    struct Shapes {
        path: Vec<String>,
        found: BTreeMap<String, Vec<usize>>,
    }
    impl ModuleVisitor for Shapes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.found
                .insert(self.path.join("."), param.shape().dims::<D>().to_vec());
        }
    }
    let mut shapes = Shapes::default();
    module.visit(&mut shapes);
    shapes.found
}

/// Whether a module section holds exactly the tensors `expected` names, with their shapes; the
/// first difference otherwise, in one line.
fn fits(expected: &BTreeMap<String, Vec<usize>>, section: &Bytes) -> Result<(), String> {
    let tensors = burn_pack::Reader::from_bytes(section.clone())
        .and_then(burn_pack::Reader::into_tensors)
        .map_err(|e| e.to_string())?;
    let found: BTreeMap<String, Vec<usize>> = tensors
        .into_iter()
        .map(|t| (t.name, t.shape.to_vec()))
        .collect();
    let mut differences = expected
        .iter()
        .filter_map(|(path, shape)| match found.get(path) {
            None => Some(format!("it has no tensor `{path}`")),
            Some(other) if other != shape => Some(format!(
                "tensor `{path}` has shape {other:?}, the model expects {shape:?}"
            )),
            Some(_) => None,
        })
        .chain(
            found
                .keys()
                .filter(|path| !expected.contains_key(*path))
                .map(|path| format!("tensor `{path}` is not part of the model")),
        );
    match differences.next() {
        None => Ok(()),
        Some(first) => match differences.count() {
            0 => Err(first),
            more => Err(format!("{first} (and {more} more differences)")),
        },
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Where a training run keeps its checkpoints. Writes must be atomic: a reader never sees half
/// a checkpoint.
pub trait CheckpointStore {
    fn save(&mut self, stage: &str, step: u64, bytes: &[u8]) -> Result<(), CheckpointError>;
    /// The steps saved for `stage`, ascending.
    fn steps(&self, stage: &str) -> Result<Vec<u64>, CheckpointError>;
    fn load(&self, stage: &str, step: u64) -> Result<Vec<u8>, CheckpointError>;
    fn remove(&mut self, stage: &str, step: u64) -> Result<(), CheckpointError>;
    /// A name for `stage`'s checkpoint at `step` in messages.
    fn describe(&self, stage: &str, step: u64) -> String;
}

/// The newest checkpoint of `stage` that decodes; corrupt ones are reported and skipped.
pub fn latest_checkpoint(
    store: &dyn CheckpointStore,
    stage: &str,
) -> Result<Option<Checkpoint>, CheckpointError> {
    for step in store.steps(stage)?.into_iter().rev() {
        let origin = store.describe(stage, step);
        match store
            .load(stage, step)
            .and_then(|bytes| Checkpoint::decode(&bytes, &origin))
        {
            Ok(checkpoint) => return Ok(Some(checkpoint)),
            Err(e @ (CheckpointError::UnsupportedFormat { .. } | CheckpointError::Store(_))) => {
                return Err(e);
            }
            Err(e) => tracing::warn!("skipping unusable checkpoint: {e}"),
        }
    }
    Ok(None)
}

/// Saves a checkpoint and keeps only the newest `keep` of its stage.
pub fn save_checkpoint(
    store: &mut dyn CheckpointStore,
    checkpoint: &Checkpoint,
    keep: usize,
) -> Result<(), CheckpointError> {
    let stage = checkpoint.meta.stage.clone();
    store.save(&stage, checkpoint.meta.step, &checkpoint.encode())?;
    let steps = store.steps(&stage)?;
    for &old in steps.iter().take(steps.len().saturating_sub(keep.max(1))) {
        store.remove(&stage, old)?;
    }
    Ok(())
}

/// The checkpoints of one stage's output folder in the store.
pub struct StoreCheckpoints {
    store: BlockingStore,
    keys: StageKeys,
}

impl StoreCheckpoints {
    pub fn new(store: BlockingStore, keys: StageKeys) -> Self {
        Self { store, keys }
    }
}

impl CheckpointStore for StoreCheckpoints {
    fn save(&mut self, stage: &str, step: u64, bytes: &[u8]) -> Result<(), CheckpointError> {
        let key = self.keys.checkpoint(stage, step)?;
        Ok(self.store.put(&key, bytes.to_vec())?)
    }

    fn steps(&self, stage: &str) -> Result<Vec<u64>, CheckpointError> {
        let mut steps: Vec<u64> = self
            .store
            .list(&self.keys.checkpoints())?
            .iter()
            .filter_map(|key| self.keys.checkpoint_step(key, stage))
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    fn load(&self, stage: &str, step: u64) -> Result<Vec<u8>, CheckpointError> {
        let key = self.keys.checkpoint(stage, step)?;
        self.store
            .get(&key)?
            .ok_or_else(|| CheckpointError::Corrupt {
                origin: self.store.describe(&key),
                reason: "it disappeared while being read".into(),
            })
    }

    fn remove(&mut self, stage: &str, step: u64) -> Result<(), CheckpointError> {
        let key = self.keys.checkpoint(stage, step)?;
        Ok(self.store.delete(&key)?)
    }

    fn describe(&self, stage: &str, step: u64) -> String {
        match self.keys.checkpoint(stage, step) {
            Ok(key) => self.store.describe(&key),
            Err(e) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut c = Checkpoint::new(CheckpointMeta {
            stage: "segnet".into(),
            step: 7,
            total_steps: 10,
            seed: 1,
            extra: BTreeMap::new(),
        });
        c.sections.insert("model".into(), vec![1, 2, 3]);
        c
    }

    #[test]
    fn round_trip_and_damage_detection() {
        let bytes = sample().encode();
        let back = Checkpoint::decode(&bytes, "x").unwrap();
        assert_eq!(
            (back.meta, back.sections),
            (sample().meta, sample().sections)
        );
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xFF;
        assert!(matches!(
            Checkpoint::decode(&damaged, "x"),
            Err(CheckpointError::Corrupt { .. })
        ));
        assert!(matches!(
            Checkpoint::decode(&bytes[..bytes.len() - 5], "x"),
            Err(CheckpointError::Corrupt { .. })
        ));
        assert!(matches!(
            Checkpoint::decode(b"hello world, not a checkpoint", "x"),
            Err(CheckpointError::NotACheckpoint { .. })
        ));
        let future = sample().encode_as(99);
        let err = Checkpoint::decode(&future, "model/weights.ckpt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model/weights.ckpt") && err.contains("format 99"),
            "{err}"
        );
    }

    #[test]
    fn latest_skips_a_corrupt_checkpoint_and_save_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = crate::store::Store::open(dir.path().to_str().unwrap()).unwrap();
        let keys = StageKeys::fit_stage("segnet").unwrap();
        let mut store =
            StoreCheckpoints::new(BlockingStore::new(store, runtime.handle().clone()), keys);
        for step in [5, 10, 15] {
            let mut c = sample();
            c.meta.step = step;
            save_checkpoint(&mut store, &c, 2).unwrap();
        }
        assert_eq!(store.steps("segnet").unwrap(), vec![10, 15]);
        assert!(store.steps("pretrain").unwrap().is_empty());
        std::fs::write(
            dir.path().join("segnet/checkpoints/segnet-00000015.ckpt"),
            b"SLSGCKPT garbage",
        )
        .unwrap();
        assert_eq!(
            latest_checkpoint(&store, "segnet")
                .unwrap()
                .unwrap()
                .meta
                .step,
            10
        );
        assert!(latest_checkpoint(&store, "pretrain").unwrap().is_none());
    }
}
