//! A stage's training curve in the store (`curve.jsonl`, one event per line), continued across
//! attempts: every event is forwarded to the caller's progress and written at once, so the
//! curve in the store is never behind the training (`log_every` sets how often steps report).

use crate::store::{BlockingStore, Key, StoreError};
use crate::train::{Progress, Stage, TrainEvent, ValidationReport};

pub struct Curve<'a> {
    store: BlockingStore,
    key: Key,
    lines: Vec<String>,
    written: usize,
    inner: &'a mut dyn Progress,
}

impl<'a> Curve<'a> {
    /// Continues the curve an earlier attempt left at `key`, if any.
    pub fn open(
        store: BlockingStore,
        key: Key,
        inner: &'a mut dyn Progress,
    ) -> Result<Curve<'a>, StoreError> {
        let lines: Vec<String> = store
            .get(&key)?
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Curve {
            store,
            key,
            written: lines.len(),
            lines,
            inner,
        })
    }

    /// Writes the curve if it has events not yet stored.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.written == self.lines.len() {
            return Ok(());
        }
        let mut text = self.lines.join("\n");
        text.push('\n');
        self.store.put(&self.key, text.into_bytes())?;
        self.written = self.lines.len();
        Ok(())
    }
}

impl Progress for Curve<'_> {
    fn on_event(&mut self, event: &TrainEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            self.lines.push(line);
        }
        self.inner.on_event(event);
        if let Err(e) = self.flush() {
            tracing::warn!("could not write the curve: {e}");
        }
    }

    fn on_step(&mut self, stage: Stage, step: u64, total_steps: u64) {
        self.inner.on_step(stage, step, total_steps);
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }

    fn judge(&mut self, validation: &ValidationReport) -> Option<String> {
        self.inner.judge(validation)
    }
}
