//! `bounded-cache` against moka, quick_cache, TinyUFO (fast and compact) and lru (behind a mutex).
//!
//! - `cache-zipf-read`: every operation is a get; keys drawn Zipf(1.0) from 1,000,000; the cache
//!   holds 100,000 entries (about 10% of the keys), filled beforehand with the 100,000 most popular.
//! - `cache-zipf-mixed`: the same, with 10% of the operations inserting the drawn key instead.
//! - `cache-zipf-read-90`: all gets again, with a cache of 250,000 entries (filled with the most
//!   popular), which about 90% of the draws hit: a larger table, and fewer misses to hide the
//!   cost of a hit.
//!
//! The parameter is the thread count; each thread replays its own pre-drawn key sequence, and the
//! threads start together at a barrier outside the timed region.

mod support;

use std::hint::black_box;
use std::num::NonZeroUsize;

use bounded_cache::{Cache, Policy};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use support::time_threads;

const KEYS: u64 = 1_000_000;
const CAPACITY: u64 = 100_000;
/// The capacity of `cache-zipf-read-90`: the 250,000 most popular of Zipf(1.0) over 1,000,000
/// keys take H(250,000) / H(1,000,000) = 90.4% of the draws, the hit ratio of a cache that would
/// keep exactly them.
const CAPACITY_90: u64 = 250_000;
/// Keys drawn per thread, replayed cyclically.
const DRAWS: usize = 1 << 20;

trait Bench: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

impl Bench for Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        let _ = Cache::insert(self, key, value);
    }
}

impl Bench for moka::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
}

impl Bench for quick_cache::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl Bench for tinyufo::TinyUfo<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        tinyufo::TinyUfo::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.put(key, value, 1);
    }
}

impl Bench for parking_lot::Mutex<lru::LruCache<u64, u64>> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.lock().get(&key).copied()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.lock().put(key, value);
    }
}

fn ours(policy: Policy, capacity: u64) -> Box<dyn Bench> {
    // A byte budget that holds `capacity` entries of (u64, u64).
    let probe: Cache<u64, u64> = Cache::builder(1 << 20).policy(policy).build().unwrap();
    let budget = capacity * probe.weigh(&0, &0);
    Box::new(Cache::<u64, u64>::builder(budget).policy(policy).build().unwrap())
}

/// A named constructor of a cache under test, given its capacity in entries.
type Make = (&'static str, fn(u64) -> Box<dyn Bench>);

fn implementations() -> Vec<Make> {
    vec![
        ("ours", |n| ours(Policy::Lru, n)),
        ("ours-s3fifo", |n| ours(Policy::S3Fifo, n)),
        ("ours-wtinylfu", |n| ours(Policy::TinyLfu, n)),
        ("moka", |n| Box::new(moka::sync::Cache::<u64, u64>::new(n))),
        ("quick_cache", |n| Box::new(quick_cache::sync::Cache::<u64, u64>::new(n as usize))),
        ("tinyufo", |n| Box::new(tinyufo::TinyUfo::<u64, u64>::new(n as usize, n as usize))),
        ("tinyufo-compact", |n| Box::new(tinyufo::TinyUfo::<u64, u64>::new_compact(n as usize, n as usize))),
        ("lru", |n| {
            Box::new(parking_lot::Mutex::new(lru::LruCache::new(NonZeroUsize::new(n as usize).unwrap())))
        }),
    ]
}

fn draws(seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(KEYS as f64, 1.0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..DRAWS).map(|_| zipf.sample(&mut rng) as u64).collect()
}

fn zipf(c: &mut Criterion, group: &str, capacity: u64, insert_every: Option<usize>) {
    let keys: Vec<Vec<u64>> = (0..2).map(draws).collect();
    let mut group = c.benchmark_group(group);
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        for (name, make) in implementations() {
            let cache = make(capacity);
            for k in (1..=capacity).rev() {
                cache.insert(k, k);
            }
            let mut offset = 0usize;
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| {
                    let start = offset;
                    offset = offset.wrapping_add(iters as usize);
                    time_threads(threads, |t| {
                        let keys = &keys[t];
                        for i in 0..iters as usize {
                            let n = start.wrapping_add(i);
                            let key = keys[n % DRAWS];
                            match insert_every {
                                Some(every) if n % every == 0 => cache.insert(key, key),
                                _ => {
                                    black_box(cache.get(key));
                                }
                            }
                        }
                    })
                });
            });
        }
    }
}

fn read(c: &mut Criterion) {
    zipf(c, "cache-zipf-read", CAPACITY, None);
}

fn mixed(c: &mut Criterion) {
    zipf(c, "cache-zipf-mixed", CAPACITY, Some(10));
}

fn read_90(c: &mut Criterion) {
    zipf(c, "cache-zipf-read-90", CAPACITY_90, None);
}

criterion_group!(benches, read, mixed, read_90);
criterion_main!(benches);
