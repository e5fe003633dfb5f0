#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Feature badges on docs.rs; the test-only cfgs (loom models, fuzzing) are not part of the API.
#![cfg_attr(docsrs, doc(auto_cfg(hide(objpool_loom, fuzzing))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod acquire;
#[cfg(feature = "bytes")]
mod buffer;
mod builder;
mod create;
mod error;
mod guard;
mod histogram;
mod pool;
mod reset;
mod shared;
mod slot;
mod stats;
mod sync;
mod waiter;

pub use acquire::Acquire;
#[cfg(feature = "bytes")]
pub use buffer::{BufferPool, BufferPoolBuilder};
pub use builder::{Builder, DEFAULT_MAX_SIZE};
pub use error::{AddError, AddRefused, BoxError, BuildError, GetError, ResizeError, TryGetError};
pub use guard::{Guard, OwnedGuard};
pub use histogram::{WAIT_BUCKETS, WaitHistogram};
pub use pool::Pool;
pub use reset::ResetFuture;
pub use stats::Stats;
