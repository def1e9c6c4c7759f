//! The store's coordinator lock: one coordinator writes to a store at a time. It is made of
//! markers that are only ever created (`service/lock/<epoch>/<beat>`), so any S3-compatible
//! store with conditional creation, or a local folder, can hold it.
//!
//! The holder creates a new beat every quarter of the lock's lifetime and, after each, lists
//! the lock: a newer epoch means another coordinator took over. It counts itself the holder
//! for three quarters of the lifetime after the last beat it started that found no newer
//! epoch, on its own clock; past that it has lost the lock and must stop writing. A waiting
//! coordinator takes over (creates the next epoch, which only one creator wins) once it has
//! seen the newest marker unchanged for a whole lifetime on its own clock, so no two clocks are
//! ever compared; it then waits one more lifetime, beating, before it writes anything, which
//! outlasts any standing the old holder may still count on. A holder that stops cleanly marks
//! its epoch released, and the next coordinator starts at once.

use std::future::Future;
use std::time::Duration;

use slsg::store::layout::{LockMarker, coordinator_lock, coordinator_lock_marker, lock_marker_of};
use slsg::store::{Key, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The lock's lifetime unless `--lock-seconds` says otherwise: a holder silent this long is
/// taken over. It also bounds the store outages a coordinator outlives (three quarters of it).
pub const DEFAULT_LOCK_SECONDS: u64 = 60;

/// Why a holder no longer holds the lock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("another coordinator took the store lock over (epoch {epoch})")]
    TakenOver { epoch: u64 },
    #[error("the store lock could not be renewed for {seconds} s")]
    Lapsed { seconds: u64 },
}

/// The lock as a listing shows it: its newest epoch and that epoch's newest marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    pub epoch: u64,
    pub marker: LockMarker,
}

/// The newest marker among `keys` (other keys are ignored).
pub fn latest(keys: &[Key]) -> Option<Latest> {
    keys.iter()
        .filter_map(lock_marker_of)
        .max()
        .map(|(epoch, marker)| Latest { epoch, marker })
}

/// What a coordinator that does not hold the lock does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create this epoch's first beat; `settle`: the previous holder went silent rather than
    /// releasing, so wait one lifetime (beating) before writing anything.
    Take { epoch: u64, settle: bool },
    /// The holder that wrote `latest` is alive (or not yet silent for a lifetime).
    Wait { latest: Latest },
}

/// A waiting coordinator's view: the marker it saw last and since when, on its own clock.
#[derive(Debug, Default)]
pub struct Waiting {
    seen: Option<(Latest, Instant)>,
}

impl Waiting {
    pub fn decide(&mut self, latest: Option<Latest>, now: Instant, lifetime: Duration) -> Decision {
        let Some(latest) = latest else {
            return Decision::Take {
                epoch: 1,
                settle: false,
            };
        };
        let next = latest.epoch.saturating_add(1);
        if latest.marker == LockMarker::Released {
            return Decision::Take {
                epoch: next,
                settle: false,
            };
        }
        match self.seen {
            Some((seen, since)) if seen == latest => {
                if now.duration_since(since) >= lifetime {
                    Decision::Take {
                        epoch: next,
                        settle: true,
                    }
                } else {
                    Decision::Wait { latest }
                }
            }
            _ => {
                self.seen = Some((latest, now));
                Decision::Wait { latest }
            }
        }
    }
}

/// A holder's standing: valid until an instant of its own clock, moved on by each beat that
/// was started before it and found no newer epoch after it.
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    pub epoch: u64,
    pub valid_until: Instant,
}

impl Standing {
    /// Holding `epoch` since a beat started at `started`.
    pub fn new(epoch: u64, started: Instant, lifetime: Duration) -> Self {
        Self {
            epoch,
            valid_until: started + validity(lifetime),
        }
    }

    /// A beat started at `started` was written, and the lock's newest epoch was then `newest`.
    pub fn beaten(
        &mut self,
        started: Instant,
        newest: u64,
        lifetime: Duration,
    ) -> Result<(), Lost> {
        if newest > self.epoch {
            return Err(Lost::TakenOver { epoch: newest });
        }
        self.valid_until = self.valid_until.max(started + validity(lifetime));
        Ok(())
    }

    /// Whether the holder may still write at `now`.
    pub fn check(&self, now: Instant, lifetime: Duration) -> Result<(), Lost> {
        if now >= self.valid_until {
            Err(Lost::Lapsed {
                seconds: validity(lifetime).as_secs(),
            })
        } else {
            Ok(())
        }
    }
}

/// How long a holder counts on its last beat: three quarters of the lifetime, so that it has
/// stopped well before a waiter, timing the same silence, takes over.
fn validity(lifetime: Duration) -> Duration {
    lifetime * 3 / 4
}

