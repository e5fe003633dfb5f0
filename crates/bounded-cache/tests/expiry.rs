//! Time to idle, the `Expiry` hook and `peek`, on a clock that moves only when told.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, ConfigError, Expiry, ManualClock, Weigh};

const SEC: Duration = Duration::from_secs(1);

fn idle_cache(clock: &ManualClock, tti: Duration, ttl: Option<Duration>) -> Cache<u32, u32> {
    let builder = Cache::builder(1 << 20).time_to_idle(tti).clock(clock.clone());
    match ttl {
        Some(ttl) => builder.time_to_live(ttl).build().unwrap(),
        None => builder.build().unwrap(),
    }
}

#[test]
fn reads_keep_an_idle_entry_alive_and_peek_does_not() {
    let clock = ManualClock::new();
    let cache = idle_cache(&clock, 10 * SEC, None);
    cache.insert(1, 10).unwrap();
    cache.insert(2, 20).unwrap();
    for _ in 0..5 {
        clock.advance(9 * SEC);
        assert_eq!(cache.get(&1), Some(10), "read within its time to idle, so alive");
    }
    // Key 2 was only peeked at: its 10 s ran out long ago.
    assert_eq!(cache.peek(&2), None);
    assert_eq!(cache.get(&2), None);
    // A peek is not a read: it neither counts nor extends.
    let before = cache.stats();
    clock.advance(9 * SEC);
    assert_eq!(cache.peek(&1), Some(10));
    assert_eq!((cache.stats().hits, cache.stats().misses), (before.hits, before.misses));
    clock.advance(SEC);
    assert_eq!(cache.peek(&1), None, "the peek 1 s ago did not extend it");
    assert_eq!(cache.get(&1), None);
    // A write restarts the idle time too.
    cache.insert(3, 30).unwrap();
    clock.advance(9 * SEC);
    cache.insert(3, 31).unwrap();
    clock.advance(9 * SEC);
    assert_eq!(cache.get(&3), Some(31));
}

#[test]
fn with_a_time_to_live_an_entry_expires_at_whichever_comes_first() {
    let clock = ManualClock::new();
    let cache = idle_cache(&clock, 10 * SEC, Some(30 * SEC));
    cache.insert(1, 1).unwrap();
    cache.insert_with_ttl(2, 2, 15 * SEC).unwrap();
    for _ in 0..3 {
        clock.advance(9 * SEC);
        assert_eq!(cache.get(&1), Some(1));
    }
    // 27 s: key 2, read never, idled out at 10 s; key 1 is read each 9 s but lives 30 s at most.
    assert_eq!(cache.peek(&2), None);
    clock.advance(2 * SEC);
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(SEC);
    assert_eq!(cache.get(&1), None, "30 s after its write, however often it was read");
}

#[test]
fn the_sweep_reclaims_idle_entries_nobody_reads() {
    let clock = ManualClock::new();
    let cache: Cache<u32, Vec<u8>> =
        Cache::builder(1 << 20).shards(1).time_to_idle(SEC).clock(clock.clone()).build().unwrap();
    for i in 0..100 {
        cache.insert(i, vec![0; 100]).unwrap();
    }
    clock.advance(SEC);
    for i in 1000..1100 {
        cache.insert(i, Vec::new()).unwrap();
    }
    assert_eq!(cache.stats().evicted_expired, 100);
    clock.advance(SEC);
    assert_eq!(cache.purge_expired(), 100);
    assert_eq!((cache.len(), cache.weighed_size()), (0, 0));
}

/// Values that say how long they may be kept, as an HTTP response's `max-age` does.
#[derive(Clone, Debug, PartialEq)]
struct Page {
    body: String,
    max_age: Option<Duration>,
}

impl Weigh for Page {
    fn heap_bytes(&self) -> usize {
        self.body.heap_bytes()
    }
}

struct MaxAge;

impl Expiry<String, Page> for MaxAge {
    fn expire_after_write(&self, _: &String, page: &Page, ttl: Option<Duration>) -> Option<Duration> {
        page.max_age.or(ttl)
    }
}

fn page(body: &str, max_age: Option<Duration>) -> Page {
    Page { body: body.to_string(), max_age }
}

