//! The moments a happy-path suite skips, after HikariCP's shutdown and fault tests, on the
//! simulated manager and tokio's paused clock: closing while connections are being added, close
//! racing returns, breaks and detaches, a pool dropped while its backend is down, a backend that
//! fails or hangs on every call, a manager that panics in each method, a checkout cancelled during
//! pre-ping, health checks that must not stall checkouts, and durations too long to represent.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::{config, settle};
use connpool::sim::{SimError, SimManager, SimMethod};
use connpool::{Config, ConfigError, Manager, Pool, PoolError, RetryPolicy};
use tokio::time::Instant;

fn quiet_simulated_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let simulated =
                info.payload().downcast_ref::<&str>().is_some_and(|m| m.starts_with("simulated panic"));
            if !simulated {
                default(info);
            }
        }));
    });
}

/// Tasks alive on the runtime (the pool's background tasks among them).
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn returning_breaking_or_detaching_after_close_dials_nothing() {
    let manager = SimManager::new();
    let pool = common::pool(&manager, config(2, 4)).await;
    let returned = pool.get().await.unwrap();
    let mut broken = pool.get().await.unwrap();
    let detached = pool.get().await.unwrap();
    let closer = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.close(Duration::from_secs(60)).await })
    };
    settle().await;
    let attempts = manager.attempts();
    drop(returned);
    broken.mark_broken();
    drop(broken);
    let detached = detached.detach();
    // Detaching the last one lets close return at once, not at its deadline.
    let started = Instant::now();
    assert!(closer.await.unwrap().is_ok(), "every connection ended");
    assert!(started.elapsed() < Duration::from_secs(1), "close waited {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(manager.attempts(), attempts, "the pool dialled after close()");
    drop(detached);
    assert_eq!(manager.open(), 0);
}

#[tokio::test(start_paused = true)]
async fn close_waits_for_the_connects_in_flight_and_no_connect_starts_after_it() {
    let manager = SimManager::new().connect_latency(Duration::from_secs(1));
    // Shutdown while connections are being added: four attempts to reach min_size in flight.
    let pool = Pool::builder(manager.clone()).config(config(4, 8)).build_lazy().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(pool.status().connecting > 0, "attempts in flight: {}", pool.status());
    assert!(pool.close(Duration::from_secs(5)).await.is_ok());
    let status = pool.status();
    assert_eq!((status.size, status.connecting), (0, 0), "{status}");
    let attempts = manager.attempts();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(manager.attempts(), attempts, "no connect after close");
    assert_eq!(manager.open(), 0, "none leaked");
}

