#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod config;
mod conn;
mod core;
mod engine;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod leak;
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
pub use builder::Builder;
pub use config::{Config, Profile};
pub use conn::Conn;
pub use error::{BuildError, CloseError, ConfigError, ConnectError, PoolError};
pub use manager::Manager;
pub use metrics::{Closed, Metrics, Status};
pub use pool::Pool;

/// The pool's state machine, exposed for the loom models in `tests/loom.rs`.
#[cfg(connpool_loom)]
#[doc(hidden)]
pub mod loom_core {
    pub use crate::core::{Checkout, Core, Followup, Grant, Limits, Pooled};
}
