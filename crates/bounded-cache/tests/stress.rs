//! Many threads inserting, reading, removing, loading, invalidating and clearing at once, with a
//! listener that panics now and then, while a checker thread asserts that the budget is never
//! exceeded; at the end the statistics, the listener's count and the entries must add up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, ManualClock, Policy, RemovalCause};

fn quiet_listener_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"stress panic: listener") {
            default(info);
        }
    }));
}

fn stress(policy: Policy) {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(quiet_listener_panics);
    const BUDGET: u64 = 64 * 1024;
    let listened = Arc::new([(); 4].map(|_| AtomicU64::new(0)));
    let heard = Arc::clone(&listened);
    let panicked = Arc::new(AtomicU64::new(0));
    let panics = Arc::clone(&panicked);
    // Time moves only when a worker moves it, so that expiry happens however slowly this runs.
    let clock = ManualClock::new();
    let cache: Cache<u32, Vec<u8>> = Cache::builder(BUDGET)
        .policy(policy)
        .shards(8)
        .time_to_live(Duration::from_millis(20))
        .clock(clock.clone())
        .eviction_listener(move |key: &u32, _: &Vec<u8>, cause| {
            let i = match cause {
                RemovalCause::Size => 0,
                RemovalCause::Expired => 1,
                RemovalCause::Explicit => 2,
                _ => 3,
            };
            heard[i].fetch_add(1, Ordering::Relaxed);
            if key % 101 == 0 {
                panics.fetch_add(1, Ordering::Relaxed);
                panic!("stress panic: listener");
            }
        })
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let rejected_seen = AtomicU64::new(0);
    let ops = 20_000u32;
    thread::scope(|s| {
        // The checker: the weighed size is never above the budget, at any instant.
        s.spawn(|| {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let used = cache.weighed_size();
                assert!(used <= BUDGET, "weighed size {used} above the budget {BUDGET}");
                checks += 1;
            }
            assert!(checks > 0);
        });
        let workers: Vec<_> = (0..4u32)
            .map(|t| {
                let (cache, rejected_seen, clock) = (&cache, &rejected_seen, &clock);
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(u64::from(t));
                    for _ in 0..ops {
                        let key = rng.u32(0..2000);
                        match rng.u8(0..100) {
                            0..50 => {
                                if let Some(v) = cache.get(&key) {
                                    assert!(v.iter().all(|&b| b == key as u8), "a value belongs to its key");
                                }
                            }
                            50..80 => {
                                let len = if rng.u8(0..100) == 0 { 70_000 } else { rng.usize(0..2000) };
                                if let Err(e) = cache.insert(key, vec![key as u8; len]) {
                                    // Too heavy, or (rarely, under contention on few cores)
                                    // starved of budget by the other threads: both are counted.
                                    assert!(
                                        e.weight > BUDGET
                                            || e.kind == bounded_cache::InsertErrorKind::Contended
                                    );
                                    rejected_seen.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            80..88 => {
                                cache.remove(&key);
                            }
                            88..98 => {
                                let v = cache.get_or_insert_with(key, || vec![key as u8; 100]);
                                assert!(v.iter().all(|&b| b == key as u8));
                            }
                            98 => {
                                if rng.u8(0..20) == 0 {
                                    cache.clear();
                                } else {
                                    cache.invalidate_if(|k, _| k % 97 == key % 97);
                                }
                            }
                            _ => {
                                clock.advance(Duration::from_millis(1));
                                if let Err(e) =
                                    cache.insert_with_ttl(key, vec![key as u8; 10], Duration::from_millis(1))
                                {
                                    assert_eq!(e.kind, bounded_cache::InsertErrorKind::Contended);
                                    rejected_seen.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        // Stop the checker whatever happens to the workers, so that a failing worker fails the
        // test instead of leaving the checker spinning.
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        for result in results {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let st = cache.stats();
    // Quiescent now: the weighed size is exactly what the shards hold, and every counter adds up.
    assert_eq!(st.weighed_size, cache.weighed_size());
    assert!(st.weighed_size <= BUDGET);
    assert_eq!(st.entries as usize, cache.len());
    assert_eq!(st.rejected, rejected_seen.load(Ordering::Relaxed));
    assert_eq!(st.inserts, st.entries + st.removals(), "every entry added is present or was removed once");
    assert_eq!(listened[0].load(Ordering::Relaxed), st.evicted_size);
    assert_eq!(listened[1].load(Ordering::Relaxed), st.evicted_expired);
    assert_eq!(listened[2].load(Ordering::Relaxed), st.removed_explicit);
    assert_eq!(listened[3].load(Ordering::Relaxed), st.updates, "each update replaced one value");
    assert_eq!(st.listener_panics, panicked.load(Ordering::Relaxed), "every listener panic was contained");
    assert!(
        st.evicted_size > 0 && st.evicted_expired > 0 && st.rejected > 0 && st.listener_panics > 0,
        "{st}"
    );
    let sum: u64 = cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum();
    assert!(sum <= st.weighed_size, "live entries weigh {sum}, accounted {}", st.weighed_size);
    // Every entry lives at most 20 ms: once all have expired and are purged, nothing may be left
    // counted, whatever panicked on the way.
    clock.advance(Duration::from_millis(20));
    cache.purge_expired();
    assert_eq!((cache.len(), cache.weighed_size()), (0, 0), "no weight leaked");
}

#[test]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
fn lru_budget_holds_and_stats_add_up() {
    stress(Policy::Lru);
}

#[test]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
fn s3fifo_budget_holds_and_stats_add_up() {
    stress(Policy::S3Fifo);
}

#[test]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
fn tinylfu_budget_holds_and_stats_add_up() {
    stress(Policy::TinyLfu);
}
