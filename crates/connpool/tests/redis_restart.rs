//! Redis stopped for a few seconds and started again while tasks run commands. Its own test
//! binary, so no other test sees the outage.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use connpool::Pool;
use connpool::redis::RedisManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_rides_out_a_restart() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let (Some(stop), Some(start)) =
        (common::require_env("REDIS_STOP_CMD"), common::require_env("REDIS_START_CMD"))
    else {
        return;
    };
    let config = common::restart::config();
    let pool = Pool::builder(RedisManager::new(&url).unwrap()).config(config).build().await.unwrap();
    let requests = pool.clone();
    let (outcomes, went_down, back) = common::restart::run(
        8,
        Duration::from_secs(7),
        Duration::from_secs(1),
        Duration::from_secs(3),
        stop,
        start,
        move || {
            let pool = requests.clone();
            async move {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                let reply = tokio::time::timeout(
                    Duration::from_secs(1),
                    redis::cmd("PING").query_async::<String>(&mut *conn),
                )
                .await;
                match reply {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => {
                        conn.mark_broken();
                        Err("PING timed out".to_owned())
                    }
                }
            }
        },
    )
    .await;
    common::restart::check(&outcomes, went_down, back, Duration::from_millis(2500));
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    println!("{}", pool.metrics());
}
