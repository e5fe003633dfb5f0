//! Redis stopped for a few seconds and started again while tasks run commands. Its own test
//! binary, so no other test sees the outage.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use connpool::redis::RedisManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_rides_out_a_restart() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let manager = RedisManager::new(&url).unwrap();
    common::restart::scenario(manager, "REDIS_STOP_CMD", "REDIS_START_CMD", |mut conn| async move {
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut *conn);
        let result = match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(result) => result.map(drop).map_err(|error| error.to_string()),
            Err(_) => Err("PING timed out".to_owned()),
        };
        if result.is_err() {
            conn.mark_broken();
        }
        result
    })
    .await;
}
