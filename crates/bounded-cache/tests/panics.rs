//! Panic safety: whatever user code panics (listener, predicate, weigher, `Hash`, `Eq`, loader),
//! the weighed size stays equal to the weight of the entries present, no lock stays held, and an
//! insert that fits the budget still completes.
//!
//! A leaked weight used to make the next insert that needed it evict everything and then spin
//! forever; the inserts that check this run on a thread of their own, and the test fails (rather
//! than hangs) when one does not finish. The timeout only bounds that hang.

use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, Policy, RemovalCause};

const BUDGET: u64 = 64 * 1024;

/// The weight of the entries present, summed one by one.
fn present<K: Clone + Eq + Hash, V: Clone, W: bounded_cache::Weigher<K, V>>(cache: &Cache<K, V, W>) -> u64 {
    cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum()
}

/// Runs `f` on another thread; fails the test if it has not returned within 10 s.
fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what} did not finish"))
}

fn silence_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
            if !message.starts_with("test panic") {
                default(info);
            }
        }));
    });
}

type Bytes = Cache<u32, Vec<u8>, fn(&u32, &Vec<u8>) -> usize>;

#[allow(clippy::ptr_arg)] // the weigher's signature is the cache's `(&K, &V)`
fn by_len(_: &u32, v: &Vec<u8>) -> usize {
    v.len()
}

fn cache_with_listener(
    policy: Policy,
    listener: impl Fn(&u32, &Vec<u8>, RemovalCause) + Send + Sync + 'static,
) -> Bytes {
    Cache::builder(BUDGET)
        .policy(policy)
        .shards(4)
        .weigher(by_len as fn(&u32, &Vec<u8>) -> usize)
        .eviction_listener(listener)
        .build()
        .unwrap()
}

/// After the panic: the accounting matches the entries, and an entry of nearly the whole budget
/// goes in (it must evict everything else and find the budget free).
fn still_whole(cache: Bytes) {
    assert_eq!(cache.weighed_size(), present(&cache), "the weighed size leaked");
    let overhead = cache.entry_overhead() as usize;
    let c = cache.clone();
    finishes("an insert of the whole budget", move || {
        c.insert(1_000_000, vec![0; BUDGET as usize - overhead])
    })
    .expect("an entry as heavy as the budget fits");
    assert_eq!(cache.weighed_size(), BUDGET);
    assert_eq!(cache.len(), 1);
    let c = cache.clone();
    finishes("set_budget", move || c.set_budget(BUDGET / 2));
    assert_eq!(cache.weighed_size(), present(&cache));
}

#[test]
fn a_listener_that_panics_mid_drain_leaks_nothing() {
    silence_panics();
    for policy in [Policy::Lru, Policy::S3Fifo, Policy::TinyLfu] {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let cache = cache_with_listener(policy, move |k, _, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            if *k == 3 {
                panic!("test panic: listener");
            }
        });
        for k in 0..10 {
            cache.insert(k, vec![0; 1000]).unwrap();
        }
        let removed = catch_unwind(AssertUnwindSafe(|| cache.invalidate_if(|_, _| true)));
        assert_eq!(removed.ok(), Some(10), "a listener's panic is contained; the drain goes on");
        assert_eq!(calls.load(Ordering::SeqCst), 10, "every removal was notified");
        assert_eq!(cache.stats().listener_panics, 1);
        still_whole(cache);
    }
}

#[test]
fn a_listener_that_panics_during_clear_and_eviction_leaks_nothing() {
    silence_panics();
    let cache = cache_with_listener(Policy::Lru, |k, _, _| {
        if k % 2 == 0 {
            panic!("test panic: listener");
        }
    });
    for k in 0..10 {
        cache.insert(k, vec![0; 1000]).unwrap();
    }
    cache.clear();
    assert_eq!(cache.weighed_size(), 0);
    // Evictions to make room: the inserting caller does not see the listener's panic.
    for k in 0..200 {
        cache.insert(k, vec![0; 1000]).unwrap();
    }
    assert!(cache.stats().listener_panics >= 5 + 50);
    still_whole(cache);
}

#[test]
fn a_predicate_that_panics_mid_drain_leaks_nothing() {
    silence_panics();
    for policy in [Policy::Lru, Policy::S3Fifo, Policy::TinyLfu] {
        let cache = cache_with_listener(policy, |_, _, _| {});
        for k in 0..40 {
            cache.insert(k, vec![0; 1000]).unwrap();
        }
        let mut calls = 0;
        let result = catch_unwind(AssertUnwindSafe(|| {
            cache.invalidate_if(|_, _| {
                calls += 1;
                if calls == 20 {
                    panic!("test panic: predicate");
                }
                true
            })
        }));
        assert!(result.is_err(), "the caller's own predicate panics at the caller");
        assert!(cache.len() < 40 && !cache.is_empty(), "entries before the panic went, the others stay");
        still_whole(cache);
    }
}

