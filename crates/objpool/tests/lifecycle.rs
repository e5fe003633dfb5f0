//! Seeding, `add`, `resize` and `close`: a pool whose contents and size change while in use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use objpool::{AddRefused, BuildError, GetError, Pool, ResizeError, TryGetError};

/// An object that counts how many of its kind are alive.
#[derive(Debug)]
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self(live.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tracked_pool(max_size: usize, capacity: usize, pre_create: usize) -> (Pool<Tracked>, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let counter = live.clone();
    let pool = Pool::builder()
        .max_size(max_size)
        .capacity(capacity)
        .pre_create(pre_create)
        .build(move || Tracked::new(&counter))
        .unwrap();
    (pool, live)
}

/// Blocks until `n` callers wait on `pool` (they queue in a moment: no sleeping involved).
fn until_waiting<T>(pool: &Pool<T>, n: usize) {
    while pool.stats().waiting != n {
        std::thread::yield_now();
    }
}

#[test]
fn bad_sizes_are_typed_errors() {
    let err = Pool::builder().max_size(4).capacity(2).build(|| 0u8).unwrap_err();
    assert!(matches!(err, BuildError::CapacityBelowMaxSize { capacity: 2, max_size: 4 }), "{err}");
    let err = Pool::builder().max_size(1).seed([1u8, 2]).build(|| 0u8).unwrap_err();
    assert_eq!(err.to_string(), "invalid pool configuration: 2 seeded objects are more than max_size (1)");
    let err = Pool::<u8>::builder().pre_create(1).build_unmanaged().unwrap_err();
    assert!(matches!(err, BuildError::Unmanaged), "{err}");

    let pool = Pool::builder().max_size(2).capacity(3).build(|| 0u8).unwrap();
    assert_eq!(pool.resize(0), Err(ResizeError::Zero));
    let err = pool.resize(4).unwrap_err();
    assert_eq!(err, ResizeError::AboveCapacity { requested: 4, capacity: 3 });
    assert_eq!(err.to_string(), "invalid pool size: 4 is above the pool's capacity (3)");
    assert_eq!((pool.max_size(), pool.capacity()), (2, 3), "a refused resize changes nothing");
}

#[test]
fn close_fails_waiters_and_later_gets_and_drops_objects_as_they_return() {
    let (pool, live) = tracked_pool(2, 2, 2);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (a, b) = (pool.try_get().unwrap(), pool.try_get().unwrap());
    std::thread::scope(|s| {
        let blocking = s.spawn(|| pool.get().map(|_| ()));
        let asynchronous = s.spawn(|| rt.block_on(pool.get_async()).map(|_| ()));
        until_waiting(&pool, 2);
        assert!(pool.close());
        assert!(matches!(blocking.join().unwrap(), Err(GetError::Closed)), "a blocked waiter is woken");
        assert!(matches!(asynchronous.join().unwrap(), Err(GetError::Closed)), "an async waiter is woken");
    });
    assert!(pool.is_closed() && pool.stats().closed);
    assert!(!pool.close(), "closing twice is a no-op");
    assert!(matches!(pool.try_get(), Err(TryGetError::Closed)));
    assert!(matches!(pool.get(), Err(GetError::Closed)));
    assert!(matches!(rt.block_on(pool.get_async()), Err(GetError::Closed)));
    assert_eq!(pool.resize(1), Err(ResizeError::Closed));
    let refused = pool.add(Tracked::new(&live)).unwrap_err();
    assert_eq!(refused.reason, AddRefused::Closed);
    drop(refused.into_inner());
    assert_eq!(live.load(Ordering::SeqCst), 2, "objects in use live on");
    drop(a);
    assert_eq!(live.load(Ordering::SeqCst), 1, "an object returned to a closed pool is dropped");
    b.discard();
    let stats = pool.stats();
    assert_eq!(
        (live.load(Ordering::SeqCst), stats.idle, stats.in_use, stats.discarded),
        (0, 0, 0, 2),
        "{stats}"
    );
}

#[test]
fn close_drops_idle_objects_at_once() {
    let (pool, live) = tracked_pool(3, 3, 3);
    let held = pool.try_get().unwrap();
    let clone = pool.clone();
    assert!(clone.close(), "any handle closes the pool for all");
    assert_eq!(live.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().idle, 0);
    drop(held);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn growing_serves_waiters_at_once() {
    let (pool, live) = tracked_pool(1, 3, 0);
    let held = pool.get().unwrap();
    std::thread::scope(|s| {
        let waiters: Vec<_> =
            (0..2).map(|_| s.spawn(|| pool.get().map(|guard| guard.0.load(Ordering::SeqCst)))).collect();
        until_waiting(&pool, 2);
        pool.resize(3).unwrap();
        for waiter in waiters {
            assert!(waiter.join().unwrap().is_ok());
        }
    });
    assert_eq!((pool.max_size(), live.load(Ordering::SeqCst)), (3, 3));
    drop(held);
    assert_eq!(pool.stats().idle, 3);
}

#[test]
fn shrinking_drops_idle_objects_now_and_the_others_as_they_return() {
    let (pool, live) = tracked_pool(4, 4, 4);
    let held: Vec<_> = (0..3).map(|_| pool.try_get().unwrap()).collect();
    pool.resize(1).unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 3, "the idle object is dropped at once");
    let stats = pool.stats();
    assert_eq!((stats.max_size, stats.in_use, stats.idle), (1, 3, 0), "{stats}");
    assert!(matches!(pool.try_get(), Err(TryGetError::Exhausted)));
    let mut held = held.into_iter();
    drop(held.next());
    drop(held.next());
    assert_eq!(live.load(Ordering::SeqCst), 1, "returned objects pay the shrink until it is done");
    drop(held.next());
    let stats = pool.stats();
    assert_eq!((live.load(Ordering::SeqCst), stats.in_use, stats.idle), (1, 0, 1), "{stats}");
    let only = pool.try_get().unwrap();
    assert!(matches!(pool.try_get(), Err(TryGetError::Exhausted)), "max_size is 1 now");
    drop(only);
    // Growing back forgives what is still owed, then reopens retired slots.
    pool.resize(4).unwrap();
    let all: Vec<_> = (0..4).map(|_| pool.try_get().unwrap()).collect();
    assert_eq!(live.load(Ordering::SeqCst), 4);
    drop(all);
    assert_eq!(pool.stats().discarded, 3);
}

#[test]
fn a_shrink_waits_for_returns_and_a_grow_cancels_what_it_still_owes() {
    let (pool, live) = tracked_pool(2, 2, 2);
    let (a, b) = (pool.try_get().unwrap(), pool.try_get().unwrap());
    pool.resize(1).unwrap();
    pool.resize(2).unwrap(); // nothing came back: the debt is forgiven, nothing is dropped
    drop((a, b));
    let stats = pool.stats();
    assert_eq!((live.load(Ordering::SeqCst), stats.idle, stats.discarded), (2, 2, 0), "{stats}");
}

#[test]
fn seeded_and_added_objects_are_handed_out() {
    let pool = Pool::builder().max_size(3).seed([1u32, 2]).build(|| 99).unwrap();
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.added, stats.created), (2, 2, 0), "{stats}");
    pool.add(3).unwrap();
    let refused = pool.add(4).unwrap_err();
    assert_eq!((refused.reason, refused.object), (AddRefused::Full, 4), "a full pool gives the object back");
    assert_eq!(refused.to_string(), "the pool is full: no free slot for the added object");
    let held: Vec<_> = (0..3).map(|_| pool.try_get().unwrap()).collect();
    let mut got: Vec<u32> = held.iter().map(|guard| **guard).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(pool.stats().created, 0, "the seeded and added objects served every get");
}

#[test]
fn seeded_objects_count_toward_pre_create() {
    let pool = Pool::builder().max_size(4).pre_create(3).seed([7u8]).build(|| 0).unwrap();
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.added, stats.created), (3, 1, 2), "{stats}");
}

#[test]
fn an_unmanaged_pool_hands_out_only_what_it_was_given() {
    let pool = Pool::builder().max_size(4).seed([7u8]).build_unmanaged().unwrap();
    let held = pool.try_get().unwrap();
    assert_eq!(*held, 7);
    assert!(matches!(pool.try_get(), Err(TryGetError::Exhausted)), "nothing to create with");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.get().map(|guard| *guard));
        until_waiting(&pool, 1);
        pool.add(8).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 8, "an added object serves the oldest waiter");
    });
    drop(held);
    assert_eq!(pool.stats().idle, 2);
}
