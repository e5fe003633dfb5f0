#![doc = include_str!("../README.md")]
//!
//! # Memory
//!
//! At most [`Config::max_chunks_in_memory`] = `workers + buffer` chunks exist at once, each at most
//! [`Config::max_chunk_bytes`] (`chunk_size`, or the longest record plus one if larger), whatever
//! the file size: chunk memory is bounded by `(workers + buffer) x max_chunk_bytes`. The results
//! waiting to be handed out in order count among those chunks, so a slow chunk holds the reader
//! back rather than letting results pile up. Read buffers come from an `objpool` buffer pool and are
//! reused: the steady state allocates no buffer per chunk.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `async` | yes | [`Processor::stream`]: results as a `futures_core::Stream` (tokio's `mpsc` underneath) |
//! | `compression` | no | `Config::decompress`: gzip (`flate2`) and zstd inputs decoded on the way in |
//! | `rayon` | no | `Config::thread_pool`: the workers as jobs on a shared `rayon` pool |
//! | `cli` | no | the `streamproc` command-line tool (`lines`, `grep`, `checksum`, `stats`, `gen`); implies `compression` |

#![cfg_attr(docsrs, feature(doc_cfg))]
// Feature badges on docs.rs; the test-only cfgs (loom models, fuzzing) are not part of the API.
#![cfg_attr(docsrs, doc(auto_cfg(hide(fuzzing))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod chunk;
mod config;
#[cfg(feature = "compression")]
mod decode;
mod engine;
mod error;
mod input;
mod pipeline;
mod reader;
pub mod split;
#[cfg(feature = "async")]
mod stream;

pub use chunk::Chunk;
pub use config::{Config, MAX_WINDOW, Progress, Split};
pub use engine::{Processed, Processor};
pub use error::{ConfigError, Error};
pub use input::Input;
pub use pipeline::Results;
#[cfg(feature = "async")]
pub use stream::ChunkStream;