#[test]
fn a_weigher_that_panics_leaks_nothing() {
    silence_panics();
    let cache: Cache<u32, Vec<u8>, _> = Cache::builder(BUDGET)
        .weigher(|_: &u32, v: &Vec<u8>| {
            if v.len() == 13 {
                panic!("test panic: weigher");
            }
            v.len()
        })
        .build()
        .unwrap();
    cache.insert(1, vec![0; 100]).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| cache.insert(2, vec![0; 13]))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| cache.get_or_insert_with(3, || vec![0; 13]))).is_err());
    assert_eq!(cache.weighed_size(), cache.weigh(&1, &vec![0; 100]));
    // The abandoned load was cleaned up: the key loads again.
    assert_eq!(cache.get_or_insert_with(3, || vec![1; 5]), vec![1; 5]);
}

/// A key whose `Hash` and `Eq` panic once its switch is on.
#[derive(Clone, Debug)]
struct Touchy {
    id: u32,
    armed: Arc<AtomicBool>,
}

impl Touchy {
    fn new(id: u32) -> Self {
        Self { id, armed: Arc::new(AtomicBool::new(false)) }
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.armed.load(Ordering::SeqCst) {
            panic!("test panic: Hash");
        }
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        if self.armed.load(Ordering::SeqCst) || other.armed.load(Ordering::SeqCst) {
            panic!("test panic: Eq");
        }
        self.id == other.id
    }
}

impl Eq for Touchy {}

type TouchyCache = Cache<Touchy, Vec<u8>, fn(&Touchy, &Vec<u8>) -> usize>;

fn touchy_cache() -> TouchyCache {
    #[allow(clippy::ptr_arg)] // the weigher's signature is the cache's `(&K, &V)`
    fn by_len(_: &Touchy, v: &Vec<u8>) -> usize {
        v.len()
    }
    Cache::builder(BUDGET).shards(1).weigher(by_len as fn(&Touchy, &Vec<u8>) -> usize).build().unwrap()
}

fn touchy_still_whole(cache: TouchyCache) {
    let present: u64 = cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum();
    assert_eq!(cache.weighed_size(), present, "the weighed size leaked");
    let overhead = cache.entry_overhead() as usize;
    let c = cache.clone();
    finishes("an insert of the whole budget", move || {
        c.insert(Touchy::new(1_000_000), vec![0; BUDGET as usize - overhead]).is_ok()
    });
    assert_eq!(cache.weighed_size(), present_weight(&cache));
}

fn present_weight(cache: &TouchyCache) -> u64 {
    cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum()
}

#[test]
fn a_hash_that_panics_while_the_index_grows_leaks_nothing() {
    silence_panics();
    let cache = touchy_cache();
    let first = Touchy::new(0);
    cache.insert(first.clone(), vec![0; 10]).unwrap();
    first.armed.store(true, Ordering::SeqCst);
    // New keys hash fine; when the index grows it used to rehash the armed key, after the new
    // entry's weight was reserved.
    for id in 1..200 {
        let _ = catch_unwind(AssertUnwindSafe(|| cache.insert(Touchy::new(id), vec![0; 10])));
    }
    first.armed.store(false, Ordering::SeqCst);
    for id in 0..200 {
        let key = Touchy::new(id);
        if cache.contains(&key) {
            assert_eq!(cache.get(&key), Some(vec![0; 10]), "an indexed entry stays reachable");
        }
    }
    touchy_still_whole(cache);
}

#[test]
fn an_eq_that_panics_after_the_reservation_leaks_nothing() {
    silence_panics();
    let cache = touchy_cache();
    let stored = Touchy::new(5);
    cache.insert(stored.clone(), vec![0; 100]).unwrap();
    stored.armed.store(true, Ordering::SeqCst);
    // Replacing the key compares it with the stored one under the shard's lock.
    for _ in 0..3 {
        assert!(catch_unwind(AssertUnwindSafe(|| cache.insert(Touchy::new(5), vec![0; 30_000]))).is_err());
    }
    stored.armed.store(false, Ordering::SeqCst);
    assert_eq!(cache.get(&Touchy::new(5)), Some(vec![0; 100]));
    touchy_still_whole(cache);
}
