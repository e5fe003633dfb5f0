#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Feature badges on docs.rs; the test-only cfgs (loom models, fuzzing) are not part of the API.
#![cfg_attr(docsrs, doc(auto_cfg(hide(connpool_loom))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod config;
mod conn;
mod core;
mod credentials;
mod engine;
mod error;
mod hooks;
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
#[cfg(feature = "rustls")]
mod tls;

pub use backoff::RetryPolicy;
pub use builder::Builder;
pub use config::{Config, Profile};
pub use conn::Conn;
pub use credentials::{CredentialProvider, Credentials, CredentialsFuture, Secret, redact_url};
pub use error::{BuildError, CloseError, ConfigError, ConnectError, PoolError};
pub use hooks::{BoxError, Hook, HookError, HookFuture, HookStage};
pub use manager::Manager;
pub use metrics::{Closed, Metrics, Status};
pub use pool::Pool;
#[cfg(feature = "rustls")]
pub use tls::{TlsError, tls_client_config, tls_native_roots, tls_roots};

/// The pool's state machine, exposed for the loom models in `tests/loom.rs`.
#[cfg(connpool_loom)]
#[doc(hidden)]
pub mod loom_core {
    pub use crate::core::{Checkout, Core, Followup, Grant, Limits, Pooled};
}
