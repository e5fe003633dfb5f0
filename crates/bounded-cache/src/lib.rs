#![doc = include_str!("../README.md")]
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `bytes` | yes | [`Weigh`] for `bytes::Bytes` and `BytesMut` |
//! | `redis` | no | `tier::TieredCache`: Redis as a shared second tier, through `connpool` |
//! | `redis-rustls` | no | the tier over TLS (`rediss://`) |
//! | `metrics` | no | `Stats::publish`: the statistics as `metrics` series labelled with the cache's name |
//!
//! # Memory cost per entry
//!
//! Every entry weighs `heap bytes of key and value + entry overhead`, and the budget bounds the sum.
//! The overhead ([`Cache::entry_overhead`]) is an upper bound of what the cache itself spends:
//!
//! ```text
//! node:   size_of::<K>() + size_of::<V>() + 32 (weight, expiry, two u32 links, 32 bits of hash,
//!         a version, two policy bytes),
//!         rounded up to the alignment of the node
//! index:  12 (a u32 slot and a control byte, at hashbrown's lowest load factor, 7/16)
//! ghost:  5 with Policy::S3Fifo (up to 2.4 two-byte slots per entry)
//! sketch: 5 with Policy::TinyLfu (about 9 four-bit counters per entry)
//! cap:    8 with a time to idle or an Expiry hook (the latest deadline a read may set)
//! ```
//!
//! For `u64` keys and values that is 44 bytes beyond key and value with LRU and 49 with S3-FIFO or
//! W-TinyLFU; measured with a counting allocator on a full cache of a million entries after a
//! million evictions (`cargo run --release -p benches --bin cache-memory`): 42.6, 47.4 and 47.1
//! bytes. Slab pages
//! add at most one part-filled page of 128 nodes per shard, and the policy's table has a floor
//! per shard (the W-TinyLFU sketch 320 bytes, sized for 64 entries; the S3-FIFO ghost 80, sized
//! for 16), so a shard holding fewer entries spends more than the per-entry bound there.
//!
//! # Memory ordering
//!
//! Each shard is a reader-writer lock: lookups share it, writes take it alone, so an insert that
//! returned happens before any later lookup of that key on any thread. A lookup announces itself
//! in its thread's slot of the shard rather than in a shared lock word, so hits on different
//! threads write no common cache line (the design note is in `cell.rs`). With LRU, hits seen
//! under the read lock are replayed in order before the next write (S3-FIFO and W-TinyLFU count
//! a hit on the entry itself, which needs no replay); under
//! contention a hit may be dropped when its thread slot's 14-entry hit buffer is full and the
//! write lock is busy, so LRU is exact on one thread and approximate under contention (eviction
//! order only; values are never affected).
//! Statistics and `weighed_size` are summed from atomics and per-shard counters and are exact when
//! the cache is quiescent.
//!
//! # Invalidation, panics and re-entrancy
//!
//! An invalidation wins over a load in flight: after `remove`, `insert`, `invalidate_if`, `clear`
//! or a shrinking `set_budget` has returned, no load that started before it stores its value, and
//! no caller arriving later receives that value (the callers that were already waiting for it do).
//! User code (the eviction listener, `invalidate_if`'s predicate, loaders, weighers, `Hash`, and
//! the drop of entries, `Expiry::expire_after_write`) runs with no lock held and may call the
//! cache; only `Eq` (in lookups), `Clone` (of values read) and `Expiry::expire_after_read` run
//! under a shard's lock. Whatever user code panics, the weighed size
//! stays equal to the weight of the entries present and the cache stays usable; a panicking
//! listener is counted in [`Stats::listener_panics`] and the next notification goes ahead. See the
//! `Implementation details` of the crate's `cell`, `budget` and `load` modules.

#![cfg_attr(docsrs, feature(doc_cfg))]
// Feature badges on docs.rs; the test-only cfgs (loom models, fuzzing) are not part of the API.
#![cfg_attr(docsrs, doc(auto_cfg(hide(bounded_cache_loom, fuzzing))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod budget;
mod builder;
mod cache;
mod cell;
mod climber;
mod clock;
mod compute;
#[cfg(feature = "serde")]
mod config;
mod error;
mod expiry;
mod iter;
#[cfg(bounded_cache_loom)]
#[doc(hidden)]
pub mod load;
#[cfg(not(bounded_cache_loom))]
mod load;
mod policy;
mod refresh;
mod shard;
mod sketch;
mod slab;
mod stats;
mod sync;
#[cfg(feature = "redis")]
pub mod tier;
mod weigh;

pub use builder::{CacheBuilder, DefaultHashBuilder, MAX_SHARDS};
pub use cache::Cache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use compute::{Compute, Computed};
#[cfg(feature = "serde")]
pub use config::CacheConfig;
pub use error::{ConfigError, InsertError, InsertErrorKind, LoadError, UnknownPolicy};
pub use expiry::Expiry;
pub use iter::Iter;
pub use policy::Policy;
pub use refresh::Refresh;
pub use stats::{RemovalCause, Stats};
pub use weigh::{DefaultWeigher, UnitWeigher, Weigh, Weigher};
