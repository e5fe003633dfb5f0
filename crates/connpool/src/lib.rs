#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]

mod backoff;
mod config;
mod conn;
mod core;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod maintenance;
mod manager;
mod metrics;
mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sim;
mod sync;

pub use backoff::RetryPolicy;
pub use config::{Config, Profile};
pub use conn::Conn;
pub use error::{BuildError, ConfigError, ConnectError, PoolError};
pub use manager::Manager;
pub use metrics::{Closed, Metrics, Status};
pub use pool::{Builder, Pool};

/// The pool's state machine, exposed for the loom models in `tests/loom.rs`.
#[cfg(connpool_loom)]
#[doc(hidden)]
pub mod loom_core {
    pub use crate::core::{Checkout, Core, Grant, Limits, Pooled};
}
