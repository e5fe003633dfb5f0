//! Pieces shared by the benchmark binaries (each includes this with `mod support;`).

#![allow(dead_code)]

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `body(thread_index)` on each of `threads` threads and returns the wall time from the moment
/// all threads are ready (thread start-up is not timed) until the last one finishes.
pub(crate) fn time_threads(threads: usize, body: impl Fn(usize) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, body) = (&barrier, &body);
            scope.spawn(move || {
                barrier.wait();
                body(t);
            });
        }
        barrier.wait();
        // Leaving the scope joins the threads.
        Instant::now()
    })
    .elapsed()
}

/// Runs `op` `iters` times on each of `threads` threads; see [`time_threads`].
pub(crate) fn run_threads<P: Sync>(
    shared: &P,
    threads: usize,
    iters: u64,
    op: impl Fn(&P) + Sync,
) -> Duration {
    time_threads(threads, |_| {
        for _ in 0..iters {
            op(shared);
        }
    })
}
