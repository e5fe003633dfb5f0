//! The `alloctrack-overhead` workload: many small `Vec`, `String` and `Box` allocations and
//! frees, and building a `BTreeMap`.
//!
//! It lives here, not in each bench binary, because a binary's global allocator changes how the
//! code around allocations is compiled: the allocator functions are generated in the binary's
//! crate, where the optimizer may inline them into the workload and then inline (or not) the
//! `BTreeMap` code around them differently, or elide a `Box` it can see is short-lived. Measured
//! that way, two allocators compared ran different workload code, a difference of up to 10%
//! that had nothing to do with the allocators. Compiled once here, the workload calls the
//! allocator through its symbol in every binary, and every allocation is `black_box`ed.

use std::collections::BTreeMap;
use std::hint::black_box;

/// Keys per round.
pub const KEYS: u64 = 256;

/// Allocations per round: a Vec, a String and a Box per key, and the lookup keys of the
/// removals (the map's nodes come on top).
pub const ALLOCATIONS_PER_ROUND: u64 = KEYS * 3 + KEYS / 2;

/// One round of the workload; returns a checksum so nothing is optimised away.
#[inline(never)]
pub fn workload() -> usize {
    let mut map = BTreeMap::new();
    let mut total = 0;
    for i in 0..KEYS {
        let digits: Vec<u64> = black_box((0..1 + i % 16).collect());
        let key = black_box(format!("key-{i:04}"));
        let boxed = black_box(Box::new([i; 4]));
        total += digits.len() + key.len() + boxed[3] as usize;
        map.insert(key, digits);
    }
    for i in (0..KEYS).step_by(2) {
        map.remove(&black_box(format!("key-{i:04}")));
    }
    total + black_box(&map).len()
}
