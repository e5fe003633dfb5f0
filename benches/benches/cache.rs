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

use benches::cache_peers::{CAPACITY, CAPACITY_90, DRAWS, INSERT_EVERY, draws, filled, implementations};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::time_threads;

fn zipf(c: &mut Criterion, group: &str, capacity: u64, insert_every: Option<usize>) {
    let keys: Vec<Vec<u64>> = (0..2).map(draws).collect();
    let mut group = c.benchmark_group(group);
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        for (name, make) in implementations() {
            let cache = filled(make, capacity);
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
    zipf(c, "cache-zipf-mixed", CAPACITY, Some(INSERT_EVERY));
}

fn read_90(c: &mut Criterion) {
    zipf(c, "cache-zipf-read-90", CAPACITY_90, None);
}

criterion_group!(benches, read, mixed, read_90);
criterion_main!(benches);
