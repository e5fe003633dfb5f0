//! loom models of the pool's state machine: checkout, return, wait, cancel and close.
//!
//! `RUSTFLAGS="--cfg connpool_loom" cargo test --release -p connpool --test loom`
//! (`scripts/loom.sh`). In every interleaving: no connection or slot is lost, no waiter sleeps
//! through a return, and `max_size` is never exceeded.
#![cfg(connpool_loom)]

use std::future::poll_fn;

use connpool::loom_core::{Checkout, Core, Grant, Limits, Pooled};
use loom::sync::Arc;
use loom::thread;

type TestCore = Core<u32, ()>;

/// A deadline no model reaches (the models do not run the deadline timer).
fn far_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(3600)
}

fn core(max_size: usize) -> Arc<TestCore> {
    Arc::new(Core::new(Limits { min_size: 0, max_size, max_connecting: max_size, fail_fast: true }))
}

/// Checks a connection out, opening one if the core asks for it, and waiting otherwise.
fn checkout(core: &TestCore, id: u32) -> Option<Pooled<u32>> {
    match core.checkout(far_deadline) {
        Checkout::Ready(pooled) => Some(pooled),
        Checkout::Wait { waiter, connect, .. } => {
            for _ in 0..connect {
                let (closed, _) = core.connected(Pooled::new_for_test(id));
                assert!(closed.is_none());
            }
            match loom::future::block_on(poll_fn(|cx| waiter.poll_grant(cx))) {
                Grant::Conn(pooled) => Some(pooled),
                Grant::Closed => None,
                Grant::Error(_) => unreachable!("no connect fails in these models"),
                Grant::TimedOut => unreachable!("no deadline passes in these models"),
            }
        }
        Checkout::Closed => None,
    }
}

#[test]
fn checkouts_share_one_connection_without_lost_wakeups() {
    loom::model(|| {
        let core = core(1);
        let other = core.clone();
        let thread = thread::spawn(move || {
            let pooled = checkout(&other, 1).expect("not closed");
            other.put_back(pooled);
        });
        let pooled = checkout(&core, 2).expect("not closed");
        core.put_back(pooled);
        thread.join().unwrap();
        let counts = core.counts();
        assert_eq!((counts.open, counts.idle, counts.waiting, counts.connecting), (1, 1, 0, 0));
    });
}

#[test]
fn max_size_is_never_exceeded() {
    loom::model(|| {
        let core = core(1);
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let core = core.clone();
                thread::spawn(move || {
                    let pooled = checkout(&core, i).expect("not closed");
                    assert!(core.counts().open <= 1);
                    core.put_back(pooled);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(core.counts().open, 1);
    });
}

#[test]
fn a_cancelled_waiter_loses_nothing() {
    loom::model(|| {
        let core = core(1);
        let held = checkout(&core, 1).expect("not closed");
        let Checkout::Wait { waiter, connect: 0, .. } = core.checkout(far_deadline) else {
            panic!("the only connection is held")
        };
        let returner = {
            let core = core.clone();
            thread::spawn(move || core.put_back(held))
        };
        // Give up while the connection is being returned.
        if let Some(Grant::Conn(pooled)) = core.cancel(&waiter) {
            core.put_back(pooled);
        }
        returner.join().unwrap();
        let counts = core.counts();
        assert_eq!((counts.open, counts.idle, counts.waiting), (1, 1, 0));
    });
}

#[test]
fn close_fails_waiters_and_closes_returns() {
    loom::model(|| {
        let core = core(1);
        let held = checkout(&core, 1).expect("not closed");
        let waiter = {
            let core = core.clone();
            thread::spawn(move || checkout(&core, 2).is_none())
        };
        let closer = {
            let core = core.clone();
            thread::spawn(move || core.close())
        };
        let idle = closer.join().unwrap();
        let (to_close, _) = core.put_back(held);
        let was_closed = waiter.join().unwrap();
        // Either the waiter got the connection before the close (then it is still checked out
        // by nobody: it returned nothing) or it was told the pool closed.
        let counts = core.counts();
        assert!(counts.closed && counts.waiting == 0);
        if was_closed {
            assert!(to_close.is_some() || !idle.is_empty());
        }
    });
}
