#![doc = include_str!("../README.md")]
//!
//! # Memory cost per entry
//!
//! Every entry weighs `heap bytes of key and value + entry overhead`, and the budget bounds the sum.
//! The overhead ([`Cache::entry_overhead`]) is
//!
//! ```text
//! size_of::<K>() + size_of::<V>() + 26 (node: weight, expiry, 2 links, 2 policy bytes; padded to 8)
//!   + 12 (index: a u32 and a control byte at hashbrown's worst load factor, 7/16)
//!   + 8 with Policy::S3Fifo (the ghost's fingerprints)
//! ```
//!
//! so 48 bytes beyond key and value for LRU (56 for S3-FIFO), with the node padding included. Slab
//! pages add at most one part-filled page of 128 nodes per shard. The measured figure (bytes the
//! cache allocates per entry beyond what keys and values own) is in BENCHMARKS.md.
//!
//! # Memory ordering
//!
//! Each shard is a mutex: an insert that returned happens before any later lookup of that key on
//! any thread. Statistics and `weighed_size` are summed from atomics and per-shard counters and are
//! exact when the cache is quiescent.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `bytes` | yes | [`Weigh`] for `bytes::Bytes` and `BytesMut` |

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod builder;
mod cache;
mod error;
#[cfg(bounded_cache_loom)]
#[doc(hidden)]
pub mod load;
#[cfg(not(bounded_cache_loom))]
mod load;
mod policy;
mod shard;
mod slab;
mod stats;
mod sync;
mod weigh;

pub use builder::{CacheBuilder, DefaultHashBuilder, MAX_SHARDS};
pub use cache::{Cache, Iter};
pub use error::{ConfigError, TooHeavy};
pub use policy::Policy;
pub use stats::{RemovalCause, Stats};
pub use weigh::{DefaultWeigher, UnitWeigher, Weigh, Weigher};
