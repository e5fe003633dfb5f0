//! User code calling back into the cache: predicates and listeners run with no lock held, a
//! loader that waits for its own key fails fast, the self-wait check does not fire for other
//! callers that share the leader's thread, and a cancelled waiter leaves nothing behind.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, LoadError, Policy, RemovalCause};

/// Runs `f` on another thread; fails the test if it has not returned within 10 s (a deadlock).
fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what} deadlocked"))
}

#[test]
fn a_predicate_may_call_the_cache() {
    let cache: Cache<u32, u32> = Cache::builder(1 << 20).shards(2).build().unwrap();
    for k in 0..100 {
        cache.insert(k, k).unwrap();
    }
    let c = cache.clone();
    let removed = finishes("invalidate_if with a re-entrant predicate", move || {
        c.invalidate_if(|k, v| {
            // Reads, a statistics snapshot and even writes of other keys.
            assert_eq!(c.get(k), Some(*v));
            assert!(c.contains(k));
            assert!(!c.is_empty());
            let _ = c.stats();
            if *k == 10 {
                // Odd: whether or not the scan meets it, the predicate keeps it.
                c.insert(1001, 1001).unwrap();
            }
            k % 2 == 0
        })
    });
    assert_eq!(removed, 50);
    assert_eq!(cache.len(), 51);
    assert_eq!(cache.get(&1001), Some(1001));
}

#[test]
fn a_listener_may_call_the_cache() {
    for policy in [Policy::Lru, Policy::S3Fifo, Policy::TinyLfu] {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let slot = Arc::new(Mutex::new(None::<Cache<u32, u32, bounded_cache::UnitWeigher>>));
        let (h, s) = (Arc::clone(&heard), Arc::clone(&slot));
        let cache = Cache::builder(0)
            .max_entries(4)
            .policy(policy)
            .shards(1)
            .eviction_listener(move |k: &u32, v: &u32, cause| {
                let cache = s.lock().unwrap().clone().unwrap();
                // Reads and a write of another key, from inside the notification.
                let _ = cache.get(k);
                let _ = cache.len();
                if cause == RemovalCause::Size && *k < 100 {
                    cache.insert(k + 100, *v).unwrap();
                }
                h.lock().unwrap().push((*k, cause));
            })
            .build()
            .unwrap();
        *slot.lock().unwrap() = Some(cache.clone());
        let c = cache.clone();
        let removed = finishes("inserts with a re-entrant listener", move || {
            for k in 0..8 {
                c.insert(k, k).unwrap();
            }
            // Whichever key the policy kept, its removal is heard too.
            let kept = (0..8).find(|k| c.contains(k)).expect("four of the eight keys fit");
            c.remove(&kept);
            c.clear();
            kept
        });
        let heard = heard.lock().unwrap();
        assert!(
            heard.iter().any(|&(k, cause)| k < 100 && cause == RemovalCause::Size),
            "{policy:?}: {heard:?}"
        );
        assert!(heard.contains(&(removed, RemovalCause::Explicit)), "{policy:?}: {heard:?}");
        assert!(cache.is_empty(), "{policy:?}");
        *slot.lock().unwrap() = None;
    }
}

#[tokio::test]
async fn an_async_loader_awaiting_its_own_key_fails_fast() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let outer = tokio::time::timeout(
        Duration::from_secs(1),
        cache.get_or_try_insert_with(1, async {
            let inner = cache.get_or_try_insert_with(1, async { Ok::<u64, std::io::Error>(2) }).await;
            assert!(
                matches!(inner, Err(LoadError::Recursive)),
                "the inner call fails instead of waiting for itself"
            );
            Ok::<u64, std::io::Error>(3)
        }),
    )
    .await
    .expect("a loader awaiting its own key must not hang");
    assert_eq!(outer.unwrap(), 3);
    assert_eq!(cache.get(&1), Some(3));
}

#[test]
fn a_sync_caller_on_the_leaders_thread_waits_instead_of_panicking() {
    // The async leader registers its load on this thread and is then suspended; another caller
    // on this same thread must simply wait for it, while a second thread finishes the load.
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let cache = cache.clone();
        async move {
            cache
                .get_or_try_insert_with(1, async move {
                    go_rx.await.unwrap();
                    Ok::<u64, std::io::Error>(5)
                })
                .await
                .unwrap()
        }
    };
    let mut leader = Box::pin(leader);
    let waker = Waker::noop();
    assert!(leader.as_mut().poll(&mut Context::from_waker(waker)).is_pending(), "the load is in flight");
    // Finish the load on another thread once this thread waits.
    let finisher = thread::spawn(move || {
        go_tx.send(()).unwrap();
        futures::executor::block_on(leader)
    });
    let got = cache.get_or_insert_with(1, || 9);
    assert_eq!(got, 5, "the caller waited for the leader's value");
    assert_eq!(finisher.join().unwrap(), 5);
}

/// Counts the clones of a waker that are still alive.
struct Counted(AtomicUsize);

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_cancelled_waiter_deregisters_its_waker() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let cache = &cache;
        let leader = s.spawn(move || {
            cache.get_or_insert_with(1, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                7
            })
        });
        started_rx.recv().unwrap();
        let counted = Arc::new(Counted(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counted));
        for _ in 0..100 {
            let mut waiter = pin!(cache.get_or_try_insert_with(1, async { Ok::<u64, std::io::Error>(8) }));
            assert!(waiter.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            // Dropped here, cancelled while it waits.
        }
        let alive = Arc::strong_count(&counted);
        go_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), 7);
        assert_eq!(alive, 2, "the cancelled waiters' wakers were released");
    });
    assert_eq!(cache.get(&1), Some(7));
}

/// A predicate that clears the cache and writes the key again: the batch it was evaluated on
/// belongs to the slab `clear` replaced, so nothing is removed from the new one (the entry the
/// predicate wrote was never evaluated), and no stale index is followed.
#[test]
fn a_predicate_that_clears_and_refills_removes_nothing_it_did_not_see() {
    let cache: Cache<u32, u32> = Cache::builder(1 << 20).shards(1).build().unwrap();
    cache.insert(1, 1).unwrap();
    let removed = cache.invalidate_if(|k, _| {
        cache.clear();
        cache.insert(*k, 99).unwrap();
        true
    });
    assert_eq!(removed, 0);
    assert_eq!(cache.get(&1), Some(99));
    cache.insert(2, 2).unwrap();
    let removed = cache.invalidate_if(|_, _| {
        cache.clear();
        true
    });
    assert_eq!((removed, cache.len()), (0, 0));
}
