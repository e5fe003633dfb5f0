//! `alloctrack-overhead` under the global allocator `ours-sampled-over-mimalloc`: counting and
//! sampled allocation sites at the default interval.

use criterion::{criterion_group, criterion_main};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: alloctrack::Tracking<mimalloc::MiMalloc> = alloctrack::Tracking::mimalloc().with_sampling();

fn bench(c: &mut criterion::Criterion) {
    workload::bench(c, "ours-sampled-over-mimalloc");
    // The sampler did run: a profile of what the bench allocated has sites.
    assert!(alloctrack::sampling::profile().stats().samples > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
