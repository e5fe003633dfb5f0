//! The `metrics` feature: gauges from maintenance, the wait-time histogram from checkouts.
#![cfg(feature = "metrics")]

mod common;

use std::time::Duration;

use connpool::sim::SimManager;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn gauges_and_wait_histogram_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let manager = SimManager::new();
            let pool = common::pool(&manager, common::config(1, 1)).await;
            let held = pool.get().await.unwrap();
            let waiter = {
                let pool = pool.clone();
                tokio::spawn(async move { drop(pool.get().await.unwrap()) })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
            waiter.await.unwrap();
            let _busy = pool.get().await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await; // a maintenance tick
        });
    });
    let published = snapshotter.snapshot().into_vec();
    let find =
        |name: &str| published.iter().find(|(key, ..)| key.key().name() == name).map(|(.., value)| value);
    assert_eq!(find("connpool_active"), Some(&DebugValue::Gauge(1.0.into())));
    assert_eq!(find("connpool_idle"), Some(&DebugValue::Gauge(0.0.into())));
    let Some(DebugValue::Histogram(waits)) = find("connpool_wait_seconds") else {
        panic!("no wait histogram")
    };
    assert_eq!(waits.len(), 1);
    assert!(waits[0].into_inner() >= 0.05);
}
