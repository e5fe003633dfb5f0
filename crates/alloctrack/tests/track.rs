//! Per-future accounting: what a future allocates in its polls, on whichever threads poll it.

mod support;

use std::hint::black_box;
use std::task::Poll;

use alloctrack::{Tracking, track};
use support::{YieldOnce, poll_once};

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

#[test]
fn a_future_polled_on_two_threads_reports_what_it_allocated_on_both() {
    let mut tracked = Box::pin(track(async {
        let first = black_box(vec![0u8; 100]);
        YieldOnce::new().await;
        let second = black_box(vec![0u8; 200]);
        first.len() + second.len()
    }));
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&tracked);
    let polled_here = std::thread::current().id();
    assert!(poll_once(tracked.as_mut()).is_pending());
    assert_eq!(tracked.stats().bytes_allocated, 100, "counted on demand, before it completes");
    // The second poll runs on another thread, as after a task migrates.
    let (done, elsewhere) = std::thread::spawn(move || {
        let done = poll_once(tracked.as_mut());
        (done, std::thread::current().id())
    })
    .join()
    .unwrap();
    assert_ne!(elsewhere, polled_here);
    let Poll::Ready((len, stats)) = done else { panic!("ready after its await") };
    assert_eq!(len, 300);
    assert_eq!((stats.allocations, stats.bytes_allocated), (2, 300), "{stats}");
    assert_eq!((stats.deallocations, stats.bytes_freed), (2, 300), "both freed before it returned: {stats}");
}

#[test]
fn trackers_nest() {
    let mut outer = Box::pin(track(async {
        let own = black_box(vec![0u8; 64]);
        let (kept, inner) = track(async {
            let v = black_box(vec![0u8; 1000]);
            YieldOnce::new().await;
            v
        })
        .await;
        (own, kept, inner)
    }));
    assert!(poll_once(outer.as_mut()).is_pending());
    let Poll::Ready(((own, kept, inner), outer_stats)) = poll_once(outer.as_mut()) else { panic!() };
    assert_eq!((inner.allocations, inner.bytes_allocated), (1, 1000));
    assert_eq!((outer_stats.allocations, outer_stats.bytes_allocated), (2, 1064), "the inner's too");
    drop((own, kept));
}

#[test]
fn a_future_that_allocates_nothing_reports_nothing() {
    let mut tracked = Box::pin(track(YieldOnce::new()));
    assert!(poll_once(tracked.as_mut()).is_pending());
    let Poll::Ready(((), stats)) = poll_once(tracked.as_mut()) else { panic!() };
    assert_eq!(stats, alloctrack::ScopeStats::default());
}
