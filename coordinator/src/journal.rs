//! A run's journal (`runs/<run>/state.json`) kept on its own thread: the table's changes are
//! merged into the writer's copy, serialised and stored, bursts coalesced, so the actor never
//! serialises the whole table (milliseconds at 10 000 jobs) nor waits for the store unless it
//! asks to.

use std::sync::Arc;

use slsg::store::{Key, Store, StoreError};
use tokio::sync::oneshot;

use crate::table::{Journal, JournalChanges};

pub type Waiter = oneshot::Sender<Result<(), Arc<StoreError>>>;

pub struct JournalWriter {
    sender: std::sync::mpsc::Sender<(JournalChanges, Option<Waiter>)>,
}

impl JournalWriter {
    pub fn start(
        store: Store,
        key: Key,
        mut journal: Journal,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<JournalWriter> {
        let (sender, receiver) = std::sync::mpsc::channel::<(JournalChanges, Option<Waiter>)>();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut waiters = Vec::new();
                    for (changes, waiter) in std::iter::once(first).chain(receiver.try_iter()) {
                        journal.jobs.extend(changes.jobs);
                        waiters.extend(waiter);
                    }
                    let bytes = serde_json::to_vec(&journal).expect("the journal serialises");
                    let outcome = runtime.block_on(store.put(&key, bytes)).map_err(Arc::new);
                    if let Err(e) = &outcome {
                        tracing::error!("writing the journal: {e}");
                    }
                    for waiter in waiters {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })?;
        Ok(JournalWriter { sender })
    }

    pub fn write(&self, changes: JournalChanges, waiter: Option<Waiter>) {
        let _ = self.sender.send((changes, waiter));
    }
}
