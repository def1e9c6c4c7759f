//! Work spread over CPU threads with results that do not depend on the thread count: an ordered
//! producer of a deterministic sequence (item `i` depends only on `i`), and a map over contiguous
//! chunks of a slice. A panic on a worker thread reaches the caller with its message.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};

/// Worker threads compute items `first, first+1, …` into bounded per-worker channels and the
/// consumer receives them in index order; memory is bounded by the channel capacity.
pub struct OrderedProducer<T> {
    receivers: Vec<Receiver<T>>,
    next: u64,
    first: u64,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> OrderedProducer<T> {
    /// Starts `threads` workers. Each calls `worker()` once for its own state, then the
    /// returned function for every index it owns (worker `w` owns `first + w + k·threads`).
    /// `capacity` items are buffered ahead of the consumer in total.
    pub fn start<F, G>(name: &str, threads: usize, capacity: usize, first: u64, worker: F) -> Self
    where
        F: Fn() -> G + Send + Sync + 'static,
        G: FnMut(u64) -> T + 'static,
    {
        let threads = threads.max(1);
        let per_worker = capacity.div_ceil(threads).max(1);
        let worker = std::sync::Arc::new(worker);
        let mut receivers = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for w in 0..threads {
            let (sender, receiver) = bounded(per_worker);
            receivers.push(receiver);
            let factory = worker.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{w}"))
                .spawn(move || {
                    let mut produce = factory();
                    let mut index = first + w as u64;
                    while sender.send(produce(index)).is_ok() {
                        index += threads as u64;
                    }
                })
                .expect("spawning a producer thread");
            workers.push(handle);
        }
        OrderedProducer {
            receivers,
            next: first,
            first,
            workers,
        }
    }
}

impl<T> OrderedProducer<T> {
    /// Items produced and waiting for the consumer: near the capacity the consumer is the
    /// bottleneck, near zero the producers are.
    pub fn ready(&self) -> usize {
        self.receivers.iter().map(Receiver::len).sum()
    }
}

impl<T> Iterator for OrderedProducer<T> {
    type Item = T;

    /// Never ends by itself: a worker that stopped early panicked, and its panic is resumed
    /// here, so a caller never mistakes a lost worker for the end of the sequence.
    fn next(&mut self) -> Option<T> {
        let slot = ((self.next - self.first) % self.receivers.len() as u64) as usize;
        match self.receivers[slot].recv() {
            Ok(item) => {
                self.next += 1;
                Some(item)
            }
            Err(_) => {
                let worker = self.workers.remove(slot);
                match worker.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => {
                        unreachable!("producer workers only stop when their receiver is gone")
                    }
                }
            }
        }
    }
}

impl<T> Drop for OrderedProducer<T> {
    fn drop(&mut self) {
        // Dropping the receivers makes every blocked `send` fail, which ends the workers.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Splits `items` into at most `threads` contiguous chunks and applies `work` to each on its own
/// thread; the results come back in chunk order.
pub fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Applies `work` to every item on up to `threads` threads; the results keep the input order
/// and the first error in input order is returned.
pub fn try_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let parts = map_chunks(items, threads, |part| {
        part.iter().map(&work).collect::<Result<Vec<R>, E>>()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The text of a panic's payload (what `panic!` was given), for error messages.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..23).collect();
        for threads in [1, 2, 7, 50] {
            assert_eq!(
                try_map(&items, threads, |&i| Ok::<_, ()>(i * 2)).unwrap(),
                (0..23).map(|i| i * 2).collect::<Vec<_>>()
            );
            assert_eq!(
                try_map(&items, threads, |&i| if i % 5 == 4 {
                    Err(i)
                } else {
                    Ok(i)
                }),
                Err(4)
            );
        }
        assert!(
            try_map(&[] as &[u32], 4, |&i| Ok::<_, ()>(i))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_panicking_producer_is_not_the_end_of_the_sequence() {
        let result = std::panic::catch_unwind(|| {
            OrderedProducer::start("test", 2, 2, 0, || {
                |i: u64| {
                    assert!(i != 5, "item five cannot be made");
                    i
                }
            })
            .take(10)
            .count()
        });
        assert_eq!(
            panic_message(result.unwrap_err().as_ref()),
            "item five cannot be made"
        );
    }

    #[test]
    fn same_sequence_on_any_thread_count() {
        for threads in [1, 2, 5] {
            let items: Vec<u64> = OrderedProducer::start("test", threads, 3, 10, || |i: u64| i * i)
                .take(20)
                .collect();
            assert_eq!(
                items,
                (10..30).map(|i| i * i).collect::<Vec<_>>(),
                "{threads} threads"
            );
        }
    }
}
