//! loom models of the pool's state machine: checkout, return, wait, cancel and close, and close
//! racing a return, a break and a connection attempt in flight.
//!
//! `RUSTFLAGS="--cfg connpool_loom" cargo test --release -p leanrt-connpool --test loom`
//! (`scripts/loom.sh`). In every interleaving: no connection or slot is lost, no waiter sleeps
//! through a return, `max_size` is never exceeded, and once closed the core asks for no
//! connection attempt and drains to nothing open and nothing connecting.
#![cfg(connpool_loom)]

use std::future::poll_fn;

use connpool::loom_core::{Checkout, Core, Grant, Limits, Pooled};
use loom::sync::Arc;
use loom::thread;

type TestCore = Core<u32, ()>;

/// No deadline (the models do not run the deadline timer).
fn no_deadline() -> Option<tokio::time::Instant> {
    None
}

fn core(max_size: usize) -> Arc<TestCore> {
    Arc::new(Core::new(Limits { min_size: 0, max_size, max_connecting: max_size, fail_fast: true }))
}

/// Checks a connection out, opening one if the core asks for it, and waiting otherwise.
fn checkout(core: &TestCore, id: u32) -> Option<Pooled<u32>> {
    match core.checkout(no_deadline) {
        Checkout::Ready(pooled) => Some(pooled),
        Checkout::Wait { waiter, connect, .. } => {
            for _ in 0..connect {
                let followup = core.connected(Pooled::new_for_test(id));
                assert!(followup.close.is_none());
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
            assert_eq!(other.put_back(pooled).connect, 0);
        });
        let pooled = checkout(&core, 2).expect("not closed");
        assert_eq!(core.put_back(pooled).connect, 0);
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
                    let _ = core.put_back(pooled);
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
        let Checkout::Wait { waiter, connect: 0, .. } = core.checkout(no_deadline) else {
            panic!("the only connection is held")
        };
        let returner = {
            let core = core.clone();
            thread::spawn(move || core.put_back(held).close.is_none())
        };
        // Give up while the connection is being returned.
        if let Some(Grant::Conn(pooled)) = core.cancel(&waiter) {
            assert!(core.put_back(pooled).close.is_none());
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
        let to_close = core.put_back(held).close;
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

/// A core with a minimum to keep, so that every path that ends a connection or an attempt would
/// ask for a replacement if the close did not stop it.
fn core_with_minimum(min_size: usize, max_size: usize) -> Arc<TestCore> {
    Arc::new(Core::new(Limits { min_size, max_size, max_connecting: max_size, fail_fast: false }))
}

#[test]
fn close_racing_a_return_and_a_break_asks_for_no_attempt_and_drains() {
    loom::model(|| {
        let core = core_with_minimum(2, 2);
        let returned = checkout(&core, 1).expect("not closed");
        let broken = checkout(&core, 2).expect("not closed");
        let returner = {
            let core = core.clone();
            thread::spawn(move || {
                let closed_before = core.counts().closed;
                let followup = core.put_back(returned);
                (followup.close.is_some(), closed_before, followup.connect)
            })
        };
        let breaker = {
            let core = core.clone();
            thread::spawn(move || {
                // The connection was found broken and closed by the caller.
                let _closed = broken;
                let closed_before = core.counts().closed;
                let followup = core.closed_one();
                (closed_before, followup.connect)
            })
        };
        let idle = core.close();
        let (returned_closed, closed_after_return, return_asked) = returner.join().unwrap();
        let (closed_after_break, break_asked) = breaker.join().unwrap();
        // A return before the close made the connection idle (closed by `close`); after it, the
        // return hands it back to be closed. Either way nothing stays open.
        assert!(returned_closed || idle.len() == 1);
        // Once closed, nothing asks for a connection (the flags were read before each
        // transition); before the close, replacing the broken one was legitimate, and that
        // attempt then ends without asking for another.
        if closed_after_break {
            assert_eq!(break_asked, 0, "a break after close asked for an attempt");
        }
        if closed_after_return {
            assert_eq!(return_asked, 0);
        }
        for _ in 0..break_asked {
            let followup = core.connect_released();
            assert_eq!(followup.connect, 0, "an attempt ending after close asked for another");
        }
        let counts = core.counts();
        assert_eq!((counts.open, counts.connecting, counts.idle), (0, 0, 0), "{counts:?}");
    });
}

#[test]
fn close_racing_an_attempt_in_flight_closes_what_it_makes() {
    loom::model(|| {
        let core = core_with_minimum(1, 1);
        // Maintenance reserved an attempt to reach the minimum.
        assert_eq!(core.replenish(), 1);
        let connector = {
            let core = core.clone();
            thread::spawn(move || {
                let followup = core.connected(Pooled::new_for_test(7));
                (followup.close.is_some(), followup.connect)
            })
        };
        let idle = core.close();
        let (handed_back, asked) = connector.join().unwrap();
        assert_eq!(asked, 0, "the minimum is reached by the attempt itself");
        // Made after the close: handed back to close. Made before: idle, closed by `close`.
        assert!(handed_back != (idle.len() == 1), "closed exactly once");
        assert_eq!(core.replenish(), 0, "no attempt after close");
        let counts = core.counts();
        assert_eq!((counts.open, counts.connecting), (0, 0), "{counts:?}");
    });
}
