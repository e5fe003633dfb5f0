//! The Redis tier through a Redis restart (its own test binary: stopping the server would disturb
//! the other Redis tests running in parallel).
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use bounded_cache::tier::{BreakerState, TieredCache};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_survive_a_redis_outage_and_the_tier_recovers_by_itself() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let Some(stop) = common::require_env("REDIS_STOP_CMD") else { return };
    let Some(start) = common::require_env("REDIS_START_CMD") else { return };
    let ns = common::namespace("restart");
    let cache: TieredCache<String> = common::builder(common::pool(&url).await, &ns)
        .l2_timeout(Duration::from_millis(50))
        .breaker(3, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let load = |v: &str| {
        let v = v.to_string();
        move || async move { Ok::<_, std::io::Error>(v) }
    };
    cache.get_or_load("warm", load("cached")).await.unwrap();
    assert_eq!(cache.stats().l2_writes, 1);

    common::run_control(&stop);
    // The subscription ended with the server: L1 is cleared (an invalidation may be missed from
    // now on), and copies taken meanwhile are served for the heartbeat's bound (2 s here).
    assert!(common::eventually(Duration::from_secs(2), || !cache.subscribed()).await.is_some());
    assert!(!cache.l1_contains("warm"));
    // Gets keep succeeding: the loader's value once, then L1's, and the loader for new keys, each
    // within the L2 timeout.
    let outage = tokio::time::Instant::now();
    for i in 0..20 {
        let begin = tokio::time::Instant::now();
        assert_eq!(cache.get_or_load("warm", load("reloaded")).await.unwrap(), "reloaded");
        let key = format!("new-{i}");
        assert_eq!(cache.get_or_load(&key, load("loaded")).await.unwrap(), "loaded");
        assert!(
            begin.elapsed() < Duration::from_millis(400),
            "a get took {:?} during the outage",
            begin.elapsed()
        );
    }
    let during = cache.stats();
    // "warm" and the 20 new keys were loaded once each (twice for "warm" if the loop outlasted
    // its copy's 2 s): L1 still absorbed the repeated gets.
    let reloads = 21 + u64::from(outage.elapsed() >= Duration::from_secs(2));
    assert!(during.loads <= 1 + reloads, "{during}");
    assert_eq!(during.breaker, BreakerState::Open, "{during}");
    assert!(during.breaker_opened >= 1 && during.l2_skipped > 0, "{during}");
    assert!(during.l2_errors + during.l2_timeouts >= 3, "{during}");

    common::run_control(&start);
    // The tier recovers by itself: writes reach Redis again and the breaker closes.
    let mut i = 0;
    let recovered = async {
        loop {
            i += 1;
            let _ = cache.get_or_load(&format!("after-{i}"), load("again")).await;
            if cache.stats().breaker == BreakerState::Closed && cache.stats().l2_writes > during.l2_writes {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), recovered).await.expect("the tier recovered within 10 s");
    // The invalidation subscription came back too (and cleared L1, which may have missed news).
    assert!(
        common::eventually(Duration::from_secs(5), || cache.stats().resubscriptions >= 1).await.is_some(),
        "{}",
        cache.stats()
    );
    println!("{}", cache.stats());
}
