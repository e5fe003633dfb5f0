//! Fixtures shared by the test binaries (`mod common;`).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

#[allow(dead_code)]
pub mod restart;

use connpool::sim::SimManager;
use connpool::{Config, Pool, RetryPolicy};

/// A small pool config for tests: every timer explicit, no background surprises.
pub fn config(min_size: usize, max_size: usize) -> Config {
    let mut config = Config::default();
    config.min_size = min_size;
    config.max_size = max_size;
    config.checkout_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config.retry = RetryPolicy::None;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.lifetime_jitter = Duration::ZERO;
    config.health_check_interval = None;
    config.maintenance_interval = Duration::from_millis(100);
    config
}

pub async fn pool(manager: &SimManager, config: Config) -> Pool<SimManager> {
    Pool::builder(manager.clone()).config(config).build().await.expect("pool builds")
}

/// Lets spawned tasks run (connection attempts, maintenance) under a paused clock.
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[allow(unused_imports)]
pub use testkit::{require_env, run_control, run_control_with};

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback server that accepts connections and never answers; returns its address.
pub async fn silent_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}
