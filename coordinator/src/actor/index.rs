//! The service's list of runs (`service/runs.json`, oldest first): which runs a restarted
//! service recovers and which it lists as finished. Kept in memory, written behind.

use serde::{Deserialize, Serialize};
use slsg::store::Store;
use slsg::store::layout::service_runs;

use super::runs::FINISHED_RUNS_SHOWN;
use crate::error::CoordinatorError;
use crate::writer::DocumentWriter;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunIndex {
    pub runs: Vec<IndexEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub run: String,
    pub finished: bool,
}

impl RunIndex {
    /// The list as stored; empty for a store no service has used.
    pub async fn read(store: &Store) -> Result<RunIndex, CoordinatorError> {
        Ok(store.get_json(&service_runs()).await?.unwrap_or_default())
    }

    pub fn knows(&self, run: &str) -> bool {
        self.runs.iter().any(|e| e.run == run)
    }

    /// `run` as the newest, unfinished entry.
    pub fn opened(&mut self, run: &str) {
        self.runs.retain(|e| e.run != run);
        self.runs.push(IndexEntry {
            run: run.to_string(),
            finished: false,
        });
        self.trim();
    }

    pub fn finished(&mut self, run: &str) {
        for entry in &mut self.runs {
            if entry.run == run {
                entry.finished = true;
            }
        }
        self.trim();
    }

    /// Beyond the runs shown, the oldest finished runs leave the list (their results stay in
    /// the store); unfinished runs always stay.
    fn trim(&mut self) {
        let finished = self.runs.iter().filter(|e| e.finished).count();
        let mut surplus = finished.saturating_sub(FINISHED_RUNS_SHOWN);
        self.runs.retain(|e| {
            let gone = e.finished && surplus > 0;
            surplus -= usize::from(gone);
            !gone
        });
    }
}

/// The list and the writer that keeps the store's copy of it.
pub struct ServiceIndex {
    index: RunIndex,
    writer: DocumentWriter<RunIndex>,
}

impl ServiceIndex {
    pub fn start(store: &Store, index: RunIndex) -> Result<ServiceIndex, CoordinatorError> {
        let writer = DocumentWriter::start(
            "index-writer",
            store.clone(),
            service_runs(),
            index.clone(),
            tokio::runtime::Handle::current(),
        )
        .map_err(CoordinatorError::Thread)?;
        Ok(ServiceIndex { index, writer })
    }

    pub fn knows(&self, run: &str) -> bool {
        self.index.knows(run)
    }

    pub fn opened(&mut self, run: &str) {
        self.index.opened(run);
        self.write();
    }

    pub fn finished(&mut self, run: &str) {
        self.index.finished(run);
        self.write();
    }

    fn write(&self) {
        let snapshot = self.index.clone();
        self.writer.update(move |index| *index = snapshot, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(index: &RunIndex) -> Vec<(&str, bool)> {
        index
            .runs
            .iter()
            .map(|e| (e.run.as_str(), e.finished))
            .collect()
    }

    #[test]
    fn a_run_opened_again_moves_to_the_end_unfinished() {
        let mut index = RunIndex::default();
        index.opened("a");
        index.opened("b");
        index.finished("a");
        assert_eq!(names(&index), [("a", true), ("b", false)]);
        index.opened("a");
        assert_eq!(names(&index), [("b", false), ("a", false)]);
        assert!(index.knows("b") && !index.knows("c"));
    }

    #[test]
    fn only_the_oldest_finished_runs_leave_the_list() {
        let mut index = RunIndex::default();
        index.opened("running");
        for i in 0..FINISHED_RUNS_SHOWN + 5 {
            let name = format!("r{i}");
            index.opened(&name);
            index.finished(&name);
        }
        assert_eq!(index.runs.len(), FINISHED_RUNS_SHOWN + 1);
        assert_eq!(names(&index)[0], ("running", false), "unfinished runs stay");
        assert_eq!(
            index.runs[1].run, "r5",
            "the five oldest finished runs left"
        );
        assert_eq!(
            index.runs.last().unwrap().run,
            format!("r{}", FINISHED_RUNS_SHOWN + 4)
        );
    }

    #[test]
    fn finishing_an_unknown_run_changes_nothing() {
        let mut index = RunIndex::default();
        index.opened("a");
        index.finished("b");
        assert_eq!(names(&index), [("a", false)]);
    }
}
