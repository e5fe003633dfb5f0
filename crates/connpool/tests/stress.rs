//! A checkout storm on a multi-threaded runtime, with faults, manager panics and cancellations,
//! and a checker task asserting the pool's invariants throughout; then a close that must drain
//! everything while connections are still being returned.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use connpool::sim::{SimManager, SimMethod};

const MAX: usize = 8;

fn quiet_simulated_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let simulated =
            info.payload().downcast_ref::<&str>().is_some_and(|m| m.starts_with("simulated panic"));
        if !simulated {
            default(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_with_faults_keeps_every_invariant() {
    quiet_simulated_panics();
    let manager =
        SimManager::new().connect_latency(Duration::from_micros(200)).failure_rate(0.05).broken_rate(0.02);
    let mut config = common::config(2, MAX);
    config.checkout_timeout = Duration::from_millis(200);
    // Retries make a failed connect (5% of attempts) rare enough that building never fails.
    config.retry = connpool::RetryPolicy::Linear { delay: Duration::from_millis(1), max_retries: 10 };
    config.maintenance_interval = Duration::from_millis(5);
    let pool = common::pool(&manager, config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let checker = {
        let (pool, manager, stop, checks) = (pool.clone(), manager.clone(), stop.clone(), checks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let status = pool.status();
                assert!(status.size <= MAX, "{status}");
                assert!(status.size + status.connecting <= MAX, "{status}");
                assert!(status.in_use + status.idle <= status.size, "{status}");
                // A closed connection is dropped just after it leaves the count, and a new
                // one may be made in that moment: allow one per worker thread.
                assert!(manager.open() as usize <= MAX + 2, "{} open: {status}", manager.open());
                checks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let served = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let (pool, served) = (pool.clone(), served.clone());
            tokio::spawn(async move {
                for i in 0..100u64 {
                    // Now and then the manager panics in one of its methods.
                    if (t * 100 + i) % 97 == 0 {
                        let method =
                            [SimMethod::Connect, SimMethod::Validate, SimMethod::IsBroken][(i % 3) as usize];
                        pool.manager().panic_once(method);
                    }
                    // Every seventh checkout is cancelled by a short deadline.
                    let deadline =
                        if (t + i) % 7 == 0 { Duration::from_micros(50) } else { Duration::from_secs(5) };
                    if let Ok(Ok(mut conn)) = tokio::time::timeout(deadline, pool.get()).await {
                        if conn.query(Duration::from_micros(20)).await.is_ok() {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    checker.await.unwrap();
    assert!(checks.load(Ordering::SeqCst) > 0);
    assert!(served.load(Ordering::SeqCst) > 64 * 100 / 2, "most checkouts were served");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    assert_eq!(status.size as u64, manager.open(), "{status}");
    let metrics = pool.metrics();
    assert!(metrics.manager_panics > 0, "{metrics}");
    println!("{metrics}");
    // Close while a few connections are still out, returned from other tasks meanwhile.
    let held: Vec<_> = futures_util_join(&pool, 4).await;
    let returners: Vec<_> = held
        .into_iter()
        .map(|conn| {
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                drop(conn);
            })
        })
        .collect();
    assert_eq!(pool.close(Duration::from_secs(5)).await, Ok(()));
    for r in returners {
        r.await.unwrap();
    }
    assert_eq!(manager.open(), 0, "closed pool, no connection left");
}

async fn futures_util_join(pool: &connpool::Pool<SimManager>, n: usize) -> Vec<connpool::Conn<SimManager>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.expect("the pool serves after the storm"));
    }
    conns
}
