//! Code the bench binaries share, compiled once in this library so that every binary runs the
//! same machine code.

pub mod alloc_workload;
pub mod cache_peers;
