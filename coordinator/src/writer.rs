//! Documents the coordinator keeps in the store — each run's journal, the service's list of
//! runs — written by a thread of their own: updates are applied to the writer's copy and the
//! copy is stored, bursts coalesced, so the actor never serialises a whole table nor waits for
//! the store unless it asks to. A failed write is retried with a growing pause until one
//! succeeds, so the stored copy catches up after a store outage. The process can wait for its
//! writers to end (before it lets another coordinator write).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use serde::Serialize;
use slsg::store::{Key, Store, StoreError};
use tokio::sync::oneshot;

/// Told whether the write that included its update succeeded.
pub type Waiter = oneshot::Sender<Result<(), Arc<StoreError>>>;

type Update<T> = Box<dyn FnOnce(&mut T) + Send>;

/// The longest pause between two tries of a failed write.
const MOST_PAUSE: Duration = Duration::from_secs(30);

/// Writer threads of this process still running: each ends once every handle to its document
/// is gone and its last write has returned.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Waits up to `limit` for every writer thread of this process to end; whether they did.
pub async fn writers_finished(limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while RUNNING.load(Ordering::SeqCst) > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Counts a writer thread as running while it lives.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct DocumentWriter<T> {
    sender: Sender<(Update<T>, Option<Waiter>)>,
}

impl<T> Clone for DocumentWriter<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Serialize + Send + 'static> DocumentWriter<T> {
    /// Keeps `document` at `key`, starting from `document` as it is.
    pub fn start(
        name: &str,
        store: Store,
        key: Key,
        document: T,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<DocumentWriter<T>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let running = Running::start();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _running = running;
                keep(&receiver, &store, &key, document, &runtime)
            })?;
        Ok(DocumentWriter { sender })
    }

    /// Applies `update` and stores the document soon; `waiter` hears how that went.
    pub fn update(&self, update: impl FnOnce(&mut T) + Send + 'static, waiter: Option<Waiter>) {
        let _ = self.sender.send((Box::new(update), waiter));
    }
}

fn keep<T: Serialize>(
    receiver: &Receiver<(Update<T>, Option<Waiter>)>,
    store: &Store,
    key: &Key,
    mut document: T,
    runtime: &tokio::runtime::Handle,
) {
    let mut failing = false;
    let mut pause = Duration::from_millis(500);
    loop {
        let first = if failing {
            match receiver.recv_timeout(pause) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match receiver.recv() {
                Ok(message) => Some(message),
                Err(_) => return,
            }
        };
        let mut waiters = Vec::new();
        for (update, waiter) in first.into_iter().chain(receiver.try_iter()) {
            update(&mut document);
            waiters.extend(waiter);
        }
        let bytes = serde_json::to_vec(&document).expect("the coordinator's documents serialise");
        let outcome = runtime.block_on(store.put(key, bytes)).map_err(Arc::new);
        match &outcome {
            Ok(()) => {
                if failing {
                    tracing::info!("{key} written again");
                }
                failing = false;
                pause = Duration::from_millis(500);
            }
            Err(e) => {
                tracing::error!("writing {key}: {e}; trying again in {} s", pause.as_secs());
                failing = true;
                pause = (pause * 2).min(MOST_PAUSE);
            }
        }
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}
