//! The `alloctrack-overhead` workload, shared by one bench binary per global allocator (a
//! binary has one global allocator; cargo builds each binary with its own).
//!
//! Many small `Vec`, `String` and `Box` allocations and frees, and building a `BTreeMap`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};

const KEYS: u64 = 256;

/// One round of the workload; returns a checksum so nothing is optimised away.
pub(crate) fn workload() -> usize {
    let mut map = BTreeMap::new();
    let mut total = 0;
    for i in 0..KEYS {
        let digits: Vec<u64> = (0..1 + i % 16).collect();
        let key = format!("key-{i:04}");
        let boxed = Box::new([i; 4]);
        total += digits.len() + key.len() + boxed[3] as usize;
        map.insert(key, digits);
    }
    for i in (0..KEYS).step_by(2) {
        map.remove(&format!("key-{i:04}"));
    }
    total + black_box(&map).len()
}

/// Benchmarks the workload under the binary's global allocator, named `implementation`.
pub(crate) fn bench(c: &mut Criterion, implementation: &str) {
    let mut group = c.benchmark_group("alloctrack-overhead");
    // Allocations per round: a Vec, a String and a Box per key, the map's nodes, and the
    // lookup keys of the removals.
    group.throughput(Throughput::Elements(KEYS * 3 + KEYS / 2));
    group.bench_function(BenchmarkId::new(implementation, "mixed"), |b| b.iter(workload));
    group.finish();
}
