//! The PostgreSQL manager against the real server that `scripts/servers.sh` starts.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use connpool::postgres::PgManager;
use connpool::{Config, ConnectError, Pool, PoolError};

fn config(min: usize, max: usize) -> Config {
    let mut config = common::config(min, max);
    config.checkout_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_storm_gives_correct_results_and_leaks_nothing() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let pool = Pool::builder(PgManager::new(&url).unwrap()).config(config(2, 8)).build().await.unwrap();
    let tasks: Vec<_> = (0..64i32)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..10i32 {
                    let conn = pool.get().await.unwrap();
                    let row = conn.query_one("SELECT $1::int4 * 1000 + $2::int4", &[&t, &i]).await.unwrap();
                    assert_eq!(row.get::<_, i32>(0), t * 1000 + i);
                    let status = pool.status();
                    assert!(status.size <= 8, "{status}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    assert!(status.size <= 8 && status.size >= 2, "{status}");
    assert_eq!(pool.metrics().checkouts, 640);
}

#[tokio::test]
async fn validation_and_broken_detection_use_the_real_client() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let mut config = config(1, 2);
    config.pre_ping = true;
    config.pre_ping_skip_within = Duration::from_millis(1);
    let pool = Pool::builder(PgManager::new(&url).unwrap()).config(config).build().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let victim = pool.get().await.unwrap();
    let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // Kill that backend from another connection: pre-ping or the closed client must be
    // noticed, and the connection replaced.
    let killer = pool.get().await.unwrap();
    killer.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    drop(killer);
    drop(victim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let conn = pool.get().await.unwrap();
        let row = conn.query_one("SELECT 1", &[]).await.expect("every checked-out connection works");
        assert_eq!(row.get::<_, i32>(0), 1);
    }
    let metrics = pool.metrics();
    assert!(metrics.closed.failed_validation + metrics.closed.broken >= 1, "{metrics}");
}

#[tokio::test]
async fn a_refused_connection_times_out_naming_the_error() {
    let port = common::closed_port();
    let manager = PgManager::new(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).unwrap();
    let mut config = config(0, 2);
    config.fail_fast = false;
    config.checkout_timeout = Duration::from_millis(800);
    let pool = Pool::builder(manager).config(config).build().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let PoolError::Timeout { last_error: Some(last), .. } = &err else { panic!("{err}") };
    assert!(matches!(**last, ConnectError::Backend(_)));
    let text = err.to_string();
    assert!(text.contains("timed out after") && text.to_lowercase().contains("connect"), "{text}");
}

#[tokio::test]
async fn a_stalled_server_is_caught_by_the_connect_timeout() {
    let addr = common::silent_server().await;
    let manager = PgManager::new(&format!("postgres://postgres@{addr}/postgres")).unwrap();
    let mut config = config(0, 1);
    config.connect_timeout = Duration::from_millis(300);
    let pool = Pool::builder(manager).config(config).build().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    let PoolError::Connect(error) = &err else { panic!("{err}") };
    assert!(matches!(**error, ConnectError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
}
