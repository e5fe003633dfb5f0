//! The tier on Redis as deployed, against the servers `scripts/servers.sh` starts: a three-master
//! Redis Cluster (keys over every master's slots, invalidations heard across the cluster, a
//! master killed mid-run), a Sentinel-managed master, and a TLS-only server (feature
//! `redis-rustls`). On each, two instances share L2 and a write on one removes the other's L1
//! copy within 100 ms.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use bounded_cache::tier::TieredCache;
use connpool::redis::RedisManager;
use tokio::time::Instant;

use common::value;

async fn instance(manager: RedisManager, ns: &str) -> TieredCache<String> {
    common::instance(common::pool_for(manager), ns, Duration::from_millis(200)).await
}

/// B reads what A wrote from L2; A's next write removes B's copy within `within`. `Err` says
/// which step did not happen. No announcement may be on its way to B when it starts.
async fn shared_and_invalidated(
    a: &TieredCache<String>,
    b: &TieredCache<String>,
    key: &str,
    within: Duration,
) -> Result<Duration, String> {
    let heard = b.stats().invalidations_received;
    a.insert(key, "first".to_string()).await;
    // B hears of that write before reading, so that the announcement does not drop its copy.
    if common::eventually(Duration::from_secs(1), || b.stats().invalidations_received > heard).await.is_none()
    {
        return Err(format!("B never heard of A's write of {key}: {}", b.stats()));
    }
    let hits = b.stats().l2_hits;
    let read = b.get_or_load(key, value("loader")).await.map_err(|e| e.to_string())?;
    if read != "first" || b.stats().l2_hits != hits + 1 {
        return Err(format!("B read {read:?} for {key}, not A's value from L2: {}", b.stats()));
    }
    if !b.l1_contains(key) {
        return Err(format!("B kept no L1 copy of {key} (unsubscribed?): {}", b.stats()));
    }
    a.insert(key, "second".to_string()).await;
    let took = common::eventually(within, || !b.l1_contains(key)).await;
    took.ok_or_else(|| format!("B still held {key} {within:?} after A's write: {}", b.stats()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_spreads_keys_carries_invalidations_and_survives_a_master_failover() {
    let (Some(urls), Some(restart)) =
        (common::require_env("REDIS_CLUSTER_URLS"), common::require_env("REDIS_CLUSTER_NODE_START"))
    else {
        return;
    };
    let seeds: Vec<&str> = urls.split(',').collect();
    let ns = common::namespace("cluster");
    let a = instance(RedisManager::cluster(&seeds).unwrap(), &ns).await;
    let b = instance(RedisManager::cluster(&seeds).unwrap(), &ns).await;
    // 32 keys: their slots cover every master; B reads each from L2.
    for k in 0..32 {
        a.insert(&format!("spread:{k}"), format!("v{k}")).await;
    }
    // Every announcement is heard before B reads, so that none drops B's copies afterwards.
    assert!(
        common::eventually(Duration::from_secs(2), || b.stats().invalidations_received >= 32).await.is_some()
    );
    for k in 0..32 {
        assert_eq!(b.get(&format!("spread:{k}")).await, Some(format!("v{k}")), "{}", b.stats());
    }
    assert_eq!(b.stats().l2_hits, 32);
    for k in 0..8 {
        let took = shared_and_invalidated(&a, &b, &format!("inv:{k}"), Duration::from_millis(100)).await;
        took.unwrap();
    }

    // A master dies: gets keep answering (from L1, L2 or the loader), and once the cluster has
    // failed over, invalidations flow again.
    let (host, port) = testkit::redis_cluster_master(&seeds).await;
    testkit::redis_shutdown(&host, port).await;
    let killed = Instant::now();
    let mut round = 0;
    let resumed = loop {
        round += 1;
        for k in 0..16 {
            let key = format!("during:{round}:{k}");
            assert_eq!(a.get_or_load(&key, value("loaded")).await.unwrap(), "loaded");
            assert_eq!(b.get_or_load(&key, value("loaded")).await.unwrap(), "loaded");
        }
        let key = format!("after:{round}");
        if shared_and_invalidated(&a, &b, &key, Duration::from_millis(100)).await.is_ok() {
            // Twice in a row, on other keys, so that it was not a lucky slot.
            let again = format!("after:{round}:again");
            if shared_and_invalidated(&a, &b, &again, Duration::from_millis(100)).await.is_ok() {
                break killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "invalidations did not resume: A {} B {}",
            a.stats(),
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "invalidations resumed {resumed:?} after the master was killed; A {}; B {}",
        a.stats(),
        b.stats()
    );
    // The node comes back (as a replica), for the tests that follow.
    testkit::run_control_with(&restart, &port.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_managed_master_carries_the_tier() {
    let (Some(urls), Some(master)) =
        (common::require_env("REDIS_SENTINEL_URLS"), common::require_env("REDIS_SENTINEL_MASTER"))
    else {
        return;
    };
    let sentinels: Vec<&str> = urls.split(',').collect();
    let ns = common::namespace("sentinel");
    let a = instance(RedisManager::sentinel(&sentinels, &master).unwrap(), &ns).await;
    let b = instance(RedisManager::sentinel(&sentinels, &master).unwrap(), &ns).await;
    for k in 0..4 {
        shared_and_invalidated(&a, &b, &format!("k{k}"), Duration::from_millis(100)).await.unwrap();
    }
}

#[cfg(feature = "redis-rustls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_carries_the_tier() {
    let (Some(url), Some(ca)) = (common::require_env("REDIS_TLS_URL"), common::require_env("TLS_CA_FILE"))
    else {
        return;
    };
    let ca = std::fs::read(ca).unwrap();
    let ns = common::namespace("tls");
    let a = instance(RedisManager::new(&url).unwrap().root_cert(ca.clone()), &ns).await;
    let b = instance(RedisManager::new(&url).unwrap().root_cert(ca), &ns).await;
    for k in 0..4 {
        shared_and_invalidated(&a, &b, &format!("k{k}"), Duration::from_millis(100)).await.unwrap();
    }
}
