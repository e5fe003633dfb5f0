//! Every feature of the pool, with tokio's paused clock for the timing ones.

mod common;

use std::time::Duration;

use common::{config, pool, settle};
use connpool::sim::{SimError, SimManager};
use connpool::{BuildError, Config, ConfigError, ConnectError, Pool, PoolError, RetryPolicy};

#[test]
fn profiles_match_the_service_configurations() {
    let api = Config::api();
    assert_eq!((api.min_size, api.max_size), (5, 20));
    assert_eq!(api.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(api.checkout_timeout, Duration::from_secs(5));
    assert_eq!(
        api.retry,
        RetryPolicy::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_retries: 3
        }
    );
    assert_eq!(api.health_check_interval, Some(Duration::from_secs(60)));
    let worker = Config::worker();
    assert_eq!((worker.min_size, worker.max_size, worker.checkout_timeout), (2, 10, Duration::from_secs(10)));
    assert_eq!(worker.retry, RetryPolicy::Linear { delay: Duration::from_secs(1), max_retries: 5 });
    assert_eq!(worker.idle_timeout, Some(Duration::from_secs(600)));
    let realtime = Config::realtime();
    assert_eq!((realtime.min_size, realtime.max_size), (10, 30));
    assert_eq!(
        (realtime.checkout_timeout, realtime.retry, realtime.pre_ping),
        (Duration::from_secs(1), RetryPolicy::None, true)
    );
    // Every profile at full load leaves a stock PostgreSQL (100 connections, 3 reserved for
    // superusers) room for at least three replicas.
    for config in [api, worker, realtime, Config::default()] {
        config.validate().unwrap();
        assert!(3 * config.max_size <= 97, "{config:?}");
    }
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let mut c = Config::default();
    c.min_size = 5;
    c.max_size = 2;
    assert_eq!(c.validate(), Err(ConfigError::MinAboveMax { min_size: 5, max_size: 2 }));
    let mut c = Config::default();
    c.max_size = 0;
    assert_eq!(c.validate(), Err(ConfigError::ZeroMaxSize));
    let mut c = Config::default();
    c.checkout_timeout = Duration::ZERO;
    assert_eq!(c.validate(), Err(ConfigError::Zero("checkout_timeout")));
    assert_eq!(c.validate().unwrap_err().to_string(), "invalid pool configuration: checkout_timeout is 0");
    let mut c = Config::default();
    c.retry = RetryPolicy::Exponential {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(1),
        max_retries: 1,
    };
    assert_eq!(c.validate(), Err(ConfigError::RetryDelays));
}

#[tokio::test]
async fn an_invalid_configuration_fails_the_build() {
    let err = Pool::builder(SimManager::new()).configure(|c| c.min_size = 200).build().await.unwrap_err();
    assert!(matches!(err, BuildError::Config(ConfigError::MinAboveMax { .. })), "{err}");
}

#[tokio::test(start_paused = true)]
async fn build_opens_min_size_and_maintenance_keeps_it() {
    let manager = SimManager::new().connect_latency(Duration::from_millis(10));
    let pool = pool(&manager, config(3, 5)).await;
    assert_eq!((pool.status().size, pool.status().idle), (3, 3));
    // A connection closed as broken is replaced by maintenance.
    let mut conn = pool.get().await.unwrap();
    conn.mark_broken();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.status().size, 3);
    assert_eq!(manager.open(), 3);
}

