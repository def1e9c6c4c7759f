//! Training checkpoints kept in the store under a job's prefix
//! (`<prefix>/checkpoints/<stage>-<step>.ckpt`), for training threads that block on the async
//! store through a runtime handle.

use tokio::runtime::Handle;

use super::{Key, Store};
use crate::train::{CheckpointError, CheckpointStore};

pub struct StoreCheckpoints {
    store: Store,
    prefix: Key,
    runtime: Handle,
}

impl StoreCheckpoints {
    /// `prefix` is the job's key; `runtime` runs the store's futures (the caller must not be on
    /// one of its worker threads).
    pub fn new(store: Store, prefix: &Key, runtime: Handle) -> Result<Self, CheckpointError> {
        let prefix = prefix
            .join("checkpoints")
            .map_err(|e| CheckpointError::Store(e.to_string()))?;
        Ok(Self {
            store,
            prefix,
            runtime,
        })
    }

    fn key(&self, stage: &str, step: u64) -> Result<Key, CheckpointError> {
        self.prefix
            .join(&format!("{stage}-{step:08}.ckpt"))
            .map_err(|e| CheckpointError::Store(e.to_string()))
    }
}

impl CheckpointStore for StoreCheckpoints {
    fn save(&mut self, stage: &str, step: u64, bytes: &[u8]) -> Result<(), CheckpointError> {
        let key = self.key(stage, step)?;
        self.runtime
            .block_on(self.store.put(&key, bytes.to_vec()))
            .map_err(|e| CheckpointError::Store(e.to_string()))
    }

    fn steps(&self, stage: &str) -> Result<Vec<u64>, CheckpointError> {
        let keys = self
            .runtime
            .block_on(self.store.list(&self.prefix))
            .map_err(|e| CheckpointError::Store(e.to_string()))?;
        let mut steps: Vec<u64> = keys
            .iter()
            .filter_map(|k| {
                k.name()
                    .strip_prefix(&format!("{stage}-"))?
                    .strip_suffix(".ckpt")?
                    .parse()
                    .ok()
            })
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    fn load(&self, stage: &str, step: u64) -> Result<Vec<u8>, CheckpointError> {
        let key = self.key(stage, step)?;
        self.runtime
            .block_on(self.store.get(&key))
            .map_err(|e| CheckpointError::Store(e.to_string()))?
            .ok_or_else(|| CheckpointError::Store(format!("{key} disappeared")))
    }

    fn remove(&mut self, stage: &str, step: u64) -> Result<(), CheckpointError> {
        let key = self.key(stage, step)?;
        self.runtime
            .block_on(self.store.delete(&key))
            .map_err(|e| CheckpointError::Store(e.to_string()))
    }

    fn describe(&self, stage: &str, step: u64) -> String {
        format!(
            "{}/{}/{stage}-{step:08}.ckpt",
            self.store.url(),
            self.prefix
        )
    }
}