/// How often a holder beats and a waiter looks.
fn beat_every(lifetime: Duration) -> Duration {
    lifetime / 4
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes and keeps the coordinator lock of one store.
pub struct CoordinatorLock {
    store: Store,
    holder: String,
    lifetime: Duration,
}

/// The lock, held: beats go on in the background until [`Held::release`] or the process ends.
pub struct Held {
    store: Store,
    epoch: u64,
    beats: JoinHandle<()>,
    lost: watch::Receiver<Option<Lost>>,
}

impl CoordinatorLock {
    /// `holder` names this coordinator to the others (host and process).
    pub fn new(store: Store, holder: String, lifetime: Duration) -> Self {
        Self {
            store,
            holder,
            lifetime,
        }
    }

    /// Waits until this coordinator holds the lock; `waiting` is told the holder's name each
    /// time it changes. A store that fails meanwhile is an error: nothing has been opened yet,
    /// and a restart asks again.
    pub async fn acquire(&self, mut waiting: impl FnMut(&str)) -> Result<Held, FenceError> {
        let mut view = Waiting::default();
        let mut told = String::new();
        let mut tell = |message: String| {
            if message != told {
                waiting(&message);
                told = message;
            }
        };
        loop {
            let keys = self.store.list(&coordinator_lock()).await?;
            match view.decide(latest(&keys), Instant::now(), self.lifetime) {
                Decision::Take { epoch, settle } => {
                    let started = Instant::now();
                    let first = coordinator_lock_marker(epoch, LockMarker::Beat(0));
                    let holder = self.holder.clone().into_bytes();
                    // Another coordinator created this epoch first: look again.
                    if !self.store.put_new(&first, holder).await? {
                        continue;
                    }
                    let held = self.hold(epoch, started);
                    if settle {
                        tell(format!(
                            "took the lock over from a silent holder; waiting {} s before writing",
                            self.lifetime.as_secs()
                        ));
                        tokio::time::sleep(self.lifetime).await;
                    }
                    return Ok(held);
                }
                Decision::Wait { latest } => {
                    let marker = coordinator_lock_marker(latest.epoch, latest.marker);
                    let holder = match self.store.get(&marker).await? {
                        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        None => "another coordinator".into(),
                    };
                    tell(format!("the store lock is held by {holder}"));
                    tokio::time::sleep(beat_every(self.lifetime)).await;
                }
            }
        }
    }

    fn hold(&self, epoch: u64, started: Instant) -> Held {
        let standing = Standing::new(epoch, started, self.lifetime);
        let (lost_sender, lost) = watch::channel(None);
        let (store, holder, lifetime) = (self.store.clone(), self.holder.clone(), self.lifetime);
        let beats = tokio::spawn(async move {
            let (standing_sender, standing_receiver) = watch::channel(standing);
            let result = tokio::select! {
                lost = beat(&store, &holder, epoch, lifetime, standing_sender) => lost,
                lost = watch_standing(standing_receiver, lifetime) => lost,
            };
            let _ = lost_sender.send(Some(result));
        });
        Held {
            store: self.store.clone(),
            epoch,
            beats,
            lost,
        }
    }
}

/// Beats until the lock is found taken over.
async fn beat(
    store: &Store,
    holder: &str,
    epoch: u64,
    lifetime: Duration,
    standing: watch::Sender<Standing>,
) -> Lost {
    let mut beat = 0u64;
    loop {
        tokio::time::sleep(beat_every(lifetime)).await;
        let started = Instant::now();
        let key = coordinator_lock_marker(epoch, LockMarker::Beat(beat + 1));
        match store.put_new(&key, holder.as_bytes().to_vec()).await {
            Ok(true) => beat += 1,
            // Only a holder of this epoch writes its beats: someone else has it.
            Ok(false) => return Lost::TakenOver { epoch },
            Err(e) => {
                tracing::warn!("renewing the store lock failed: {e}");
                continue;
            }
        }
        let keys = match store.list(&coordinator_lock()).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!("reading the store lock failed: {e}");
                continue;
            }
        };
        let newest = latest(&keys).map_or(epoch, |l| l.epoch);
        let mut next = *standing.borrow();
        if let Err(lost) = next.beaten(started, newest, lifetime) {
            return lost;
        }
        let _ = standing.send(next);
        // Older markers are kept no longer than they can matter: this epoch's last two beats.
        for key in keys {
            if lock_marker_of(&key).is_some_and(|(e, marker)| {
                e < epoch || matches!(marker, LockMarker::Beat(b) if e == epoch && b + 1 < beat)
            }) {
                let _ = store.delete(&key).await;
            }
        }
    }
}

/// Ends when the standing lapses.
async fn watch_standing(mut standing: watch::Receiver<Standing>, lifetime: Duration) -> Lost {
    loop {
        let current = *standing.borrow_and_update();
        if let Err(lost) = current.check(Instant::now(), lifetime) {
            return lost;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(current.valid_until) => {}
            _ = standing.changed() => {}
        }
    }
}

