//! `alloctrack-overhead` under the global allocator `ours-over-mimalloc`.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: alloctrack::Tracking<mimalloc::MiMalloc> = alloctrack::Tracking::mimalloc();

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "ours-over-mimalloc");
}

criterion_group!(benches, bench);
criterion_main!(benches);
