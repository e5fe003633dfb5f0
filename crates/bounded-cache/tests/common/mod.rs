//! Fixtures for the Redis-tier tests (`mod common;`).
#![allow(dead_code, unused_imports, unreachable_pub)]

use std::time::Duration;

use bounded_cache::tier::{TieredBuilder, TieredCache};
use connpool::Pool;
use connpool::redis::RedisManager;

pub use testkit::{require_env, run_control};

/// A pool on the test Redis.
pub async fn pool(url: &str) -> Pool<RedisManager> {
    pool_for(RedisManager::new(url).expect("a valid URL"))
}

/// A pool over `manager` (a cluster, Sentinel or TLS deployment).
pub fn pool_for(manager: RedisManager) -> Pool<RedisManager> {
    Pool::builder(manager)
        .configure(|c| {
            c.min_size = 0;
            c.max_size = 8;
            c.connect_timeout = Duration::from_millis(500);
            c.checkout_timeout = Duration::from_secs(1);
            c.retry = connpool::RetryPolicy::None;
        })
        .build_lazy()
        .expect("pool builds")
}

/// A namespace no other test run uses.
pub fn namespace(test: &str) -> String {
    format!("test-{test}-{}-{}", std::process::id(), fastrand::u32(..))
}

pub fn builder<V: bounded_cache::Weigh + 'static>(
    pool: Pool<RedisManager>,
    prefix: &str,
) -> TieredBuilder<V> {
    TieredCache::builder(pool, prefix, 1).l1_budget(16 << 20).l2_timeout(Duration::from_millis(500))
}

/// Heartbeat settings short enough for tests of a lost subscription.
pub const HEARTBEAT: Duration = Duration::from_millis(200);
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(300);

/// An instance on `pool` with the tests' heartbeat and the given L2 timeout.
pub async fn instance(pool: Pool<RedisManager>, ns: &str, l2_timeout: Duration) -> TieredCache<String> {
    builder(pool, ns).l2_timeout(l2_timeout).heartbeat(HEARTBEAT, HEARTBEAT_TIMEOUT).build().await.unwrap()
}

/// A loader that returns `v`.
pub fn value(v: &str) -> impl FnOnce() -> std::future::Ready<Result<String, std::io::Error>> {
    let v = v.to_string();
    move || std::future::ready(Ok(v))
}

/// Waits up to `within` for `condition`; returns how long it took.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < within {
        if condition() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Waits up to `within` for the async `condition`; returns how long it took.
pub async fn eventually_async<F, Fut>(within: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while start.elapsed() < within {
        if condition().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
