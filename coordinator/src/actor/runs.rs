//! The coordinator's runs: those open (oldest first, each with its job table and journal), those
//! being opened, and the finished ones it still lists. Decides admissions, which run a lease comes
//! from, when a run publishes and what a publication changes; time is passed in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use slsg::job::{Plan, RunOverview};

use crate::error::CoordinatorError;
use crate::metrics::RunningJob;
use crate::run::Run;
use crate::summary::RunSummary;
use crate::table::Granted;

/// Finished runs a service keeps in its overview.
pub const FINISHED_RUNS_SHOWN: usize = 100;
/// How long a failed publication waits before it is tried again.
pub const PUBLISH_RETRY_MS: u64 = 5_000;

/// What a submission found or started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub run: String,
    pub jobs: usize,
    /// Jobs found finished in the store (reused, not run again).
    pub finished_before: usize,
    /// The run was open with the same plan already.
    pub already_open: bool,
}

impl Submitted {
    pub fn of(run: &Run, already_open: bool) -> Self {
        Submitted {
            run: run.plan.run.clone(),
            jobs: run.table.len(),
            finished_before: run.table.state_counts().get("done").copied().unwrap_or(0),
            already_open,
        }
    }
}

/// What to do with a submitted plan.
#[derive(Debug)]
pub enum Admission {
    /// The run is open with this very plan: answer as before.
    AlreadyOpen(Submitted),
    /// Open it (beside the actor); its name is held until [`RunBook::opened`].
    Open,
    Refused(CoordinatorError),
}

/// A lease granted from one of the runs.
pub struct Leased {
    pub run: String,
    pub granted: Granted,
}

pub struct RunBook {
    open: Vec<Run>,
    /// Runs being opened beside the actor, with the categories their plans train.
    opening: BTreeMap<String, BTreeSet<String>>,
    /// Newest last, at most [`FINISHED_RUNS_SHOWN`] (their results are in the store).
    finished: VecDeque<RunOverview>,
    /// Submissions are refused while this many runs are open or being opened.
    limit: usize,
}

impl RunBook {
    pub fn new(limit: usize) -> Self {
        RunBook {
            open: Vec::new(),
            opening: BTreeMap::new(),
            finished: VecDeque::new(),
            limit,
        }
    }

    /// A run submitted while this coordinator runs: an open run of the same name answers for
    /// it if its plan is the same; otherwise it is opened while fewer than the limit are open.
    pub fn admit(&mut self, plan: &Plan) -> Admission {
        if let Some(open) = self.open.iter().find(|r| r.plan.run == plan.run) {
            return if open.plan == *plan {
                Admission::AlreadyOpen(Submitted::of(open, true))
            } else {
                Admission::Refused(CoordinatorError::RunInProgress {
                    run: plan.run.clone(),
                })
            };
        }
        let unfinished = self.open.iter().filter(|r| r.summary.is_none()).count();
        if unfinished + self.opening.len() >= self.limit {
            return Admission::Refused(CoordinatorError::TooManyRuns { limit: self.limit });
        }
        if self.opening.contains_key(&plan.run) {
            return Admission::Refused(CoordinatorError::RunInProgress {
                run: plan.run.clone(),
            });
        }
        let categories = plan.jobs.iter().map(|job| job.category.clone()).collect();
        self.opening.insert(plan.run.clone(), categories);
        Admission::Open
    }

    /// An admitted run finished opening, or failed to.
    pub fn opened(&mut self, name: &str) {
        self.opening.remove(name);
    }

    /// Takes an opened run in, after every run opened before it.
    pub fn adopt(&mut self, run: Run) {
        let name = run.plan.run.clone();
        self.finished.retain(|r| r.run != name);
        self.open.push(run);
    }

    /// A run the service's list says finished, for the overview.
    pub fn listed_finished(&mut self, name: &str) {
        self.push_finished(RunOverview {
            run: name.to_string(),
            retraining: false,
            finished: true,
            jobs: 0,
            states: Default::default(),
            kinds: Default::default(),
        });
    }

