//! HikariCP's pool-sizing test: connections take 150 ms to open, queries take 2 ms, max 50,
//! min idle 5, and a burst of 50 concurrent requests. HikariCP ends with 5-6 connections where
//! other pools end with 40-45; the pool must end with at most 10.

mod common;

use std::time::Duration;

use connpool::sim::SimManager;

#[tokio::test(start_paused = true)]
async fn a_burst_opens_only_the_connections_it_needs() {
    let manager = SimManager::new().connect_latency(Duration::from_millis(150));
    let mut config = common::config(5, 50);
    config.checkout_timeout = Duration::from_secs(30);
    let pool = common::pool(&manager, config).await;
    assert_eq!(pool.status().size, 5);

    let requests: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                conn.query(Duration::from_millis(2)).await.unwrap();
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    // Let the attempts started during the burst finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = pool.status();
    println!("after the burst: {status}; {}", pool.metrics());
    assert!(status.size <= 10, "the burst opened {} connections", status.size);
    assert_eq!(status.size as u64, manager.open());
    assert_eq!((status.in_use, status.waiting), (0, 0));
}
