//! Refresh-ahead and stale-while-revalidate, on a clock that moves only when told. Reloads go to
//! an executor that parks them in a queue, so each test decides when a reload runs: a reader
//! that waited for one would never return.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use bounded_cache::{Cache, CacheBuilder, ConfigError, Expiry, LoadError, ManualClock, Refresh};

const SEC: Duration = Duration::from_secs(1);

/// Concurrent readers of one due entry (fewer under Miri, which runs them one at a time).
const READERS: usize = if cfg!(miri) { 8 } else { 64 };

/// Reloads handed to the executor, not yet run.
#[derive(Clone, Default)]
struct Parked(Arc<Mutex<Vec<Refresh>>>);

impl Parked {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// A builder whose reloads are parked here, on `clock`.
    fn builder<V>(&self, clock: &ManualClock) -> CacheBuilder<u32, V> {
        let parked = self.clone();
        Cache::builder(1 << 20)
            .refresh_executor(move |r| parked.0.lock().unwrap().push(r))
            .clock(clock.clone())
    }

    /// Runs every parked reload on this thread.
    fn run_all(&self) -> usize {
        let parked: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        let n = parked.len();
        for refresh in parked {
            refresh.run();
        }
        n
    }
}

fn refreshing(clock: &ManualClock, ttl: Duration, refresh: Duration, parked: &Parked) -> Cache<u32, u64> {
    parked.builder(clock).time_to_live(ttl).refresh_after(refresh).build().unwrap()
}

fn value(v: u64) -> impl FnOnce() -> Result<u64, String> + Send + 'static {
    move || Ok(v)
}

#[test]
fn one_reload_per_key_per_period_under_64_readers_who_never_wait() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache = refreshing(&clock, 60 * SEC, 10 * SEC, &parked);
    assert_eq!(cache.try_get_or_refresh_with(7, value(1)), Ok(1), "a miss loads on the caller's thread");
    assert_eq!(parked.len(), 0);
    clock.advance(9 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(7, value(2)), Ok(1));
    assert_eq!(parked.len(), 0, "not due before 10 s");

    let loads = Arc::new(AtomicUsize::new(0));
    for round in 1..=3u64 {
        clock.advance(11 * SEC);
        let barrier = Arc::new(Barrier::new(READERS));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (cache, barrier, loads) = (cache.clone(), barrier.clone(), loads.clone());
                thread::spawn(move || {
                    barrier.wait();
                    cache.try_get_or_refresh_with(7, move || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(round + 1)
                    })
                })
            })
            .collect();
        for reader in readers {
            // The reload is parked, not run: every reader got the current value without it.
            assert_eq!(reader.join().unwrap(), Ok(round));
        }
        assert_eq!(parked.len(), 1, "round {round}: one reload for {READERS} readers of a due entry");
        assert_eq!(loads.load(Ordering::SeqCst), (round - 1) as usize);
        assert_eq!(parked.run_all(), 1);
        assert_eq!(cache.get(&7), Some(round + 1), "the reload replaced the value");
        assert_eq!(cache.try_get_or_refresh_with(7, value(0)), Ok(round + 1));
        assert_eq!(parked.len(), 0, "a reloaded entry is fresh again");
    }
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (3, 0));
}

#[test]
fn a_reload_still_running_after_a_period_is_not_joined_by_a_second() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache = refreshing(&clock, 60 * SEC, 10 * SEC, &parked);
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    clock.advance(11 * SEC);
    cache.try_get_or_refresh_with(1, value(2)).unwrap();
    clock.advance(11 * SEC);
    // Due again a period later, but the first reload is in flight: no second one.
    assert_eq!(cache.try_get_or_refresh_with(1, value(3)), Ok(1));
    assert_eq!(parked.len(), 1);
    assert_eq!(cache.stats().refreshes, 1);
}

#[test]
fn a_write_or_invalidation_during_a_reload_wins() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache = refreshing(&clock, 60 * SEC, 10 * SEC, &parked);
    for key in [1, 2, 3] {
        cache.try_get_or_refresh_with(key, value(1)).unwrap();
    }
    clock.advance(11 * SEC);
    for key in [1, 2, 3] {
        assert_eq!(cache.try_get_or_refresh_with(key, value(2)), Ok(1));
    }
    assert_eq!(parked.len(), 3);
    cache.insert(1, 100).unwrap();
    cache.remove(&2);
    cache.invalidate_if(|k, _| *k == 3);
    parked.run_all();
    assert_eq!(cache.get(&1), Some(100), "the reload did not overwrite a newer write");
    assert_eq!(cache.get(&2), None, "nor revive a removed key");
    assert_eq!(cache.get(&3), None, "nor an invalidated one");
}

