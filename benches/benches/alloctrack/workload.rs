//! The `alloctrack-overhead` bench, shared by one bench binary per global allocator (a binary
//! has one global allocator; cargo builds each binary with its own). The workload itself is
//! compiled once, in the benches library: see `benches::alloc_workload`.

use criterion::{BenchmarkId, Criterion, Throughput};

/// Benchmarks the workload under the binary's global allocator, named `implementation`.
pub(crate) fn bench(c: &mut Criterion, implementation: &str) {
    let mut group = c.benchmark_group("alloctrack-overhead");
    group.throughput(Throughput::Elements(benches::alloc_workload::ALLOCATIONS_PER_ROUND));
    group.bench_function(BenchmarkId::new(implementation, "mixed"), |b| {
        b.iter(benches::alloc_workload::workload)
    });
    group.finish();
}
