//! `alloctrack-overhead` under the global allocator `system`.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "system");
}

criterion_group!(benches, bench);
criterion_main!(benches);