impl Held {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Completes when the lock is lost: the holder must stop writing at once. Never completes
    /// once the lock is released.
    pub fn lost(&self) -> impl Future<Output = Lost> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            loop {
                if let Some(lost) = lost.borrow_and_update().clone() {
                    return lost;
                }
                if lost.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Stops beating and marks the epoch released, so that the next coordinator starts at once.
    /// Call it only once nothing writes any more.
    pub async fn release(self) -> Result<(), StoreError> {
        self.beats.abort();
        let _ = self.beats.await;
        if self.lost.borrow().is_some() {
            return Ok(());
        }
        self.store
            .put_new(
                &coordinator_lock_marker(self.epoch, LockMarker::Released),
                Vec::new(),
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(60);

    fn at(epoch: u64, beat: u64) -> Option<Latest> {
        Some(Latest {
            epoch,
            marker: LockMarker::Beat(beat),
        })
    }

    #[test]
    fn the_newest_marker_is_the_highest_epoch_then_its_highest_beat() {
        let keys: Vec<Key> = [
            (1, LockMarker::Released),
            (2, LockMarker::Beat(9)),
            (2, LockMarker::Beat(10)),
        ]
        .into_iter()
        .map(|(e, m)| coordinator_lock_marker(e, m))
        .chain([slsg::store::layout::service_runs()])
        .collect();
        assert_eq!(latest(&keys), at(2, 10));
        assert_eq!(latest(&[]), None);
        let released = [
            coordinator_lock_marker(2, LockMarker::Beat(10)),
            coordinator_lock_marker(2, LockMarker::Released),
        ];
        assert_eq!(
            latest(&released).map(|l| l.marker),
            Some(LockMarker::Released)
        );
    }

    #[test]
    fn an_empty_or_released_lock_is_taken_at_once() {
        let now = Instant::now();
        assert_eq!(
            Waiting::default().decide(None, now, LIFETIME),
            Decision::Take {
                epoch: 1,
                settle: false
            }
        );
        let released = Some(Latest {
            epoch: 4,
            marker: LockMarker::Released,
        });
        assert_eq!(
            Waiting::default().decide(released, now, LIFETIME),
            Decision::Take {
                epoch: 5,
                settle: false
            }
        );
    }

    #[test]
    fn a_holder_is_taken_over_only_after_a_whole_lifetime_of_silence_on_the_waiters_clock() {
        let start = Instant::now();
        let mut view = Waiting::default();
        let wait = |epoch, beat| Decision::Wait {
            latest: at(epoch, beat).unwrap(),
        };
        assert_eq!(view.decide(at(3, 7), start, LIFETIME), wait(3, 7));
        assert_eq!(
            view.decide(
                at(3, 7),
                start + LIFETIME - Duration::from_millis(1),
                LIFETIME
            ),
            wait(3, 7)
        );
        // A new beat restarts the count from when it was seen.
        let later = start + LIFETIME / 2;
        assert_eq!(view.decide(at(3, 8), later, LIFETIME), wait(3, 8));
        assert_eq!(
            view.decide(at(3, 8), start + LIFETIME, LIFETIME),
            wait(3, 8)
        );
        assert_eq!(
            view.decide(at(3, 8), later + LIFETIME, LIFETIME),
            Decision::Take {
                epoch: 4,
                settle: true
            }
        );
        // Another waiter's new epoch is a new holder to time afresh.
        assert_eq!(
            view.decide(at(4, 0), later + LIFETIME, LIFETIME),
            wait(4, 0)
        );
    }

    #[test]
    fn a_holder_stands_three_quarters_of_a_lifetime_after_its_last_good_beat() {
        let start = Instant::now();
        let mut standing = Standing::new(2, start, LIFETIME);
        assert_eq!(standing.check(start + LIFETIME / 2, LIFETIME), Ok(()));
        assert!(standing.check(start + LIFETIME * 3 / 4, LIFETIME).is_err());
        let beat = start + LIFETIME / 4;
        assert_eq!(standing.beaten(beat, 2, LIFETIME), Ok(()));
        assert_eq!(standing.check(start + LIFETIME * 3 / 4, LIFETIME), Ok(()));
        assert_eq!(
            standing.check(beat + LIFETIME * 3 / 4, LIFETIME),
            Err(Lost::Lapsed { seconds: 45 })
        );
        // A beat that finishes late never moves the standing back.
        assert_eq!(standing.beaten(start, 2, LIFETIME), Ok(()));
        assert_eq!(standing.valid_until, beat + LIFETIME * 3 / 4);
        assert_eq!(
            standing.beaten(beat, 3, LIFETIME),
            Err(Lost::TakenOver { epoch: 3 })
        );
    }

    /// The waiter's takeover and the old holder's standing never overlap: the holder's last
    /// counted beat started before the waiter first saw it, so the holder stops a quarter of
    /// a lifetime before the waiter may take over, even before the settling wait.
    #[test]
    fn a_takeover_never_overlaps_the_old_holders_standing() {
        let start = Instant::now();
        let holder = Standing::new(1, start, LIFETIME);
        let mut view = Waiting::default();
        let seen = start + Duration::from_millis(1);
        view.decide(at(1, 0), seen, LIFETIME);
        let take = seen + LIFETIME;
        assert_eq!(
            view.decide(at(1, 0), take, LIFETIME),
            Decision::Take {
                epoch: 2,
                settle: true
            }
        );
        assert!(holder.check(take - LIFETIME / 4, LIFETIME).is_err());
    }
}
