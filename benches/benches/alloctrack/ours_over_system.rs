//! `alloctrack-overhead` under the global allocator `ours-over-system`.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system();

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "ours-over-system");
}

criterion_group!(benches, bench);
criterion_main!(benches);
