//! The Redis tier against the real Redis that `scripts/test.sh` starts (`REDIS_URL`).
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cache::tier::{Json, KeyBuilder, TieredCache};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_l2_and_see_each_others_invalidations_within_100ms() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("share");
    let a: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    let b: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();

    // A loads and writes both tiers; B finds it in L2 without running its loader.
    let v = a.get_or_load("user:1", || async { Ok::<_, std::io::Error>("Ada".to_string()) }).await.unwrap();
    assert_eq!(v, "Ada");
    let v =
        b.get_or_load("user:1", || async { Err::<String, _>(std::io::Error::other("must not run")) }).await;
    assert_eq!(v.unwrap(), "Ada");
    assert!(b.l1_contains("user:1"));
    assert_eq!(b.stats().l2_hits, 1);
    assert_eq!(b.stats().loads, 0);

    // A writes: B drops its L1 copy within 100 ms and then reads the new value.
    a.insert("user:1", "Grace".to_string()).await;
    let took = common::eventually(Duration::from_millis(100), || !b.l1_contains("user:1")).await;
    assert!(took.is_some(), "B still had its L1 copy 100 ms after A's write");
    assert_eq!(b.get("user:1").await.as_deref(), Some("Grace"));

    // A invalidates: gone from B's L1 and from Redis.
    a.invalidate("user:1").await;
    assert!(common::eventually(Duration::from_millis(100), || !b.l1_contains("user:1")).await.is_some());
    assert_eq!(b.get("user:1").await, None);
    assert!(b.stats().invalidations_received >= 2);
    assert!(a.stats().invalidations_sent >= 2);
    assert_eq!(a.stats().invalidations_received, 0, "an instance ignores its own announcements");
    println!("{}", b.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_loader_per_key_per_instance() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let cache: TieredCache<u64> =
        common::builder(common::pool(&url).await, &common::namespace("coalesce")).build().await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                let c = cache.clone();
                cache
                    .get_or_load("slow", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Finish only once the 15 other callers wait for this load.
                        while c.stats().l1.coalesced < 15 {
                            tokio::task::yield_now().await;
                        }
                        Ok::<_, std::io::Error>(7)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Loader errors reach the caller and are not cached in either tier.
    let err =
        cache.get_or_load("bad", || async { Err::<u64, _>(std::io::Error::other("backend down")) }).await;
    assert_eq!(err.unwrap_err().failed().unwrap().to_string(), "backend down");
    assert_eq!(cache.get("bad").await, None);
    assert_eq!(cache.stats().load_errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_compressed_and_round_trip_exactly() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("large");
    let pool = common::pool(&url).await;
    let a: TieredCache<Vec<String>> = common::builder(pool.clone(), &ns).build().await.unwrap();
    let b: TieredCache<Vec<String>> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    let value: Vec<String> = (0..20_000).map(|i| format!("row {i}: {}", "abc".repeat(i % 7))).collect();
    a.insert("big", value.clone()).await;
    let mut conn = pool.get().await.unwrap();
    let raw: Vec<u8> = redis::cmd("GET").arg(a.redis_key("big")).query_async(&mut *conn).await.unwrap();
    let plain = rmp_len(&value);
    assert!(raw.len() * 2 < plain, "stored {} bytes for {plain} bytes of MessagePack", raw.len());
    assert_eq!(b.get("big").await, Some(value), "round trip through Redis and lz4");
}

fn rmp_len(v: &[String]) -> usize {
    v.iter().map(|s| s.len() + 2).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_foreign_values_are_counted_misses() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("corrupt");
    let pool = common::pool(&url).await;
    let cache: TieredCache<String> = common::builder(pool.clone(), &ns).build().await.unwrap();
    let mut conn = pool.get().await.unwrap();
    for (key, raw) in [
        ("garbage", b"not ours at all".to_vec()),
        ("damaged", vec![0xBC, 1, 1, 1, 0xFF, 0xFF, 0xFF, 0x7F, 1]),
    ] {
        let () = redis::cmd("SET").arg(cache.redis_key(key)).arg(raw).query_async(&mut *conn).await.unwrap();
        let v =
            cache.get_or_load(key, || async { Ok::<_, std::io::Error>("fresh".to_string()) }).await.unwrap();
        assert_eq!(v, "fresh");
    }
    // A value written with another codec (JSON) is not misread by a MessagePack reader.
    let json: TieredCache<String, Json> =
        common::builder(pool.clone(), &ns).codec(Json).build().await.unwrap();
    json.insert("other-codec", "json".to_string()).await;
    assert_eq!(cache.get("other-codec").await, None);
    let stats = cache.stats();
    assert_eq!(stats.l2_corrupt, 3, "{stats}");
    assert_eq!(stats.l2_errors, 0);
}

#[test]
fn keys_are_short_and_stable() {
    let a = KeyBuilder::namespaced("ai:analysis", 1).part(&("doc", 17u32)).part(&"prompt text").build();
    let b = KeyBuilder::namespaced("ai:analysis", 1).part(&("doc", 17u32)).part(&"prompt text").build();
    let c = KeyBuilder::namespaced("ai:analysis", 1).part(&("doc", 18u32)).part(&"prompt text").build();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let parts: Vec<&str> = a.split(':').collect();
    assert_eq!(parts[..3], ["ai", "analysis", "v1"]);
    assert!(parts[3..].iter().all(|p| p.len() == 16 && p.chars().all(|c| c.is_ascii_hexdigit())));
    assert_eq!(KeyBuilder::new().raw("user").raw("42").build(), "user:42");
    // Raw parts are escaped, so that where one part ends is never ambiguous.
    let joined = |parts: &[&str]| parts.iter().fold(KeyBuilder::new(), |k, p| k.raw(p)).build();
    assert_ne!(joined(&["a:b", "c"]), joined(&["a", "b:c"]));
    assert_ne!(joined(&["a%3Ab"]), joined(&["a:b"]));
    assert_ne!(joined(&["", "a"]), joined(&["a", ""]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_loads_every_key_with_bounded_concurrency() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("warm");
    let cache: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let keys: Vec<String> = (0..60).map(|i| format!("item:{i}")).collect();
    let failed = cache
        .warm(keys.clone(), 4, |key| {
            let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if key.ends_with(":13") {
                    Err(std::io::Error::other("no such item"))
                } else {
                    Ok(format!("value of {key}"))
                }
            }
        })
        .await;
    assert_eq!(failed, 1, "the one failing load is counted");
    let most = most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "at most 4 loads at once, and some overlap (saw {most})");
    for key in keys.iter().filter(|k| !k.ends_with(":13")) {
        assert!(cache.l1_contains(key), "{key} warmed into L1");
    }
    // And into Redis: a second instance finds them there without loading.
    let other: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    assert_eq!(other.get("item:7").await.as_deref(), Some("value of item:7"));
    assert_eq!(cache.stats().loads, 60);
}

/// Invalid settings are a typed error at build, before any Redis call (no server needed).
#[tokio::test]
async fn invalid_l1_settings_are_a_typed_error() {
    let manager = connpool::redis::RedisManager::new("redis://127.0.0.1:1").unwrap();
    let pool = connpool::Pool::builder(manager).build_lazy().unwrap();
    let err = TieredCache::<String>::builder(pool.clone(), "cfg", 1).l1_budget(0).build().await.unwrap_err();
    assert_eq!(err, bounded_cache::ConfigError::ZeroBudget);
    let err = TieredCache::<String>::builder(pool, "cfg", 1)
        .l1_ttl(Some(Duration::ZERO))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err, bounded_cache::ConfigError::ZeroTtl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_announced_during_a_load_keeps_the_loaded_value_out_of_l1() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("race");
    let a: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    let b: TieredCache<String> = common::builder(common::pool(&url).await, &ns).build().await.unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let loading = {
        let a = a.clone();
        tokio::spawn(async move {
            a.get_or_load("k", || async move {
                started_tx.send(()).unwrap();
                go_rx.await.unwrap();
                Ok::<_, std::io::Error>("read before the write".to_string())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    // B writes while A's load is in flight; A hears of it before its load finishes.
    b.insert("k", "written".to_string()).await;
    let heard = common::eventually(Duration::from_secs(2), || a.stats().invalidations_received >= 1).await;
    assert!(heard.is_some(), "A did not hear B's announcement");
    go_tx.send(()).unwrap();
    assert_eq!(loading.await.unwrap().unwrap(), "read before the write", "the caller gets its value");
    assert!(!a.l1_contains("k"), "A's L1 kept a value loaded before B's write");
    assert_eq!(a.get("k").await.as_deref(), Some("written"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_copies_are_refreshed_from_redis_in_the_background() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let ns = common::namespace("refresh");
    let pool = common::pool(&url).await;
    let a: TieredCache<String> = common::builder(pool.clone(), &ns).build().await.unwrap();
    // Every read of B's L1 copies is due (one reload at a time per key).
    let b: TieredCache<String> =
        common::builder(pool.clone(), &ns).l1_refresh_after(Duration::from_nanos(1)).build().await.unwrap();
    a.insert("k", "v1".to_string()).await;
    // A's write announces "k"; B must hear it before copying "k" into L1, or the late
    // announcement would drop the fresh copy (correctly: it cannot tell the two apart).
    let heard = common::eventually(Duration::from_secs(2), || b.stats().invalidations_received >= 1).await;
    assert!(heard.is_some(), "B did not hear A's announcement");
    assert_eq!(b.get("k").await.as_deref(), Some("v1"));
    assert!(b.l1_contains("k"));

    // Redis changes under B with no announcement (a stored value copied over the key): only a
    // refresh can bring it to B's L1.
    a.insert("other", "v2".to_string()).await;
    let mut conn = pool.get().await.unwrap();
    let raw: Vec<u8> = redis::cmd("GET").arg(a.redis_key("other")).query_async(&mut *conn).await.unwrap();
    let () = redis::cmd("SET").arg(a.redis_key("k")).arg(raw).query_async(&mut *conn).await.unwrap();
    drop(conn);

    // The read that finds the copy due returns it at once; the reload replaces it.
    assert_eq!(b.get("k").await.as_deref(), Some("v1"), "served from L1, not waiting for Redis");
    let refreshed = common::eventually_async(Duration::from_secs(2), || async {
        b.stats().l1.refreshes >= 1 && b.get("k").await.as_deref() == Some("v2")
    })
    .await;
    assert!(refreshed.is_some(), "B's copy was not refreshed: {}", b.stats());
    let l2_hits = b.stats().l2_hits;
    assert!(l2_hits >= 2, "the reloads read Redis: {l2_hits}");

    // A key gone from Redis: the reload fails, the copy stays (until l1_ttl) and is counted.
    let mut conn = pool.get().await.unwrap();
    let () = redis::cmd("DEL").arg(a.redis_key("k")).query_async(&mut *conn).await.unwrap();
    drop(conn);
    let failed = common::eventually_async(Duration::from_secs(2), || async {
        b.get("k").await.as_deref() == Some("v2") && b.stats().l1.refresh_failures >= 1
    })
    .await;
    assert!(failed.is_some(), "{}", b.stats());
}
