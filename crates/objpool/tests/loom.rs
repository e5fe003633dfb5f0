//! loom models of the acquire, return, wait and cancel paths.
//!
//! Run with `RUSTFLAGS="--cfg objpool_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p
//! objpool --test loom` (`scripts/loom.sh`). Each model checks, in every interleaving loom
//! explores: no object is handed to two holders at once, no object or slot is lost, `max_size`
//! is never exceeded, and no waiter sleeps through a return.
#![cfg(objpool_loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use objpool::Pool;

/// A pooled object that asserts it has one holder at a time.
struct Exclusive(AtomicBool);

impl Exclusive {
    fn hold(&self) {
        assert!(!self.0.swap(true, Ordering::SeqCst), "object handed out twice");
    }

    fn release(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn pool(max_size: usize, created: &Arc<AtomicUsize>) -> Pool<Exclusive> {
    let created = created.clone();
    Pool::builder()
        .max_size(max_size)
        .build(move || {
            created.fetch_add(1, Ordering::SeqCst);
            Exclusive(AtomicBool::new(false))
        })
        .unwrap()
}

fn use_once(pool: &Pool<Exclusive>) {
    let object = pool.get().unwrap();
    object.hold();
    object.release();
}

#[test]
fn blocking_gets_share_one_object_without_lost_wakeups() {
    loom::model(|| {
        let created = Arc::new(AtomicUsize::new(0));
        let pool = pool(1, &created);
        let other = pool.clone();
        let thread = thread::spawn(move || use_once(&other));
        use_once(&pool);
        thread.join().unwrap();
        let stats = pool.stats();
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!((stats.idle, stats.in_use, stats.waiting), (1, 0, 0));
    });
}

#[test]
fn max_size_is_never_exceeded() {
    loom::model(|| {
        let created = Arc::new(AtomicUsize::new(0));
        let pool = pool(2, &created);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || use_once(&pool))
            })
            .collect();
        use_once(&pool);
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(created.load(Ordering::SeqCst) <= 2);
        let stats = pool.stats();
        assert_eq!((stats.in_use, stats.waiting), (0, 0));
        assert_eq!(stats.idle as usize, created.load(Ordering::SeqCst));
    });
}

#[test]
fn async_waiter_is_woken_by_a_return() {
    loom::model(|| {
        let created = Arc::new(AtomicUsize::new(0));
        let pool = pool(1, &created);
        let held = pool.try_get().unwrap();
        let other = pool.clone();
        let waiter = thread::spawn(move || {
            let object = loom::future::block_on(other.get_async()).unwrap();
            object.hold();
            object.release();
        });
        drop(held);
        waiter.join().unwrap();
        assert_eq!(pool.stats().idle, 1);
    });
}

#[test]
fn a_cancelled_waiter_loses_nothing() {
    loom::model(|| {
        let created = Arc::new(AtomicUsize::new(0));
        let pool = pool(1, &created);
        let held = pool.try_get().unwrap().into_owned();
        let returner = thread::spawn(move || drop(held));
        {
            // Queue (unless the return came first), then give up at once.
            let waker = std::task::Waker::noop().clone();
            let mut cx = Context::from_waker(&waker);
            let mut acquire = pin!(pool.get_async());
            if let Poll::Ready(object) = acquire.as_mut().poll(&mut cx) {
                object.unwrap().hold();
            }
        }
        returner.join().unwrap();
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.in_use, stats.waiting), (1, 0, 0));
        assert!(pool.try_get().is_ok(), "the object was lost");
    });
}

#[test]
fn a_detached_slot_goes_to_the_waiter() {
    loom::model(|| {
        let created = Arc::new(AtomicUsize::new(0));
        let pool = pool(1, &created);
        let held = pool.try_get().unwrap().into_owned();
        let detacher = thread::spawn(move || drop(held.detach()));
        use_once(&pool);
        detacher.join().unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 2);
        assert_eq!(pool.stats().idle, 1);
    });
}

/// A pooled object that counts how many of its kind are alive.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn counted_pool(max_size: usize, capacity: usize, live: &Arc<AtomicUsize>) -> Pool<Counted> {
    let live = live.clone();
    Pool::builder()
        .max_size(max_size)
        .capacity(capacity)
        .build(move || {
            live.fetch_add(1, Ordering::SeqCst);
            Counted(live.clone())
        })
        .unwrap()
}

/// `close` against a return: either the closer's scan finds the returned object or the
/// returner sees the pool closed; in every interleaving exactly one of them drops it.
#[test]
fn close_racing_a_return_drops_the_object_once() {
    loom::model(|| {
        let live = Arc::new(AtomicUsize::new(0));
        let pool = counted_pool(1, 1, &live);
        let held = pool.try_get().unwrap().into_owned();
        let returner = thread::spawn(move || drop(held));
        assert!(pool.close());
        returner.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0, "the returned object outlived the close");
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.in_use, stats.discarded), (0, 0, 1));
    });
}

/// A waiter racing `close` is woken with `Closed` (never left asleep), whether it queued before
/// the close or came after it.
#[test]
fn close_wakes_a_racing_waiter() {
    loom::model(|| {
        let live = Arc::new(AtomicUsize::new(0));
        let pool = counted_pool(1, 1, &live);
        let held = pool.try_get().unwrap();
        let other = pool.clone();
        let waiter = thread::spawn(move || other.get().map(|_| ()));
        pool.close();
        assert!(matches!(waiter.join().unwrap(), Err(objpool::GetError::Closed)));
        drop(held);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

/// A shrink against a return: the returned object pays the debt, whichever comes first.
#[test]
fn a_shrink_racing_a_return_retires_the_returned_slot() {
    loom::model(|| {
        let live = Arc::new(AtomicUsize::new(0));
        let pool = counted_pool(2, 2, &live);
        let (mine, theirs) = (pool.try_get().unwrap(), pool.try_get().unwrap().into_owned());
        let returner = thread::spawn(move || drop(theirs));
        pool.resize(1).unwrap();
        returner.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 1, "exactly one object was retired");
        drop(mine);
        let stats = pool.stats();
        assert_eq!((stats.max_size, stats.idle, stats.in_use, live.load(Ordering::SeqCst)), (1, 1, 0, 1));
    });
}

/// Growing the pool serves a waiter that is queueing at the same time.
#[test]
fn a_grow_serves_a_racing_waiter() {
    loom::model(|| {
        let live = Arc::new(AtomicUsize::new(0));
        let pool = counted_pool(1, 2, &live);
        let held = pool.try_get().unwrap();
        let other = pool.clone();
        let waiter = thread::spawn(move || other.get().map(|_| ()));
        pool.resize(2).unwrap();
        assert!(waiter.join().unwrap().is_ok(), "the waiter was not served by the grow");
        drop(held);
        assert_eq!(pool.stats().idle, 2);
    });
}
