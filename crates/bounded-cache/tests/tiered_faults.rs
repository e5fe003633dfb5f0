//! The tier against a Redis that stalls, through a proxy that freezes one instance's traffic
//! (connections stay open, nothing arrives) or severs its connections:
//! - a dead subscription is detected by its heartbeat and L1 cleared, within the bound the
//!   tier's docs state (`heartbeat_every + heartbeat_timeout`);
//! - a first subscription that comes late clears L1;
//! - an invalidation whose PUBLISH failed is retried once Redis is reachable again;
//! - breaker probes cancelled by the caller do not switch Redis off: once Redis answers again,
//!   the breaker closes and L2 serves within one `open_for`.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use bounded_cache::tier::{BreakerState, TieredCache};
use testkit::FreezableProxy;

use common::{HEARTBEAT, HEARTBEAT_TIMEOUT, value};

/// An instance whose Redis traffic goes through `proxy` (its pool and its subscription).
async fn through(proxy: &FreezableProxy, ns: &str) -> TieredCache<String> {
    common::instance(common::pool(&format!("redis://{}", proxy.addr())).await, ns, Duration::from_millis(100))
        .await
}

async fn direct(url: &str, ns: &str) -> TieredCache<String> {
    common::instance(common::pool(url).await, ns, Duration::from_millis(100)).await
}

fn proxy_target(url: &str) -> String {
    url.trim_start_matches("redis://").trim_end_matches('/').to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_subscription_is_detected_and_l1_cleared_within_the_bound() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("blackhole");
    let proxy = FreezableProxy::start(proxy_target(&url)).await;
    let a = direct(&url, &ns).await;
    let b = through(&proxy, &ns).await;
    assert_eq!(b.get_or_load("k", value("old")).await.unwrap(), "old");
    assert!(b.l1_contains("k"));
    // B's network to Redis goes silent; A replaces the value meanwhile.
    proxy.freeze(true);
    a.insert("k", "new".to_string()).await;
    let bound = HEARTBEAT + HEARTBEAT_TIMEOUT + Duration::from_millis(200);
    let took = common::eventually(bound, || !b.l1_contains("k")).await;
    assert!(took.is_some(), "B still held its old copy {bound:?} after its subscription went silent");
    // While cut off, B loads, and serves its copy for at most the heartbeat's bound.
    assert_eq!(b.get_or_load("k", value("fresh")).await.unwrap(), "fresh");
    assert_eq!(b.get_or_load("k", value("unused")).await.unwrap(), "fresh", "served from L1 meanwhile");
    tokio::time::sleep(HEARTBEAT + HEARTBEAT_TIMEOUT).await;
    assert_eq!(b.get_or_load("k", value("fresher")).await.unwrap(), "fresher", "kept past the bound");
    proxy.freeze(false);
    // Back: B subscribes again, and reads A's value from Redis.
    let back = common::eventually(Duration::from_secs(5), || b.stats().resubscriptions >= 1).await;
    assert!(back.is_some(), "{}", b.stats());
    let after = common::eventually_async(Duration::from_secs(5), || async {
        b.get_or_load("k", value("loader")).await.unwrap() == "new"
    })
    .await;
    assert!(after.is_some(), "B reads A's value again once reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_subscription_that_comes_late_clears_l1() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("late");
    let proxy = FreezableProxy::start(proxy_target(&url)).await;
    proxy.freeze(true);
    // B starts while Redis is unreachable for it: the build gives up waiting for the
    // subscription, and B serves from its loader.
    let b = through(&proxy, &ns).await;
    let a = direct(&url, &ns).await;
    a.insert("k", "new".to_string()).await;
    proxy.freeze(false);
    assert!(common::eventually(Duration::from_secs(5), || b.stats().resubscriptions >= 1).await.is_some());
    // Whatever B cached before it could hear announcements is gone.
    assert!(!b.l1_contains("k"));
    assert_eq!(b.get_or_load("k", value("loader")).await.unwrap(), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_whose_publish_failed_is_retried() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("retry");
    let proxy = FreezableProxy::start(proxy_target(&url)).await;
    let a = through(&proxy, &ns).await;
    let b = direct(&url, &ns).await;
    a.insert("k", "old".to_string()).await;
    // B hears of that write first, so that its copy below is not dropped by it.
    assert!(
        common::eventually(Duration::from_secs(2), || b.stats().invalidations_received >= 1).await.is_some()
    );
    assert_eq!(b.get("k").await.as_deref(), Some("old"));
    assert!(b.l1_contains("k"));
    // A's Redis traffic is held while it invalidates, then its connections are severed: the DEL
    // timed out and is lost, nothing was published.
    proxy.freeze(true);
    a.invalidate("k").await;
    proxy.sever();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.l1_contains("k"), "B cannot have heard of it yet: A {} B {}", a.stats(), b.stats());
    proxy.freeze(false);
    let took = common::eventually(Duration::from_secs(5), || !b.l1_contains("k")).await;
    assert!(took.is_some(), "the failed announcement was never retried: {}", a.stats());
    assert_eq!(b.get("k").await, None, "the retried invalidation removed the value from Redis too");
    assert!(a.stats().announce_retries >= 1, "{}", a.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_breaker_probes_do_not_switch_redis_off() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("probe");
    let proxy = FreezableProxy::start(proxy_target(&url)).await;
    let open_for = Duration::from_millis(300);
    let cache: TieredCache<String> =
        common::builder(common::pool(&format!("redis://{}", proxy.addr())).await, &ns)
            .l2_timeout(Duration::from_millis(50))
            .breaker(3, open_for)
            .build()
            .await
            .unwrap();
    direct(&url, &ns).await.insert("k", "in redis".to_string()).await;
    proxy.freeze(true);
    // Three reads time out: the breaker opens.
    for i in 0..3 {
        assert_eq!(cache.get(&format!("missing-{i}")).await, None);
    }
    assert_eq!(cache.stats().breaker, BreakerState::Open, "{}", cache.stats());
    // Every probe after that is cancelled by its caller's 1 ms timeout.
    let mut cancelled = 0;
    let until = tokio::time::Instant::now() + 3 * open_for;
    while tokio::time::Instant::now() < until {
        if tokio::time::timeout(Duration::from_millis(1), cache.get("k")).await.is_err() {
            cancelled += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cancelled > 0, "no read was cancelled");
    assert!(cache.stats().breaker_opened >= 2, "a cancelled probe counts as a failure: {}", cache.stats());
    // Redis answers again: within one `open_for` (and a probe's round trip) L2 serves.
    proxy.freeze(false);
    let back = tokio::time::Instant::now();
    let served = common::eventually_async(Duration::from_secs(5), || async {
        cache.get("k").await.as_deref() == Some("in redis")
    })
    .await;
    assert!(served.is_some(), "L2 never served again: {}", cache.stats());
    let took = back.elapsed();
    assert!(
        took <= open_for + Duration::from_millis(150),
        "L2 served again only after {took:?}: {}",
        cache.stats()
    );
    assert_eq!(cache.stats().breaker, BreakerState::Closed);
}
