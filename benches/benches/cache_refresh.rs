//! `cache-refresh`: read latency of one hot key across its expiries, with refresh-ahead and
//! without, against moka.
//!
//! A reader issues a read of the key every 20 µs on a fixed schedule (an open loop: a read that
//! starts late because the one before it waited counts that wait, as a caller queued behind it
//! would). The key lives 20 ms and its loader takes 1 ms (a backend call). Each iteration is
//! one window of 2,000 reads (two lifetimes of the key); the figure criterion reports for it is
//! **the window's 99th-percentile read latency**, not a mean.
//!
//! - `ours`: `try_get_or_refresh_with`, `refresh_after` 10 ms, reloads on one executor thread;
//! - `ours-ttl`: `get_or_insert_with` on plain TTL (the key reloads in the reader's path);
//! - `ours-no-expiry`: the control, a key that never expires (every read a hit);
//! - `moka`: moka's `get_with` on its time to live (reloads in the reader's path too).

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bounded_cache::Cache;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;

const TTL: Duration = Duration::from_millis(20);
const REFRESH: Duration = Duration::from_millis(10);
const LOAD: Duration = Duration::from_millis(1);
const INTERVAL: Duration = Duration::from_micros(20);
const READS: u32 = 2_000;
const KEY: u64 = 42;

fn load() -> u64 {
    thread::sleep(LOAD);
    7
}

/// Runs one window of scheduled reads and returns its 99th-percentile latency.
fn window(read: &impl Fn() -> u64) -> Duration {
    // 1 ns to 10 s, 3 significant digits.
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    let start = Instant::now();
    for i in 0..READS {
        let due = start + INTERVAL * i;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        black_box(read());
        latencies.saturating_record(due.elapsed().as_nanos() as u64);
    }
    Duration::from_nanos(latencies.value_at_quantile(0.99))
}

fn p99(c: &mut Criterion, id: &str, read: impl Fn() -> u64) {
    let _ = read(); // the first load, outside the measurement
    c.benchmark_group("cache-refresh").sample_size(10).bench_function(BenchmarkId::new(id, "p99"), |b| {
        // Criterion plans iterations by the wall time they take; the time reported is the sum of
        // the windows' 99th percentiles, so the figure per iteration is one window's p99.
        b.iter_custom(|windows| (0..windows).map(|_| window(&read)).sum())
    });
}

fn cache_refresh(c: &mut Criterion) {
    let (tx, rx) = mpsc::channel::<bounded_cache::Refresh>();
    let executor = thread::spawn(move || rx.into_iter().for_each(|refresh| refresh.run()));
    let ours: Cache<u64, u64> = Cache::builder(1 << 20)
        .time_to_live(TTL)
        .refresh_after(REFRESH)
        .refresh_executor(move |refresh| {
            let _ = tx.send(refresh);
        })
        .build()
        .unwrap();
    p99(c, "ours", || ours.try_get_or_refresh_with(KEY, || Ok::<_, ()>(load())).unwrap());
    println!("ours: {}", ours.stats());
    drop(ours);
    executor.join().unwrap();

    // The control: a key that never expires, so every read is a plain hit. Its p99 is this
    // machine's floor for the harness (timer interrupts, a shared host).
    let hits: Cache<u64, u64> = Cache::builder(1 << 20).build().unwrap();
    p99(c, "ours-no-expiry", || hits.get_or_insert_with(KEY, load));

    let plain: Cache<u64, u64> = Cache::builder(1 << 20).time_to_live(TTL).build().unwrap();
    p99(c, "ours-ttl", || plain.get_or_insert_with(KEY, load));

    let moka = moka::sync::Cache::builder().max_capacity(1 << 20).time_to_live(TTL).build();
    p99(c, "moka", || moka.get_with(KEY, load));
}

criterion_group!(benches, cache_refresh);
criterion_main!(benches);