#[test]
fn a_failing_reload_keeps_serving_until_the_entry_expires() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache = refreshing(&clock, 30 * SEC, 10 * SEC, &parked);
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    let fail = || Err::<u64, _>("backend down".to_string());

    clock.advance(11 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, fail), Ok(1));
    parked.run_all();
    assert_eq!(cache.stats().refresh_failures, 1);
    assert_eq!(cache.get(&1), Some(1), "a failed reload keeps the value");
    // The next reload comes a period after the failed one started, not at once.
    clock.advance(5 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, fail), Ok(1));
    assert_eq!(parked.len(), 0);
    clock.advance(6 * SEC);
    assert_eq!(
        cache.try_get_or_refresh_with(1, || -> Result<u64, String> { panic!("loader panics") }),
        Ok(1)
    );
    let panicked = catch_unwind(AssertUnwindSafe(|| parked.run_all()));
    assert!(panicked.is_err(), "the loader's panic reaches the executor");
    assert_eq!(cache.stats().refresh_failures, 2);
    assert_eq!(cache.get(&1), Some(1), "a panicking reload keeps the value too");
    // Past the time to live the entry is gone: the next read loads on its own thread.
    clock.advance(9 * SEC);
    assert_eq!(cache.get(&1), None);
    assert_eq!(
        cache.try_get_or_refresh_with(1, fail),
        Err(LoadError::Failed(Arc::new("backend down".into())))
    );
    assert_eq!(cache.try_get_or_refresh_with(1, value(5)), Ok(5));
}

#[test]
fn a_reload_the_executor_drops_is_a_failure_and_blocks_nothing() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u64> = Cache::builder(1 << 20)
        .time_to_live(30 * SEC)
        .refresh_after(10 * SEC)
        .refresh_executor(drop)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    clock.advance(11 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, value(2)), Ok(1));
    assert_eq!(cache.stats().refresh_failures, 1);
    // The dropped reload's flight is gone: a compute or a load of the key does not wait for it.
    cache.remove(&1);
    assert_eq!(cache.get_or_insert_with(1, || 3), 3);
}

#[test]
fn the_default_executor_reloads_on_another_thread() {
    let cache: Cache<u32, u64> = Cache::builder(1 << 20)
        .time_to_live(Duration::from_secs(3600))
        .refresh_after(Duration::from_nanos(1))
        .build()
        .unwrap();
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = thread::current().id();
    let served = cache.try_get_or_refresh_with(1, move || {
        tx.send(thread::current().id()).unwrap();
        Ok::<_, String>(2)
    });
    assert_eq!(served, Ok(1));
    assert_ne!(rx.recv().unwrap(), reader, "the reload ran on a thread of its own");
}

#[test]
fn stale_while_revalidate_serves_an_expired_value_while_one_reload_runs() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache: Cache<u32, u64> =
        parked.builder(&clock).time_to_live(10 * SEC).stale_while_revalidate(5 * SEC).build().unwrap();
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    cache.try_get_or_refresh_with(2, value(1)).unwrap();
    clock.advance(9 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, value(2)), Ok(1));
    assert_eq!(parked.len(), 0, "no refresh_after: nothing to do before expiry");

    clock.advance(3 * SEC);
    // 12 s: expired. Plain reads see it gone, and do not reclaim it.
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.peek(&1), None);
    assert!(!cache.contains(&1));
    assert_eq!(cache.purge_expired(), 0, "kept for the grace");
    // Refreshing reads serve it, and one of them reloads it.
    for _ in 0..10 {
        assert_eq!(cache.try_get_or_refresh_with(1, value(2)), Ok(1));
    }
    assert_eq!(parked.len(), 1);
    assert_eq!(cache.stats().stale_served, 10);
    parked.run_all();
    assert_eq!(cache.get(&1), Some(2), "revalidated");

    // Key 2 is not read within its grace: then it is gone, and the next read loads inline.
    clock.advance(4 * SEC);
    assert_eq!(cache.purge_expired(), 1);
    assert_eq!(cache.try_get_or_refresh_with(2, value(3)), Ok(3));
    assert_eq!(parked.len(), 0);
}