    fn push_finished(&mut self, overview: RunOverview) {
        self.finished.push_back(overview);
        while self.finished.len() > FINISHED_RUNS_SHOWN {
            self.finished.pop_front();
        }
    }

    pub fn named(&self, name: &str) -> Option<&Run> {
        self.open.iter().find(|r| r.plan.run == name)
    }

    pub fn named_mut(&mut self, name: &str) -> Option<&mut Run> {
        self.open.iter_mut().find(|r| r.plan.run == name)
    }

    pub fn of_lease(&mut self, lease_id: &str) -> Option<&mut Run> {
        self.open
            .iter_mut()
            .find(|run| run.table.has_lease(lease_id))
    }

    /// A ready job of the oldest unfinished run that has one, leased to `worker`. The lease's
    /// id is drawn by `new_id` first, so a failed draw grants nothing.
    pub fn lease<E>(
        &mut self,
        worker: &str,
        now_ms: u64,
        new_id: impl FnOnce() -> Result<String, E>,
    ) -> Result<Option<Leased>, E> {
        let id = new_id()?;
        for run in self.open.iter_mut().filter(|r| r.summary.is_none()) {
            if let Some(granted) = run.table.lease(worker, now_ms, || id.clone()) {
                return Ok(Some(Leased {
                    run: run.plan.run.clone(),
                    granted,
                }));
            }
        }
        Ok(None)
    }

    /// Whether every run has finished and published, and none is being opened.
    pub fn all_finished(&self) -> bool {
        self.opening.is_empty() && self.open.iter().all(|r| r.summary.is_some())
    }

