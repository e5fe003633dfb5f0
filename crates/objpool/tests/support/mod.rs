//! A harness shared by the async creator and reset tests.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How many times the ticker yields before it releases the work under test.
pub(crate) const TICKS: usize = 100;

/// A task that proves the runtime keeps running: it counts `TICKS` yields, then wakes `release`.
pub(crate) struct Ticker {
    ticks: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

impl Ticker {
    /// What the work under test waits for; the ticker notifies it once done ticking.
    pub(crate) fn release(&self) -> Arc<Notify> {
        self.release.clone()
    }

    /// Spawns the ticker on the current runtime.
    pub(crate) fn start(&self) -> JoinHandle<()> {
        let (ticks, release) = (self.ticks.clone(), self.release.clone());
        tokio::spawn(async move {
            for _ in 0..TICKS {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            release.notify_one();
        })
    }
}

/// Runs `body` on a current-thread runtime in a thread of its own, with a [`Ticker`] it may
/// start. Work that blocked the runtime's only thread would keep the ticker from ever
/// releasing it: this returns `body`'s output and the ticks counted, or fails after a minute.
pub(crate) fn beside_a_ticker<R, F>(body: impl FnOnce(Ticker) -> F + Send + 'static) -> (R, usize)
where
    R: Send + 'static,
    F: Future<Output = R>,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = Ticker { ticks: ticks.clone(), release: Arc::new(Notify::new()) };
        let output = rt.block_on(body(ticker));
        done.send((output, ticks.load(Ordering::SeqCst))).unwrap();
    });
    finished.recv_timeout(Duration::from_secs(60)).expect("the work under test blocked the runtime")
}
