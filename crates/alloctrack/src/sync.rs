//! Atomics for the registry: std's, or loom's under `--cfg alloctrack_loom`.

#[cfg(not(alloctrack_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

#[cfg(alloctrack_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
