//! `alloctrack-overhead` under the global allocator `stats_alloc`.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "stats_alloc");
}

criterion_group!(benches, bench);
criterion_main!(benches);
