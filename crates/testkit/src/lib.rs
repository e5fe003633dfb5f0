//! Fixtures shared by the workspace's integration tests: the servers that `scripts/servers.sh`
//! starts, found through the environment variables it exports; a TCP proxy that can blackhole
//! the traffic between a client and a server; an OS pipe, for the tests of readers that cannot
//! seek; and the check every crate's error types are held to.
//!
//! The Redis and proxy helpers need tokio and the redis crate: feature `servers` (on by
//! default). The Miri builds take the crate without it.

#[cfg(feature = "servers")]
mod cluster;
mod errors;
mod pipe;
#[cfg(feature = "servers")]
mod proxy;
mod servers;

#[cfg(feature = "servers")]
pub use cluster::{redis_cluster_master, redis_shutdown};
pub use errors::{Caused, assert_error_chain, error_chain, report};
pub use pipe::pipe;
#[cfg(feature = "servers")]
pub use proxy::FreezableProxy;
pub use servers::{require_env, run_control, run_control_with};
