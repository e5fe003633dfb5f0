//! Measures each cache's memory per entry with a counting global allocator (alloctrack): a cache
//! sized for N entries of `(u64, u64)` is given 2N distinct keys (so that it has evicted N, and any
//! eviction history is full); the bytes the process then holds, divided by the entries present, less
//! the 16 bytes of key and value, is the overhead per entry.
//!
//! ```text
//! cargo run --release -p benches --bin cache-memory [-- N]
//! ```

use std::num::NonZeroUsize;

use bounded_cache::{Cache, Policy};

alloctrack::global_allocator!();

fn live() -> u64 {
    alloctrack::snapshot().live_bytes
}

/// Builds a cache, fills it with `n` entries and reports the bytes per entry beyond key and value.
fn measure<C>(
    name: &str,
    n: u64,
    build: impl FnOnce() -> C,
    insert: impl Fn(&C, u64),
    len: impl Fn(&C) -> u64,
) {
    let before = live();
    let cache = build();
    for k in 0..2 * n {
        insert(&cache, k);
    }
    let held = live() - before;
    let entries = len(&cache);
    let per_entry = held as f64 / entries as f64;
    println!("| {name} | {entries} | {held} | {per_entry:.1} | {:.1} |", per_entry - 16.0);
    drop(cache);
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    println!("{} distinct (u64, u64) entries inserted into caches sized for {n}\n", 2 * n);
    println!("| implementation | entries | bytes held | bytes per entry | beyond key and value |");
    println!("|---|---|---|---|---|");
    for (name, policy) in [
        ("ours (W-TinyLFU, the default)", Policy::TinyLfu),
        ("ours (S3-FIFO)", Policy::S3Fifo),
        ("ours (LRU)", Policy::Lru),
    ] {
        measure(
            name,
            n,
            || {
                let probe: Cache<u64, u64> = Cache::builder(1 << 20).policy(policy).build().unwrap();
                Cache::<u64, u64>::builder(n * probe.weigh(&0, &0)).policy(policy).build().unwrap()
            },
            |c, k| c.insert(k, k).unwrap(),
            |c| c.len() as u64,
        );
    }
    measure(
        "moka",
        n,
        || moka::sync::Cache::<u64, u64>::new(n),
        |c, k| c.insert(k, k),
        |c| {
            c.run_pending_tasks();
            c.entry_count()
        },
    );
    measure(
        "quick_cache",
        n,
        || quick_cache::sync::Cache::<u64, u64>::new(n as usize),
        |c, k| c.insert(k, k),
        |c| c.len() as u64,
    );
    for (name, compact) in [("tinyufo", false), ("tinyufo-compact", true)] {
        measure(
            name,
            n,
            || {
                let n = n as usize;
                if compact {
                    tinyufo::TinyUfo::<u64, u64>::new_compact(n, n)
                } else {
                    tinyufo::TinyUfo::new(n, n)
                }
            },
            |c, k| {
                c.put(k, k, 1);
            },
            // TinyUFO keeps no count: the keys it still holds.
            |c| (0..2 * n).filter(|k| c.get(k).is_some()).count() as u64,
        );
    }
    measure(
        "lru",
        n,
        || std::cell::RefCell::new(lru::LruCache::<u64, u64>::new(NonZeroUsize::new(n as usize).unwrap())),
        |c, k| {
            c.borrow_mut().put(k, k);
        },
        |c| c.borrow().len() as u64,
    );
}
