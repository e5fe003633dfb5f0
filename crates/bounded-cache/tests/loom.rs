//! Loom models of the loader hand-off (`load::Flight`): whatever the interleaving, every waiter
//! returns, blocking or async, with the leader's outcome.
//!
//! Run with `scripts/loom.sh` (RUSTFLAGS="--cfg bounded_cache_loom", release, LOOM_MAX_PREEMPTIONS=2).
#![cfg(bounded_cache_loom)]

use std::future::poll_fn;

use bounded_cache::load::{Flight, Outcome};
use loom::sync::Arc;
use loom::thread;

fn value(o: Outcome<u32>) -> Option<u32> {
    match o {
        Outcome::Value(v) => Some(v),
        Outcome::Abandoned => None,
        Outcome::Failed(_) => panic!("no loader failed"),
    }
}

#[test]
fn blocking_waiters_get_the_value() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&flight);
                thread::spawn(move || value(f.wait()))
            })
            .collect();
        flight.finish(Outcome::Value(7));
        for w in waiters {
            assert_eq!(w.join().unwrap(), Some(7));
        }
    });
}

#[test]
fn abandonment_releases_waiters_and_later_outcomes_are_ignored() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || value(f.wait()));
        flight.finish(Outcome::Abandoned);
        // A late publication (the guard after a value) must not change what waiters saw.
        flight.finish(Outcome::Value(1));
        assert_eq!(waiter.join().unwrap(), None);
    });
}

#[test]
fn async_waiter_is_woken() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || loom::future::block_on(poll_fn(|cx| f.poll_wait(cx))));
        let f = Arc::clone(&flight);
        let blocking = thread::spawn(move || value(f.wait()));
        flight.finish(Outcome::Value(3));
        assert_eq!(value(waiter.join().unwrap()), Some(3));
        assert_eq!(blocking.join().unwrap(), Some(3));
    });
}
