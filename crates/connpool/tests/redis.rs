//! The Redis manager against the real server that `scripts/servers.sh` starts.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use connpool::redis::RedisManager;
use connpool::{Config, Pool, PoolError};

fn config(min: usize, max: usize) -> Config {
    let mut config = common::config(min, max);
    config.checkout_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config.validate_timeout = Duration::from_millis(300);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_storm_gives_correct_results_and_leaks_nothing() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let pool = Pool::builder(RedisManager::new(&url).unwrap()).config(config(2, 8)).build().await.unwrap();
    let key = format!("connpool-storm-{}", std::process::id());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (pool, key) = (pool.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let mut conn = pool.get().await.unwrap();
                    let _: i64 = redis::cmd("INCR").arg(&key).query_async(&mut *conn).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut conn = pool.get().await.unwrap();
    let total: i64 = redis::cmd("GETDEL").arg(&key).query_async(&mut *conn).await.unwrap();
    assert_eq!(total, 640, "every INCR landed once");
    drop(conn);
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    assert!(status.size <= 8, "{status}");
}

#[tokio::test]
async fn a_killed_connection_is_reported_broken_and_replaced() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let pool = Pool::builder(RedisManager::new(&url).unwrap()).config(config(1, 2)).build().await.unwrap();
    let mut victim = pool.get().await.unwrap();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut *victim).await.unwrap();
    {
        let mut killer = pool.get().await.unwrap();
        let _: i64 =
            redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut *killer).await.unwrap();
    }
    let failed: Result<String, _> = redis::cmd("PING").query_async(&mut *victim).await;
    assert!(failed.is_err(), "the killed connection still answered");
    drop(victim);
    assert!(pool.metrics().closed.broken >= 1, "{}", pool.metrics());
    let mut conn = pool.get().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn a_refused_connection_times_out_naming_the_error() {
    let port = common::closed_port();
    let mut config = config(0, 2);
    config.fail_fast = false;
    config.checkout_timeout = Duration::from_millis(800);
    let pool = Pool::builder(RedisManager::new(&format!("redis://127.0.0.1:{port}")).unwrap())
        .config(config)
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let PoolError::Timeout { last_error: Some(_), .. } = &err else { panic!("{err}") };
    assert!(testkit::report(&err).to_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn a_stalled_server_is_caught_by_the_connect_or_validation_timeout() {
    let addr = common::silent_server().await;
    let mut config = config(0, 1);
    config.connect_timeout = Duration::from_millis(300);
    config.checkout_timeout = Duration::from_secs(2);
    config.pre_ping = true;
    config.pre_ping_skip_within = Duration::from_millis(1);
    let pool = Pool::builder(RedisManager::new(&format!("redis://{addr}")).unwrap())
        .config(config)
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    // Either connecting stalls (caught by the connect timeout) or the connection opens and its
    // first validation stalls (caught by the validation timeout); no checkout may hang.
    for _ in 0..2 {
        match pool.get().await {
            Err(PoolError::Connect(_) | PoolError::Timeout { .. }) => {}
            Ok(conn) => {
                drop(conn);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let metrics = pool.metrics();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(metrics.connect_failures + metrics.closed.failed_validation >= 1, "{metrics}");
}