    /// Returns the leases of every run past their time (run, job) and hands each journal its
    /// changes.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(String, String)> {
        let mut expired = Vec::new();
        for run in &mut self.open {
            for job in run.table.expire(now_ms) {
                expired.push((run.plan.run.clone(), job.to_string()));
            }
            run.journal_changes();
        }
        expired
    }

    /// Whether a run has ended and waits to publish.
    pub fn has_unpublished(&self) -> bool {
        self.open
            .iter()
            .any(|r| r.table.is_finished() && r.summary.is_none() && !r.publishing)
    }

    /// The runs whose every job has ended and that are not published or publishing, and not
    /// waiting to try again after a failed publication: each is marked as publishing.
    pub fn start_publishing(&mut self, now_ms: u64) -> Vec<&mut Run> {
        let mut ready = Vec::new();
        for run in &mut self.open {
            if run.table.is_finished()
                && run.summary.is_none()
                && !run.publishing
                && now_ms >= run.publish_after_ms
            {
                run.publishing = true;
                ready.push(run);
            }
        }
        ready
    }

    /// A publication ended. A failed one is tried again after [`PUBLISH_RETRY_MS`]; a
    /// published run keeps its summary and, with `retire`, leaves the open runs for the
    /// finished list. Returns the summary when the run was published.
    pub fn published(
        &mut self,
        name: &str,
        outcome: Result<RunSummary, CoordinatorError>,
        now_ms: u64,
        retire: bool,
    ) -> Option<RunSummary> {
        let run = self.named_mut(name)?;
        run.publishing = false;
        let summary = match outcome {
            Err(e) => {
                tracing::error!(run = %name, "publishing the results failed: {e}; trying again");
                run.publish_after_ms = now_ms + PUBLISH_RETRY_MS;
                return None;
            }
            Ok(summary) => summary,
        };
        run.summary = Some(summary.clone());
        if retire {
            let (done, open): (Vec<Run>, Vec<Run>) = std::mem::take(&mut self.open)
                .into_iter()
                .partition(|r| r.summary.is_some());
            self.open = open;
            for run in done {
                self.push_finished(run.overview());
            }
        }
        Some(summary)
    }

    /// The categories the unfinished runs, and the runs being opened, still train.
    pub fn training(&self) -> BTreeSet<String> {
        self.open
            .iter()
            .filter(|run| run.summary.is_none())
            .flat_map(|run| run.table.unfinished_categories())
            .chain(self.opening.values().flatten().cloned())
            .collect()
    }

    /// Finished runs first (oldest first), then the open ones.
    pub fn overviews(&self) -> Vec<RunOverview> {
        self.finished
            .iter()
            .cloned()
            .chain(self.open.iter().map(Run::overview))
            .collect()
    }

    /// Jobs of the open runs a worker asking now would be given.
    pub fn leasable(&self) -> usize {
        self.open.iter().map(|run| run.table.leasable()).sum()
    }

    pub fn running_jobs(&self) -> Vec<RunningJob> {
        self.open
            .iter()
            .flat_map(|run| {
                run.table
                    .running_jobs()
                    .into_iter()
                    .map(|status| RunningJob {
                        run: run.plan.run.clone(),
                        status,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use slsg::store::Store;

    use super::*;
    use crate::testing::{next_id, plan_in, result};

    /// A local store in a temporary folder, kept as long as the tests use it.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        url: String,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let url = dir.path().to_str().unwrap().to_string();
            let store = Store::open(&url).unwrap();
            Fixture {
                _dir: dir,
                store,
                url,
            }
        }

        fn plan(&self, run: &str) -> Plan {
            plan_in(run, &self.url)
        }

        async fn open(&self, book: &mut RunBook, run: &str) {
            let plan = self.plan(run);
            assert!(matches!(book.admit(&plan), Admission::Open));
            book.opened(run);
            book.adopt(Run::open(&self.store, plan, false, 0).await.unwrap());
        }
    }

    fn ids() -> Result<String, Infallible> {
        Ok(next_id())
    }

    fn finish_every_job(book: &mut RunBook, run: &str) {
        let table = &mut book.named_mut(run).unwrap().table;
        for _ in 0..2 {
            for id in table.queued() {
                table.mark_done(&id, result());
            }
        }
        assert!(table.is_finished());
    }

    fn summary(book: &RunBook, run: &str) -> RunSummary {
        RunSummary {
            status: book.named(run).unwrap().table.status(),
            models: Default::default(),
            promotions: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_run_answers_for_its_own_plan_and_refuses_another_under_its_name() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        let Admission::AlreadyOpen(answer) = book.admit(&fixture.plan("a")) else {
            panic!("the same plan is answered as open");
        };
        assert_eq!((answer.run.as_str(), answer.jobs), ("a", 3));
        assert!(answer.already_open);
        let mut other = fixture.plan("a");
        other.jobs.pop();
        assert!(matches!(
            book.admit(&other),
            Admission::Refused(CoordinatorError::RunInProgress { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_being_opened_count_toward_the_limit_and_are_not_opened_twice() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(2);
        assert!(matches!(book.admit(&fixture.plan("a")), Admission::Open));
        assert!(matches!(
            book.admit(&fixture.plan("a")),
            Admission::Refused(CoordinatorError::RunInProgress { .. })
        ));
        assert_eq!(book.training(), BTreeSet::from(["cat".to_string()]));
        assert!(matches!(book.admit(&fixture.plan("b")), Admission::Open));
        assert!(matches!(
            book.admit(&fixture.plan("c")),
            Admission::Refused(CoordinatorError::TooManyRuns { limit: 2 })
        ));
        assert!(!book.all_finished());
        // `a` failed to open: its place is free again.
        book.opened("a");
        assert!(matches!(book.admit(&fixture.plan("c")), Admission::Open));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finished_runs_do_not_count_toward_the_limit() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(1);
        fixture.open(&mut book, "a").await;
        assert!(matches!(
            book.admit(&fixture.plan("b")),
            Admission::Refused(CoordinatorError::TooManyRuns { .. })
        ));
        finish_every_job(&mut book, "a");
        assert_eq!(book.start_publishing(0).len(), 1);
        let published = summary(&book, "a");
        assert!(book.published("a", Ok(published), 0, false).is_some());
        assert!(matches!(book.admit(&fixture.plan("b")), Admission::Open));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_come_from_the_oldest_run_with_a_ready_job() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        fixture.open(&mut book, "b").await;
        let first = book.lease("w1", 0, ids).unwrap().unwrap();
        assert_eq!(
            (first.run.as_str(), first.granted.spec.id.as_str()),
            ("a", "p")
        );
        // `a`'s SegNet jobs wait for its pre-training: `b` has the next ready job.
        let second = book.lease("w2", 0, ids).unwrap().unwrap();
        assert_eq!(
            (second.run.as_str(), second.granted.spec.id.as_str()),
            ("b", "p")
        );
        assert!(book.lease("w3", 0, ids).unwrap().is_none());
        assert!(book.of_lease(&second.granted.lease_id).is_some());
        let running: Vec<String> = book.running_jobs().into_iter().map(|j| j.run).collect();
        assert_eq!(running, ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_id_draw_ends_the_lease_without_granting() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        let drawn = book.lease("w", 0, || Err("no randomness"));
        assert_eq!(drawn.err(), Some("no randomness"));
        assert!(
            book.lease("w", 0, ids).unwrap().is_some(),
            "the job stayed ready"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_past_their_time_expire_and_their_jobs_are_leased_again() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        let granted = book.lease("w", 0, ids).unwrap().unwrap().granted;
        assert!(book.expire(granted.deadline_ms - 1).is_empty());
        let expired = book.expire(granted.deadline_ms + 1);
        assert_eq!(expired, [("a".to_string(), "p".to_string())]);
        let again = book
            .lease("w2", granted.deadline_ms + 1, ids)
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.granted.spec.id.as_str(), again.granted.attempt),
            ("p", 2)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_publishes_once_and_a_failed_publication_waits_before_trying_again() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        assert!(book.start_publishing(0).is_empty(), "jobs are still to run");
        finish_every_job(&mut book, "a");
        assert!(book.has_unpublished());
        assert_eq!(book.start_publishing(1_000).len(), 1);
        assert!(
            book.start_publishing(1_000).is_empty(),
            "publishing already"
        );
        assert!(!book.has_unpublished());
        let failed = CoordinatorError::JournalStopped;
        assert!(book.published("a", Err(failed), 1_000, true).is_none());
        let retry = 1_000 + PUBLISH_RETRY_MS;
        assert!(book.start_publishing(retry - 1).is_empty());
        assert_eq!(book.start_publishing(retry).len(), 1);
        let published = summary(&book, "a");
        assert!(book.published("a", Ok(published), retry, true).is_some());
        assert!(book.named("a").is_none(), "retired from the open runs");
        assert!(book.all_finished());
        let overviews = book.overviews();
        assert_eq!(overviews.len(), 1);
        assert!(overviews[0].finished && overviews[0].run == "a");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_shot_coordinator_keeps_its_published_runs_open() {
        let fixture = Fixture::new();
        let mut book = RunBook::new(4);
        fixture.open(&mut book, "a").await;
        finish_every_job(&mut book, "a");
        book.start_publishing(0);
        let published = summary(&book, "a");
        book.published("a", Ok(published), 0, false);
        let kept = book.named("a").expect("kept for its status");
        assert!(kept.summary.is_some());
        assert!(book.all_finished());
        assert!(book.lease("w", 0, ids).unwrap().is_none());
    }

    #[test]
    fn the_finished_runs_listed_are_bounded() {
        let mut book = RunBook::new(4);
        for i in 0..FINISHED_RUNS_SHOWN + 3 {
            book.listed_finished(&format!("r{i}"));
        }
        let overviews = book.overviews();
        assert_eq!(overviews.len(), FINISHED_RUNS_SHOWN);
        assert_eq!(overviews[0].run, "r3");
    }
}
