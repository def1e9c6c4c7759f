//! The store for threads that block (training threads, command handlers): every call runs the
//! store's future on a runtime handle. Never call it from one of that runtime's own threads.

use object_store::PutPayload;
use tokio::runtime::Handle;

use super::{Key, Store, StoreError};

#[derive(Clone, Debug)]
pub struct BlockingStore {
    store: Store,
    runtime: Handle,
}

impl BlockingStore {
    pub fn new(store: Store, runtime: Handle) -> Self {
        Self { store, runtime }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    pub fn put(&self, key: &Key, bytes: impl Into<PutPayload>) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.put(key, bytes))
    }

    pub fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.runtime.block_on(self.store.get(key))
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, StoreError> {
        self.runtime.block_on(self.store.get_json(key))
    }

    pub fn put_json<T: serde::Serialize>(&self, key: &Key, value: &T) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.put_json(key, value))
    }

    pub fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        self.runtime.block_on(self.store.exists(key))
    }

    pub fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.runtime.block_on(self.store.list(prefix))
    }

    pub fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.delete(key))
    }

    pub fn describe(&self, key: &Key) -> String {
        self.store.describe(key)
    }
}