#[tokio::test(start_paused = true)]
async fn concurrent_closes_and_connection_closes_agree() {
    let manager = SimManager::new();
    let pool = common::pool(&manager, config(2, 6)).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(pool.get().await.unwrap());
    }
    let closers: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.close(Duration::from_secs(60)).await.is_ok() })
        })
        .collect();
    settle().await;
    for (i, mut conn) in held.into_iter().enumerate() {
        match i % 3 {
            0 => drop(conn),
            1 => {
                conn.mark_broken();
                drop(conn);
            }
            _ => drop(conn.detach()),
        }
    }
    for closer in closers {
        assert!(closer.await.unwrap());
    }
    let status = pool.status();
    assert_eq!((status.size, status.in_use, status.connecting, status.waiting), (0, 0, 0, 0), "{status}");
    assert_eq!(manager.open(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_pool_dropped_while_its_backend_is_down_stops_everything() {
    let before = alive_tasks();
    let manager = SimManager::new();
    manager.set_down(true);
    let mut cfg = config(3, 6);
    cfg.retry = RetryPolicy::Linear { delay: Duration::from_millis(100), max_retries: 2 };
    let pool = Pool::builder(manager.clone()).config(cfg).build_lazy().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(manager.attempts() > 3, "the pool kept trying while alive");
    drop(pool);
    // Within one maintenance tick everything the pool ran has stopped.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let attempts = manager.attempts();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(manager.attempts(), attempts, "connect attempts after the pool was dropped");
    assert_eq!(alive_tasks(), before, "background tasks outlived the pool");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_pool_closes_its_connections_and_stops_its_tasks() {
    let before = alive_tasks();
    let manager = SimManager::new();
    let pool = common::pool(&manager, config(3, 6)).await;
    let held = pool.get().await.unwrap();
    drop(pool);
    settle().await;
    assert_eq!(manager.open(), 1, "idle connections closed with the pool; the held one lives on");
    drop(held);
    assert_eq!(manager.open(), 0, "returned to a dropped pool: closed");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(alive_tasks(), before);
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_fails_every_call_gives_typed_errors_and_closes_promptly() {
    let manager = SimManager::new();
    manager.set_down(true);
    let err = Pool::builder(manager.clone()).config(config(1, 2)).build().await.unwrap_err();
    assert!(testkit::report(&err).contains("refused"), "{err}");
    let pool = Pool::builder(manager.clone()).config(config(1, 2)).build_lazy().unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Connect(_) | PoolError::Timeout { .. }), "{err}");
    assert!(testkit::report(&err).contains("refused"), "{err}");
    let started = Instant::now();
    assert!(pool.close(Duration::from_secs(10)).await.is_ok());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_hangs_is_abandoned_by_close() {
    let manager = SimManager::new();
    manager.set_stalled(true);
    let mut cfg = config(2, 4);
    cfg.connect_timeout = Duration::from_secs(30);
    let pool = Pool::builder(manager.clone()).config(cfg).build_lazy().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(pool.status().connecting > 0);
    // Hung attempts are cancelled by close: it returns long before the connect timeout.
    let started = Instant::now();
    assert!(pool.close(Duration::from_secs(10)).await.is_ok());
    assert!(started.elapsed() < Duration::from_secs(1), "close took {:?}", started.elapsed());
    assert_eq!(pool.status().connecting, 0);
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_panics_in_connect_loses_no_slot() {
    quiet_simulated_panics();
    let manager = SimManager::new();
    manager.panic_once(SimMethod::Connect);
    let pool = Pool::builder(manager.clone()).config(config(0, 1)).build_lazy().unwrap();
    // The checkout that started the panicking attempt hears of it (`fail_fast`), as a typed
    // error; the next one succeeds.
    let err = pool.get_timeout(Duration::from_secs(1)).await.unwrap_err();
    let PoolError::Connect(cause) = &err else { panic!("{err}") };
    assert!(
        matches!(&**cause, connpool::ConnectError::Panicked(m) if m == "simulated panic in connect"),
        "{err}"
    );
    let conn = pool.get().await.expect("the slot survived the panic");
    drop(conn);
    settle().await;
    let status = pool.status();
    assert_eq!((status.size, status.connecting, status.in_use), (1, 0, 0), "{status}");
    assert_eq!(status.size as u64, manager.open());
    assert_eq!(pool.metrics().manager_panics, 1);
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_panics_in_validate_keeps_maintenance_running() {
    quiet_simulated_panics();
    let manager = SimManager::new();
    let mut cfg = config(1, 3);
    cfg.health_check_interval = Some(Duration::from_secs(1));
    cfg.idle_timeout = Some(Duration::from_secs(5));
    let pool = common::pool(&manager, cfg).await;
    let conns = [pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap()];
    drop(conns);
    manager.panic_once(SimMethod::Validate);
    // The health check after a second panics; maintenance goes on and, past the idle timeout,
    // closes the idle connections above min_size.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = pool.status();
    assert_eq!(status.size, 1, "maintenance stopped: {status}");
    assert_eq!(status.size as u64, manager.open(), "{status}");
    let metrics = pool.metrics();
    assert_eq!((metrics.manager_panics, metrics.closed.failed_validation), (1, 1), "{metrics}");
    drop(pool.get().await.expect("the pool still serves"));
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_panics_in_is_broken_closes_the_connection_quietly() {
    quiet_simulated_panics();
    let manager = SimManager::new();
    let pool = common::pool(&manager, config(0, 2)).await;
    let conn = pool.get().await.unwrap();
    manager.panic_once(SimMethod::IsBroken);
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(conn)));
    assert!(dropped.is_ok(), "the panic escaped the connection's drop");
    let status = pool.status();
    assert_eq!((status.size, status.in_use), (0, 0), "{status}");
    assert_eq!(manager.open(), 0);
    let metrics = pool.metrics();
    assert_eq!((metrics.manager_panics, metrics.closed.broken), (1, 1), "{metrics}");
    drop(pool.get().await.expect("the slot was freed"));
}

async fn cancelled_pre_ping(manager: SimManager) -> Result<u64, SimError> {
    let mut cfg = config(0, 1);
    cfg.pre_ping = true;
    let pool = common::pool(&manager.clone().validate_latency(Duration::from_millis(100)), cfg).await;
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await; // old enough to be pinged
    // Cancelled mid-ping: the ping's reply is never read.
    assert!(tokio::time::timeout(Duration::from_millis(50), pool.get()).await.is_err());
    let mut conn = pool.get().await.unwrap();
    let reply = conn.query(Duration::ZERO).await;
    let cancelled = pool.metrics().closed.cancelled;
    assert_eq!(cancelled, u64::from(!manager.cancel_safe()), "closed as cancelled only when not cancel-safe");
    reply
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_during_pre_ping_does_not_hand_on_its_connection() {
    // Request/response: the half-pinged connection must not reach the next user.
    let manager = SimManager::new();
    assert_eq!(
        cancelled_pre_ping(manager.clone()).await,
        Ok(1),
        "the next user read the abandoned ping's reply"
    );
    assert_eq!(manager.connects(), 2, "it was replaced");
    // Multiplexed (the manager says it is cancel-safe): kept.
    let manager = SimManager::new().multiplexed(true);
    assert!(cancelled_pre_ping(manager.clone()).await.is_ok());
    assert_eq!(manager.connects(), 1, "a cancel-safe connection is kept");
}

#[tokio::test(start_paused = true)]
async fn a_health_check_round_delays_a_checkout_by_one_validation_at_most() {
    let validation = Duration::from_secs(1);
    let manager = SimManager::new().validate_latency(validation);
    let mut cfg = config(8, 8);
    cfg.health_check_interval = Some(Duration::from_secs(30));
    let pool = common::pool(&manager, cfg).await;
    // Every connection falls due together; the round starts on the next maintenance tick.
    tokio::time::sleep(Duration::from_secs(31)).await;
    // Eight checkouts at once, each holding its connection until all have one.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let conn = pool.get().await.unwrap();
                let waited = started.elapsed();
                barrier.wait().await;
                drop(conn);
                waited
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for task in tasks {
        worst = worst.max(task.await.unwrap());
    }
    assert!(worst <= validation, "a checkout waited {worst:?} during a health-check round");
    // And the round still checks every connection, over the next rounds.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(manager.validations() >= 8, "{} validations", manager.validations());
}

#[tokio::test(start_paused = true)]
async fn durations_too_long_to_represent_mean_no_limit_or_are_typed_errors() {
    let manager = SimManager::new();
    let pool = common::pool(&manager, config(1, 2)).await;
    let conn = pool.get_timeout(Duration::MAX).await.unwrap();
    drop(conn);
    assert!(pool.close(Duration::MAX).await.is_ok(), "close(Duration::MAX) waits without a deadline");

    for (field, change) in [
        ("max_lifetime", (|c: &mut Config| c.max_lifetime = Some(Duration::MAX)) as fn(&mut Config)),
        ("checkout_timeout", |c| c.checkout_timeout = Duration::MAX),
        ("idle_timeout", |c| c.idle_timeout = Some(Duration::MAX)),
        ("retry", |c| {
            c.retry = RetryPolicy::Exponential { initial: Duration::MAX, max: Duration::MAX, max_retries: 3 }
        }),
    ] {
        let mut c = Config::default();
        change(&mut c);
        let err = c.validate().unwrap_err();
        assert!(matches!(err, ConfigError::TooLong { field: f, .. } if f == field), "{field}: {err:?}");
        assert!(err.to_string().contains(field), "{err}");
    }
}
