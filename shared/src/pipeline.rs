//! Ordered parallel production: worker threads compute items `first, first+1, …` of a
//! deterministic sequence (item `i` depends only on `i`) into bounded per-worker channels, and
//! the consumer receives them in index order. The same sequence comes out whatever the thread
//! count; memory is bounded by the channel capacity.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};

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

impl<T> Iterator for OrderedProducer<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let slot = ((self.next - self.first) % self.receivers.len() as u64) as usize;
        let item = self.receivers[slot].recv().ok()?;
        self.next += 1;
        Some(item)
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

#[cfg(test)]
mod tests {
    use super::*;

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
