//! `alloctrack-overhead` under the global allocator `tracking-allocator`, with a tracker that
//! counts allocations and bytes (what `Tracking` does) in relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main};
use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker, Allocator};

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: Allocator<std::alloc::System> = Allocator::system();

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

struct Counting;

impl AllocationTracker for Counting {
    fn allocated(&self, _addr: usize, object_size: usize, _wrapped_size: usize, _group: AllocationGroupId) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(object_size as u64, Ordering::Relaxed);
    }

    fn deallocated(
        &self,
        _addr: usize,
        object_size: usize,
        _wrapped_size: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
        BYTES.fetch_sub(object_size as u64, Ordering::Relaxed);
    }
}

fn bench(c: &mut criterion::Criterion) {
    AllocationRegistry::set_global_tracker(Counting).expect("no tracker set before");
    AllocationRegistry::enable_tracking();
    workload::bench(c, "tracking-allocator");
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > 0, "the tracker saw the allocations");
}

criterion_group!(benches, bench);
criterion_main!(benches);
