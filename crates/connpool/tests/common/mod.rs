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

/// The value of environment variable `name` (a server URL or a control command that
/// `scripts/servers.sh` exports). Without it the test is skipped with a printed reason, except
/// under CI (`CI` set), where a missing server is a failure.
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "{name} is not set: CI must run the tests through scripts/test.sh, which starts the servers"
            )
        }
        _ => {
            eprintln!("skipped: {name} is not set (run through scripts/servers.sh to start the servers)");
            None
        }
    }
}

/// Runs a server control command exported by `scripts/servers.sh` and checks it succeeded.
pub fn run_control(command: &str) {
    let status = std::process::Command::new(command).status().expect("running a server control command");
    assert!(status.success(), "{command} failed: {status}");
}

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