#[tokio::test(start_paused = true)]
async fn build_fails_with_the_connection_error_when_the_backend_is_down() {
    let manager = SimManager::new();
    manager.set_down(true);
    let err = Pool::builder(manager.clone()).config(config(2, 4)).build().await.unwrap_err();
    let BuildError::Connect(error) = &err else { panic!("{err}") };
    assert!(matches!(**error, ConnectError::Backend(SimError::Refused)));
    assert!(testkit::report(&err).contains("connection refused"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn build_lazy_fills_min_size_in_the_background() {
    let manager = SimManager::new();
    let pool = Pool::builder(manager.clone()).config(config(4, 8)).build_lazy().unwrap();
    assert_eq!(pool.status().size, 0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(pool.status().size, 4);
}

#[tokio::test(start_paused = true)]
async fn connections_are_reused_and_max_size_holds() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(0, 2)).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let (a_id, b_id) = (a.id(), b.id());
    assert_ne!(a_id, b_id);
    let timed_out = pool.get_timeout(Duration::from_millis(50)).await;
    assert!(matches!(timed_out, Err(PoolError::Timeout { .. })));
    drop(a);
    assert_eq!(pool.get().await.unwrap().id(), a_id, "the idle connection is reused");
    drop(b);
    assert_eq!(manager.connects(), 2);
    let metrics = pool.metrics();
    assert_eq!((metrics.created, metrics.timeouts, metrics.checkouts), (2, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_to_represent_waits_without_panicking() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(1, 1)).await;
    let held = pool.get().await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get_timeout(Duration::MAX).await.map(|conn| conn.id()) })
    };
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(pool.status().waiting, 1, "still waiting after an hour");
    let id = held.id();
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), id);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_fifo_order_by_returned_connections() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(1, 1)).await;
    let held = pool.get().await.unwrap();
    let order = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (task_pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let conn = task_pool.get().await.unwrap();
            order.lock().push(i);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(conn);
        }));
        while pool.status().waiting != i + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
    assert_eq!(manager.connects(), 1);
    assert_eq!(pool.metrics().waits, 5);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_says_how_long_the_state_and_the_last_error() {
    let manager = SimManager::new();
    let mut c = config(0, 2);
    c.fail_fast = false;
    let pool = pool(&manager, c).await;
    manager.set_down(true);
    let err = pool.get_timeout(Duration::from_millis(500)).await.unwrap_err();
    let PoolError::Timeout { waited, status, last_error } = &err else { panic!("{err}") };
    assert!(*waited >= Duration::from_millis(500));
    assert_eq!(status.size, 0);
    assert!(matches!(last_error.as_deref(), Some(ConnectError::Backend(SimError::Refused))));
    let text = err.to_string();
    assert!(
        text.starts_with("timed out after 500ms waiting for a connection (pool: 0 open of 2 max"),
        "{text}"
    );
    // The last error is the source, for a reporter to print once.
    let chain = testkit::assert_error_chain(&err, 2);
    assert_eq!(chain[1], "connection refused by the simulated backend");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_reports_the_connection_error_at_once() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(0, 2)).await;
    manager.set_down(true);
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(&err, PoolError::Connect(e) if matches!(**e, ConnectError::Backend(SimError::Refused))),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(10));
    manager.set_down(false);
    assert!(pool.get().await.is_ok(), "the pool recovers by itself");
}

#[tokio::test(start_paused = true)]
async fn failed_connects_are_retried_with_the_policy() {
    let manager = SimManager::new();
    let mut c = config(0, 1);
    c.retry = RetryPolicy::Linear { delay: Duration::from_secs(1), max_retries: 5 };
    c.checkout_timeout = Duration::from_secs(60);
    let pool = pool(&manager, c).await;
    manager.set_down(true);
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Connect(_)));
    assert_eq!(manager.failed_connects(), 6, "one attempt and five retries");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_secs(6),
        "5 retries of 1 s ± 20%: {took:?}"
    );
    assert_eq!(pool.metrics().connect_failures, 6);

    // The backend comes back during the retries: the checkout succeeds.
    let recover = manager.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        recover.set_down(false);
    });
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_connect_is_caught_by_the_connect_timeout() {
    let manager = SimManager::new();
    let mut c = config(0, 1);
    c.connect_timeout = Duration::from_millis(300);
    let pool = pool(&manager, c).await;
    manager.set_stalled(true);
    let err = pool.get().await.unwrap_err();
    let PoolError::Connect(error) = &err else { panic!("{err}") };
    assert!(matches!(**error, ConnectError::Timeout(t) if t == Duration::from_millis(300)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn idle_connections_above_min_size_are_closed() {
    let manager = SimManager::new();
    let mut c = config(1, 4);
    c.idle_timeout = Some(Duration::from_secs(10));
    let pool = pool(&manager, c).await;
    let conns: Vec<_> = futures_join(&pool, 4).await;
    drop(conns);
    assert_eq!(pool.status().idle, 4);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pool.status().idle, 4, "not idle long enough yet");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pool.status().size, 1, "min_size stays");
    assert_eq!(pool.metrics().closed.idle_timeout, 3);
}

#[tokio::test(start_paused = true)]
async fn connections_expire_after_their_jittered_lifetime() {
    let manager = SimManager::new();
    let mut c = config(2, 2);
    c.max_lifetime = Some(Duration::from_secs(100));
    c.lifetime_jitter = Duration::from_secs(10);
    let pool = pool(&manager, c).await;
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert_eq!(pool.metrics().closed.lifetime, 0, "none expires before lifetime - jitter");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(pool.metrics().closed.lifetime, 2);
    settle().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pool.status().size, 2, "replaced to keep min_size");
    // A checked-out connection past its lifetime is closed when it comes back.
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(101)).await;
    let closed_before = pool.metrics().closed.lifetime;
    drop(conn);
    assert_eq!(pool.metrics().closed.lifetime, closed_before + 1);
}