#[test]
fn stale_entries_past_their_grace_are_not_served() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache: Cache<u32, u64> = parked
        .builder(&clock)
        .time_to_live(10 * SEC)
        .refresh_after(4 * SEC)
        .stale_while_revalidate(2 * SEC)
        .build()
        .unwrap();
    cache.try_get_or_refresh_with(1, value(1)).unwrap();
    clock.advance(5 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, value(2)), Ok(1));
    assert_eq!(parked.len(), 1);
    // The reload hangs (never run); at 11 s the entry is stale and served, no second reload.
    clock.advance(6 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(1, value(3)), Ok(1));
    assert_eq!(parked.len(), 1);
    // At 13 s the grace is over: the caller waits on the reload in flight, as on any load. The
    // parked reload runs on another thread to let it through.
    clock.advance(2 * SEC);
    let runner = {
        let parked = parked.clone();
        thread::spawn(move || {
            while parked.run_all() == 0 {
                thread::yield_now();
            }
        })
    };
    assert_eq!(cache.try_get_or_refresh_with(1, value(4)), Ok(2), "joined the reload in flight");
    runner.join().unwrap();
}

#[test]
fn the_expiry_hook_sets_refresh_per_entry() {
    struct NeverRefreshZero;
    impl Expiry<u32, u64> for NeverRefreshZero {
        fn refresh_after_write(&self, _: &u32, value: &u64, refresh: Option<Duration>) -> Option<Duration> {
            if *value == 0 { None } else { refresh }
        }
    }
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache: Cache<u32, u64> =
        parked.builder(&clock).refresh_after(10 * SEC).expiry(NeverRefreshZero).build().unwrap();
    cache.try_get_or_refresh_with(1, value(0)).unwrap();
    cache.try_get_or_refresh_with(2, value(1)).unwrap();
    clock.advance(11 * SEC);
    cache.try_get_or_refresh_with(1, value(5)).unwrap();
    cache.try_get_or_refresh_with(2, value(5)).unwrap();
    assert_eq!(parked.len(), 1, "only key 2 refreshes");
}

#[test]
fn plain_reads_never_refresh_and_refresh_costs_8_bytes_per_entry() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache = refreshing(&clock, 60 * SEC, 10 * SEC, &parked);
    let plain: Cache<u32, u64> = Cache::builder(1 << 20).time_to_live(60 * SEC).build().unwrap();
    assert_eq!(cache.entry_overhead(), plain.entry_overhead() + 8);
    cache.insert(1, 1).unwrap();
    clock.advance(11 * SEC);
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get_or_insert_with(1, || 2), 1);
    assert_eq!(parked.len(), 0);
}

#[test]
fn zero_periods_are_configuration_errors() {
    let refresh = Cache::<u32, u32>::builder(1024).refresh_after(Duration::ZERO).build();
    assert_eq!(refresh.unwrap_err(), ConfigError::ZeroRefresh);
    let grace = Cache::<u32, u32>::builder(1024).stale_while_revalidate(Duration::ZERO).build();
    assert_eq!(grace.unwrap_err(), ConfigError::ZeroRefresh);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
async fn async_reloads_are_spawned_and_readers_never_wait() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u64> = Cache::builder(1 << 20)
        .time_to_live(60 * SEC)
        .refresh_after(10 * SEC)
        .clock(clock.clone())
        .build()
        .unwrap();
    let load = |v: u64| move || async move { Ok::<_, String>(v) };
    assert_eq!(cache.get_or_try_refresh_with(1, load(1)).await, Ok(1));
    clock.advance(11 * SEC);
    // The reload waits for a signal that comes only after 64 reads returned.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let reload = {
        let started = started.clone();
        move || async move {
            started.fetch_add(1, Ordering::SeqCst);
            released.await.unwrap();
            Ok::<_, String>(2)
        }
    };
    assert_eq!(cache.get_or_try_refresh_with(1, reload).await, Ok(1));
    for _ in 0..63 {
        assert_eq!(cache.get_or_try_refresh_with(1, load(9)).await, Ok(1));
    }
    tokio::task::yield_now().await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "one reload, spawned");
    release.send(()).unwrap();
    let mut yields = 0;
    while cache.get(&1) != Some(2) {
        assert!(yields < 1000, "the spawned reload stored its value");
        tokio::task::yield_now().await;
        yields += 1;
    }
    assert_eq!(cache.stats().refreshes, 1);
}

