//! PostgreSQL stopped for a few seconds and started again while tasks run queries. Its own
//! test binary: cargo runs test binaries one after another, so no other test sees the outage.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use connpool::postgres::PgManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_rides_out_a_restart() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let manager = PgManager::new(&url).unwrap();
    common::restart::scenario(manager, "PG_STOP_CMD", "PG_START_CMD", |mut conn| async move {
        let result = match tokio::time::timeout(Duration::from_secs(1), conn.query_one("SELECT 1", &[])).await
        {
            Ok(result) => result.map(drop).map_err(|error| error.to_string()),
            Err(_) => Err("query timed out".to_owned()),
        };
        if result.is_err() {
            conn.mark_broken();
        }
        result
    })
    .await;
}