#[tokio::test(start_paused = true)]
async fn health_checks_replace_dead_idle_connections() {
    let manager = SimManager::new();
    let mut c = config(2, 2);
    c.health_check_interval = Some(Duration::from_secs(30));
    let pool = pool(&manager, c).await;
    manager.restart();
    // Each connection falls due at its own time within 30 s ± 20%.
    tokio::time::sleep(Duration::from_secs(36)).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = pool.metrics();
    assert_eq!(metrics.closed.failed_validation, 2, "{metrics}");
    assert_eq!(pool.status().size, 2);
    let mut conn = pool.get().await.unwrap();
    assert!(conn.query(Duration::ZERO).await.is_ok(), "the replacement works");
}

#[tokio::test(start_paused = true)]
async fn pre_ping_skips_dead_connections_and_recent_ones() {
    let manager = SimManager::new();
    let mut c = config(1, 2);
    c.pre_ping = true;
    let pool = pool(&manager, c).await;
    drop(pool.get().await.unwrap());
    assert_eq!(manager.validations(), 0, "just made: no ping");
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(manager.validations(), 1);
    drop(pool.get().await.unwrap());
    assert_eq!(manager.validations(), 1, "used moments ago: no ping");
    manager.restart();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut conn = pool.get().await.unwrap();
    assert!(conn.query(Duration::ZERO).await.is_ok(), "pre-ping replaced the dead connection");
    assert_eq!(pool.metrics().closed.failed_validation, 1);
}

#[tokio::test(start_paused = true)]
async fn connections_held_too_long_are_reported() {
    let manager = SimManager::new();
    let mut c = config(0, 2);
    c.leak_detection_threshold = Some(Duration::from_secs(5));
    let pool = pool(&manager, c).await;
    let held = pool.get().await.unwrap();
    let quick = pool.get().await.unwrap();
    drop(quick);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pool.metrics().leaks_reported, 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pool.metrics().leaks_reported, 1, "reported once");
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn resize_shrinks_and_grows() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(0, 4)).await;
    let conns = futures_join(&pool, 4).await;
    pool.resize(0, 2).unwrap();
    drop(conns);
    assert_eq!(pool.status().size, 2, "returned connections over the new max are closed");
    assert_eq!(pool.metrics().closed.resize, 2);
    pool.resize(3, 6).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.status().size, 3, "grown to the new min");
    assert!(matches!(pool.resize(5, 4), Err(ConfigError::MinAboveMax { .. })));
}

#[tokio::test(start_paused = true)]
async fn close_fails_waiters_and_waits_for_checked_out_connections() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(1, 1)).await;
    let held = pool.get().await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|_| ()) })
    };
    settle().await;
    let closer = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.close(Duration::from_secs(10)).await })
    };
    assert!(matches!(waiter.await.unwrap(), Err(PoolError::Closed)));
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!closer.is_finished(), "close waits for the checked-out connection");
    drop(held);
    assert_eq!(closer.await.unwrap(), Ok(()), "all closed");
    assert_eq!(manager.open(), 0);

    // With a connection never returned, close gives up at its deadline.
    let pool = common::pool(&manager, config(0, 1)).await;
    let _kept = pool.get().await.unwrap();
    let left = pool.close(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!((left.open, left.connecting), (1, 0));
    assert!(left.to_string().contains("1 connections still checked out"), "{left}");
}

#[tokio::test(start_paused = true)]
async fn broken_and_detached_connections_leave_the_pool() {
    let manager = SimManager::new().broken_rate(1.0);
    let pool = pool(&manager, config(0, 2)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(pool.metrics().closed.broken, 1, "is_broken on return closes it");
    assert_eq!(pool.status().size, 0);

    let manager = SimManager::new();
    let pool = common::pool(&manager, config(0, 1)).await;
    let conn = pool.get().await.unwrap().detach();
    assert_eq!(pool.status().size, 0);
    assert!(pool.get().await.is_ok(), "the slot was freed");
    assert_eq!(manager.open(), 2, "the detached connection lives on with its new owner");
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn metrics_snapshot_reads_well() {
    let manager = SimManager::new();
    let pool = pool(&manager, config(1, 2)).await;
    let _a = pool.get().await.unwrap();
    let text = pool.metrics().to_string();
    assert!(
        text.starts_with("pool: 1 open of 2 max, 1 in use, 0 idle, 0 waiting, 0 connecting; 1 checkouts"),
        "{text}"
    );
}

async fn futures_join(pool: &Pool<SimManager>, n: usize) -> Vec<connpool::Conn<SimManager>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.unwrap());
    }
    conns
}