#[test]
fn a_queued_reload_does_not_keep_a_dropped_cache_alive() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let cache: Cache<u32, Arc<u64>> = parked.builder(&clock).refresh_after(10 * SEC).build().unwrap();
    let value = Arc::new(1);
    cache.insert(1, Arc::clone(&value)).unwrap();
    clock.advance(11 * SEC);
    cache.try_get_or_refresh_with(1, || Ok::<_, String>(Arc::new(2))).unwrap();
    assert_eq!(parked.len(), 1);
    // The executor (and its queue) belongs to the cache; the queued reload must not hold the
    // cache in return, or neither would ever be freed.
    drop(cache);
    assert_eq!(Arc::strong_count(&value), 1, "the cache and its entries were dropped");
    assert_eq!(parked.run_all(), 1, "a reload whose cache is gone runs as a no-op");
}

/// Found by the `cache_ops` fuzz target: a refreshing read of a key from inside that key's own
/// loader (the leader of a load started because the entry had expired) finds the stale entry
/// within its grace. It serves it and starts no reload: the load in flight is already replacing
/// the value, and a reload run there would load the key a second time from inside its loader.
#[test]
fn a_refreshing_read_inside_the_keys_own_load_serves_stale_and_reloads_nothing() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u64> = Cache::builder(1 << 20)
        .refresh_executor(|r| r.run())
        .clock(clock.clone())
        .time_to_live(10 * SEC)
        .refresh_after(5 * SEC)
        .stale_while_revalidate(60 * SEC)
        .build()
        .unwrap();
    cache.insert(7, 1).unwrap();
    clock.advance(20 * SEC);
    let reloads = Arc::new(AtomicUsize::new(0));
    let (inner_cache, inner_reloads) = (cache.clone(), reloads.clone());
    let loaded = cache.try_get_or_insert_with(7, move || {
        let served = inner_cache.try_get_or_refresh_with(7, move || {
            inner_reloads.fetch_add(1, Ordering::SeqCst);
            Ok::<u64, String>(3)
        });
        assert_eq!(served, Ok(1), "the stale value, at once");
        Ok::<u64, String>(2)
    });
    assert_eq!(loaded, Ok(2));
    assert_eq!(reloads.load(Ordering::SeqCst), 0, "no reload beside the load in flight");
    assert_eq!(cache.get(&7), Some(2));
}

#[test]
fn a_reload_in_a_full_cache_evicts_nothing_else() {
    let clock = ManualClock::new();
    let parked = Parked::default();
    let probe: Cache<u32, u64> = Cache::builder(1 << 20).refresh_after(10 * SEC).build().unwrap();
    let cache: Cache<u32, u64> = parked
        .builder(&clock)
        .budget(4 * probe.entry_overhead())
        .shards(1)
        .time_to_live(60 * SEC)
        .refresh_after(10 * SEC)
        .build()
        .unwrap();
    for k in 0..4 {
        assert_eq!(cache.try_get_or_refresh_with(k, value(1)), Ok(1));
    }
    assert_eq!(
        (cache.len(), cache.weighed_size(), cache.budget()),
        (4, 4 * probe.entry_overhead(), 4 * probe.entry_overhead())
    );
    // Due: the read starts a reload, which replaces the value in place.
    clock.advance(11 * SEC);
    assert_eq!(cache.try_get_or_refresh_with(2, value(2)), Ok(1));
    assert_eq!(parked.run_all(), 1);
    assert_eq!(cache.peek(&2), Some(2));
    let s = cache.stats();
    assert_eq!(
        (s.refreshes, s.evicted_size, cache.len()),
        (1, 0, 4),
        "the reload's old value paid for the new"
    );
    // And so does a computed value that replaces one.
    cache.compute(3, |_| bounded_cache::Compute::Put(3)).unwrap();
    assert_eq!((cache.peek(&3), cache.stats().evicted_size, cache.len()), (Some(3), 0, 4));
}
