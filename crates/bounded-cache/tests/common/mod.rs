//! Fixtures for the Redis-tier tests (`mod common;`).
#![allow(dead_code, unused_imports, unreachable_pub)]

use std::time::Duration;

use bounded_cache::tier::{TieredBuilder, TieredCache};
use connpool::Pool;
use connpool::redis::RedisManager;

pub use testkit::{require_env, run_control};

/// A pool on the test Redis.
pub async fn pool(url: &str) -> Pool<RedisManager> {
    let manager = RedisManager::new(url).expect("a valid URL");
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

pub fn builder<V>(pool: Pool<RedisManager>, prefix: &str) -> TieredBuilder<V> {
    TieredCache::builder(pool, prefix, 1).l1_budget(16 << 20).l2_timeout(Duration::from_millis(500))
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