#[test]
fn a_value_decides_its_own_lifetime_also_when_loaded() {
    let clock = ManualClock::new();
    let cache: Cache<String, Page> =
        Cache::builder(1 << 20).time_to_live(60 * SEC).expiry(MaxAge).clock(clock.clone()).build().unwrap();
    cache.insert("/a".into(), page("a", Some(5 * SEC))).unwrap();
    cache.insert("/b".into(), page("b", None)).unwrap();
    let loaded = cache.get_or_insert_with("/c".into(), || page("c", Some(2 * SEC)));
    assert_eq!(loaded.body, "c");
    let tried = cache.try_get_or_insert_with::<()>("/d".into(), || Ok(page("d", Some(20 * SEC))));
    assert_eq!(tried.unwrap().body, "d");
    clock.advance(2 * SEC);
    assert_eq!(cache.peek("/c"), None, "the loaded value's own 2 s");
    clock.advance(3 * SEC);
    assert_eq!(cache.peek("/a"), None, "its own 5 s, not the cache's 60 s");
    assert!(cache.peek("/d").is_some());
    clock.advance(15 * SEC);
    assert_eq!(cache.peek("/d"), None);
    assert!(cache.peek("/b").is_some(), "no max-age: the cache's 60 s");
    clock.advance(40 * SEC);
    assert_eq!(cache.peek("/b"), None);
}

#[test]
fn an_async_loaders_value_decides_its_lifetime() {
    let clock = ManualClock::new();
    let cache: Cache<String, Page> =
        Cache::builder(1 << 20).expiry(MaxAge).clock(clock.clone()).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let loaded = rt
        .block_on(cache.get_or_try_insert_with("/e".into(), async { Ok::<_, ()>(page("e", Some(3 * SEC))) }));
    assert_eq!(loaded.unwrap().body, "e");
    clock.advance(3 * SEC - Duration::from_nanos(1));
    assert!(cache.peek("/e").is_some());
    clock.advance(Duration::from_nanos(1));
    assert_eq!(cache.peek("/e"), None);
}

/// Read-once entries: after a read an entry has 1 s left; and entries of key 0 live forever once
/// read (up to the time to live they were written with).
struct ReadRules {
    reads: AtomicUsize,
}

impl Expiry<u32, u32> for ReadRules {
    fn expire_after_read(&self, key: &u32, _: &u32, _remaining: Option<Duration>) -> Option<Duration> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if *key == 0 { None } else { Some(SEC) }
    }
}

#[test]
fn a_read_can_shorten_or_extend_a_life_up_to_its_time_to_live() {
    let clock = ManualClock::new();
    let rules = Arc::new(ReadRules { reads: AtomicUsize::new(0) });
    struct Shared(Arc<ReadRules>);
    impl Expiry<u32, u32> for Shared {
        fn expire_after_read(&self, key: &u32, value: &u32, remaining: Option<Duration>) -> Option<Duration> {
            self.0.expire_after_read(key, value, remaining)
        }
    }
    let cache: Cache<u32, u32> = Cache::builder(1 << 20)
        .time_to_live(100 * SEC)
        .expiry(Shared(Arc::clone(&rules)))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(0, 0).unwrap();
    cache.insert(1, 1).unwrap();
    cache.insert_with_ttl(2, 2, Duration::MAX).unwrap();
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&0), Some(0));
    assert_eq!(cache.get(&2), Some(2));
    assert_eq!(cache.peek(&1), Some(1));
    assert!(cache.contains(&1));
    assert_eq!(rules.reads.load(Ordering::Relaxed), 3, "peek and contains are not reads");
    clock.advance(SEC);
    assert_eq!(cache.peek(&1), None, "1 s left after its read");
    assert_eq!(cache.peek(&2), None, "a read gave a deadline to an entry written without one");
    clock.advance(98 * SEC);
    assert_eq!(cache.peek(&0), Some(0), "never, after its read, but");
    clock.advance(SEC);
    assert_eq!(cache.peek(&0), None, "capped by the 100 s it was written with");
    // Entries given a deadline by a read are swept like the others.
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.purge_expired(), 3);
}

struct Panicky;

impl Expiry<u32, u32> for Panicky {
    fn expire_after_write(&self, key: &u32, _: &u32, ttl: Option<Duration>) -> Option<Duration> {
        assert!(*key != 13, "expiry hook: unlucky write");
        ttl
    }

    fn expire_after_read(&self, key: &u32, _: &u32, remaining: Option<Duration>) -> Option<Duration> {
        assert!(*key != 7, "expiry hook: unlucky read");
        remaining
    }
}

