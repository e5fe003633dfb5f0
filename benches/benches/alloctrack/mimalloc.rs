//! `alloctrack-overhead` under the global allocator `mimalloc`.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "mimalloc");
}

criterion_group!(benches, bench);
criterion_main!(benches);
