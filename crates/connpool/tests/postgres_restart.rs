//! PostgreSQL stopped for a few seconds and started again while tasks run queries. Its own
//! test binary: cargo runs test binaries one after another, so no other test sees the outage.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use connpool::Pool;
use connpool::postgres::PgManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_rides_out_a_restart() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let (Some(stop), Some(start)) = (common::require_env("PG_STOP_CMD"), common::require_env("PG_START_CMD"))
    else {
        return;
    };
    let config = common::restart::config();
    let pool = Pool::builder(PgManager::new(&url).unwrap()).config(config).build().await.unwrap();
    let requests = pool.clone();
    let (outcomes, went_down, back) = common::restart::run(
        8,
        Duration::from_secs(8),
        Duration::from_secs(1),
        Duration::from_secs(3),
        stop,
        start,
        move || {
            let pool = requests.clone();
            async move {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                match tokio::time::timeout(Duration::from_secs(1), conn.query_one("SELECT 1", &[])).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => {
                        conn.mark_broken();
                        Err(error.to_string())
                    }
                    Err(_) => {
                        conn.mark_broken();
                        Err("query timed out".to_owned())
                    }
                }
            }
        },
    )
    .await;
    // A checkout waits at most 1 s and a query 1 s.
    common::restart::check(&outcomes, went_down, back, Duration::from_millis(2500));
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    println!("{}", pool.metrics());
}