#[test]
fn a_panicking_hook_reaches_its_caller_and_the_cache_stays_consistent() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> =
        Cache::builder(1 << 20).time_to_live(10 * SEC).expiry(Panicky).clock(clock.clone()).build().unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| cache.insert(13, 13)));
    assert!(panicked.is_err());
    assert_eq!((cache.len(), cache.weighed_size()), (0, 0), "nothing stored, no weight leaked");
    let panicked = catch_unwind(AssertUnwindSafe(|| cache.get_or_insert_with(13, || 13)));
    assert!(panicked.is_err());
    assert_eq!((cache.len(), cache.weighed_size()), (0, 0));
    // The key's flight is gone with the panic: a later load runs.
    let loads = AtomicUsize::new(0);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(13, || {
            loads.fetch_add(1, Ordering::Relaxed);
            13
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(loads.load(Ordering::Relaxed), 1);

    cache.insert(7, 7).unwrap();
    let weight = cache.weighed_size();
    clock.advance(5 * SEC);
    assert!(catch_unwind(AssertUnwindSafe(|| cache.get(&7))).is_err());
    assert_eq!(cache.weighed_size(), weight);
    assert_eq!(cache.peek(&7), Some(7), "still there, with its deadline");
    clock.advance(5 * SEC);
    assert_eq!(cache.peek(&7), None);
    cache.insert(8, 8).unwrap();
    assert_eq!(cache.get(&8), Some(8), "and the cache is usable");
}

#[test]
fn readers_on_many_threads_keep_a_hot_entry_alive() {
    // Each round, every reader reads the entry, then the clock moves 9 s (less than the 10 s
    // time to idle): the entry must survive every round; a cold entry beside it must not.
    const READERS: usize = 4;
    let clock = ManualClock::new();
    let cache = idle_cache(&clock, 10 * SEC, None);
    cache.insert(1, 1).unwrap();
    cache.insert(2, 2).unwrap();
    let barrier = Barrier::new(READERS + 1);
    let seen: Vec<Vec<Option<u32>>> = thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(|| {
                    // Collected, not asserted here, so that a failure cannot strand the barrier.
                    let mut seen = Vec::new();
                    for _ in 0..20 {
                        seen.push(cache.get(&1));
                        barrier.wait(); // read
                        barrier.wait(); // clock moved
                    }
                    seen
                })
            })
            .collect();
        for _ in 0..20 {
            barrier.wait();
            clock.advance(9 * SEC);
            barrier.wait();
        }
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(seen.iter().flatten().all(|v| *v == Some(1)), "{seen:?}");
    assert_eq!(cache.peek(&2), None);
    assert_eq!(cache.peek(&1), Some(1));
}

#[test]
fn time_to_idle_is_checked_and_costs_a_slot_per_entry() {
    let err = Cache::<u32, u32>::builder(1024).time_to_idle(Duration::ZERO).build().unwrap_err();
    assert_eq!(err, ConfigError::ZeroTti);
    assert_eq!(err.to_string(), "a time to idle must be longer than zero");
    let plain: Cache<u64, u64> = Cache::builder(1 << 20).build().unwrap();
    let idle: Cache<u64, u64> = Cache::builder(1 << 20).time_to_idle(SEC).build().unwrap();
    let hooked: Cache<u64, u64> = Cache::builder(1 << 20).expiry(Unchanged).build().unwrap();
    assert_eq!(idle.entry_overhead(), plain.entry_overhead() + 8);
    assert_eq!(hooked.entry_overhead(), plain.entry_overhead() + 8);
    // Durations of any size are accepted without overflow.
    let forever: Cache<u64, u64> =
        Cache::builder(1 << 20).time_to_idle(Duration::MAX).time_to_live(Duration::MAX).build().unwrap();
    forever.insert(1, 1).unwrap();
    assert_eq!(forever.get(&1), Some(1));
}

struct Unchanged;
impl Expiry<u64, u64> for Unchanged {}

/// Counts its calls.
struct Counting(Arc<AtomicUsize>);

impl Expiry<u32, Vec<u8>> for Counting {
    fn expire_after_write(&self, _: &u32, _: &Vec<u8>, ttl: Option<Duration>) -> Option<Duration> {
        self.0.fetch_add(1, Ordering::Relaxed);
        ttl
    }
}

#[test]
fn the_hook_decides_once_per_write_however_many_rounds_the_write_takes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u32, Vec<u8>, _> = Cache::builder(2_000)
        .shards(1)
        .weigher(|_: &u32, v: &Vec<u8>| v.len())
        .expiry(Counting(Arc::clone(&calls)))
        .build()
        .unwrap();
    let overhead = cache.entry_overhead() as usize;
    for k in 0..10 {
        cache.insert(k, vec![0; 200 - overhead]).unwrap();
    }
    // A replacement that grows beyond the room left reserves the rest with the shard's lock
    // released, then stores in a second round.
    cache.insert(5, vec![1; 500 - overhead]).unwrap();
    assert_eq!(cache.stats().evicted_size, 2);
    assert_eq!(calls.load(Ordering::Relaxed), 11);
}
