//! What a future allocates while it is polled, on whichever threads poll it.
//!
//! # Implementation details
//!
//! [`Tracked`] reads the polling thread's counters just before and just after each poll of the
//! inner future and adds the difference to its own total. A task that moves between the
//! worker threads of a runtime is measured on each of them, and nothing is kept per thread
//! between polls, so a `Tracked` future is `Send` when the inner one is. What the future's
//! code allocates runs inside its polls, so it is all counted; so is anything else the
//! polling thread does inside a poll (a runtime's own bookkeeping there, rarely anything).
//! Trackers nest: an outer tracker's polls contain the inner one's, so the outer counts the
//! inner's allocations too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::scope::{ScopeStats, counts};

/// Wraps `future` to count what it allocates while polled; awaiting it gives the output and
/// the counts.
///
/// ```no_run
/// # // no_run: doc tests do not install the tracking allocator.
/// # async fn handle() -> Vec<u8> { vec![0; 100] }
/// # async fn demo() {
/// let (response, allocated) = alloctrack::track(handle()).await;
/// println!("the request allocated {allocated}");
/// # }
/// ```
///
/// # Panics
/// When polled, as [`Scope::start`](crate::Scope::start): if [`Tracking`](crate::Tracking) is
/// not the global allocator, or the polling thread has no counter slot of its own.
pub fn track<F: Future>(future: F) -> Tracked<F> {
    Tracked { future, stats: ScopeStats::default() }
}

/// A future counting what it allocates; from [`track`].
#[pin_project]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F> {
    #[pin]
    future: F,
    stats: ScopeStats,
}

impl<F> Tracked<F> {
    /// What the future allocated in its polls so far.
    pub fn stats(&self) -> ScopeStats {
        self.stats
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = (F::Output, ScopeStats);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let before = counts();
        let polled = this.future.poll(cx);
        this.stats.add(counts().since(before).into());
        polled.map(|output| (output, *this.stats))
    }
}
