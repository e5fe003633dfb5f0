//! An invalidation that races a load wins: the loaded value reaches the callers that asked for
//! it, but the cache does not keep it, and a caller that arrives after the invalidation does not
//! get it. Every interleaving here is forced with channels: the loader announces that it runs,
//! then waits until the invalidation has returned.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, Policy};

/// The invalidations a load can race.
#[derive(Debug, Clone, Copy)]
enum Invalidation {
    Remove,
    Insert,
    InvalidateIf,
    Clear,
    ShrinkBudget,
}

const ALL: [Invalidation; 5] = [
    Invalidation::Remove,
    Invalidation::Insert,
    Invalidation::InvalidateIf,
    Invalidation::Clear,
    Invalidation::ShrinkBudget,
];

const OLD: u64 = 1;
const NEW: u64 = 2;
const LATE: u64 = 3;

fn cache(policy: Policy) -> Cache<u32, u64> {
    Cache::builder(1 << 20).policy(policy).shards(2).build().unwrap()
}

fn invalidate(cache: &Cache<u32, u64>, how: Invalidation) {
    match how {
        Invalidation::Remove => {
            cache.remove(&7);
        }
        Invalidation::Insert => cache.insert(7, NEW).unwrap(),
        Invalidation::InvalidateIf => {
            cache.invalidate_if(|k, _| *k == 7);
        }
        Invalidation::Clear => cache.clear(),
        Invalidation::ShrinkBudget => cache.set_budget(cache.budget() / 2),
    }
}

/// What the cache must hold for key 7 once the raced load has finished.
fn expected_after(how: Invalidation) -> Option<u64> {
    match how {
        Invalidation::Insert => Some(NEW),
        _ => None,
    }
}

fn sync_load_loses_to(policy: Policy, how: Invalidation) {
    let cache = cache(policy);
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let cache = &cache;
        let leader = s.spawn(move || {
            cache.get_or_insert_with(7, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                OLD
            })
        });
        started_rx.recv().unwrap();
        invalidate(cache, how);
        // A caller arriving after the invalidation must not wait for the stale load. It runs
        // its own loader (or, after an insert, finds the new value). The timeout only bounds the
        // hang of a caller that joined the stale load; the order is forced by the channels.
        let (late_tx, late_rx) = mpsc::channel();
        s.spawn(move || late_tx.send(cache.get_or_insert_with(7, || LATE)).unwrap());
        let late = late_rx.recv_timeout(Duration::from_secs(5));
        if late.is_err() {
            go_tx.send(()).unwrap();
        }
        let late = late.unwrap_or_else(|_| panic!("{how:?}: a late caller waited for the stale load"));
        assert_eq!(late, expected_after(how).unwrap_or(LATE), "{how:?}: a late caller got the stale value");
        cache.remove(&7);
        if let Some(v) = expected_after(how) {
            cache.insert(7, v).unwrap();
        }
        go_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), OLD, "{how:?}: the leader still gets what it loaded");
    });
    assert_eq!(cache.get(&7), expected_after(how), "{how:?} ({policy:?}): the stale load was stored");
    assert_eq!(cache.weighed_size(), cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum::<u64>());
}

#[test]
fn sync_loads_lose_to_invalidations() {
    for policy in [Policy::Lru, Policy::S3Fifo, Policy::TinyLfu] {
        for how in ALL {
            sync_load_loses_to(policy, how);
        }
    }
}

/// A caller that joined the flight before the invalidation still gets the leader's value.
#[test]
fn waiters_of_an_invalidated_load_get_its_value() {
    let cache = cache(Policy::Lru);
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let cache = &cache;
        let leader = s.spawn(move || {
            cache.get_or_insert_with(7, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                OLD
            })
        });
        started_rx.recv().unwrap();
        let waiter = s.spawn(|| cache.get_or_insert_with(7, || LATE));
        // The waiter has joined once the cache counts it as coalesced.
        while cache.stats().coalesced == 0 {
            thread::yield_now();
        }
        cache.remove(&7);
        go_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), OLD);
        assert_eq!(waiter.join().unwrap(), OLD);
    });
    assert_eq!(cache.get(&7), None);
}

async fn async_load_loses_to(policy: Policy, how: Invalidation) {
    let cache = cache(policy);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_try_insert_with(7, async move {
                    started_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    Ok::<_, std::io::Error>(OLD)
                })
                .await
        })
    };
    started_rx.await.unwrap();
    invalidate(&cache, how);
    let late = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_try_insert_with(7, async { Ok::<_, std::io::Error>(LATE) }),
    )
    .await;
    let Ok(late) = late else {
        go_tx.send(()).unwrap();
        panic!("{how:?}: a late caller waited for the stale load");
    };
    let late = late.unwrap();
    assert_eq!(late, expected_after(how).unwrap_or(LATE), "{how:?}: a late caller got the stale value");
    cache.remove(&7);
    if let Some(v) = expected_after(how) {
        cache.insert(7, v).unwrap();
    }
    go_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap().unwrap(), OLD);
    assert_eq!(cache.get(&7), expected_after(how), "{how:?} ({policy:?}): the stale load was stored");
}

#[tokio::test]
async fn async_loads_lose_to_invalidations() {
    for policy in [Policy::Lru, Policy::S3Fifo, Policy::TinyLfu] {
        for how in ALL {
            async_load_loses_to(policy, how).await;
        }
    }
}

/// `invalidate_if` wins over the loads in flight in every shard even when its predicate panics
/// before it reaches their shard: the invalidation began, so what those loads read may be stale.
/// (Found by the `cache_ops` fuzz target: the predicate panicked on an entry of the first shard
/// and a load in a later shard stored its value.)
#[test]
fn a_panicking_predicate_still_detaches_every_load_in_flight() {
    let cache: Cache<u32, u64> = Cache::builder(1 << 20).shards(4).build().unwrap();
    for k in 0..64 {
        cache.insert(k, OLD).unwrap();
    }
    let first = cache.eviction_order_of_shard(0);
    assert!(!first.is_empty(), "64 keys leave no shard empty");
    // A key outside the first shard, which the predicate's first call (on shard 0) never reaches.
    let key = (100..)
        .find(|k| {
            cache.insert(*k, OLD).unwrap();
            let outside = !cache.eviction_order_of_shard(0).contains(k);
            cache.remove(k);
            outside
        })
        .unwrap();
    let loaded = cache.get_or_insert_with(key, || {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.invalidate_if(|_, _| panic!("test panic: predicate"));
        }));
        assert!(panicked.is_err());
        NEW
    });
    assert_eq!(loaded, NEW, "the leader gets what it loaded");
    assert_eq!(cache.get(&key), None, "a load racing an invalidation that began was stored");
}
