//! Redis as deployed, against the servers `scripts/servers.sh` starts: a TLS-only server, a
//! Redis Cluster of three masters and three replicas (a master killed mid-run), a master behind
//! three Sentinels (failed over mid-run), and a manager built from an existing client.
#![cfg(feature = "redis-rustls")]

mod common;

use std::time::{Duration, Instant};

use connpool::redis::RedisManager;
use connpool::{Config, Pool};

fn config(min: usize, max: usize) -> Config {
    let mut config = common::config(min, max);
    config.checkout_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config
}

/// `tasks` tasks each incrementing `keys` keys (spread over many slots) `rounds` times; the
/// failures, and whether every counter ended exact.
async fn storm(
    pool: &Pool<RedisManager>,
    prefix: &str,
    tasks: usize,
    keys: usize,
    rounds: usize,
) -> (usize, bool) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (pool, prefix) = (pool.clone(), prefix.to_string());
            tokio::spawn(async move {
                let mut failures = 0;
                for round in 0..rounds {
                    for k in 0..keys {
                        let key = format!("{prefix}:{k}");
                        let done: Result<i64, String> = async {
                            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                            redis::cmd("INCR")
                                .arg(&key)
                                .query_async(&mut *conn)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        .await;
                        if done.is_err() {
                            failures += 1;
                        }
                        let _ = round;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for handle in handles {
        failures += handle.await.unwrap();
    }
    let mut conn = pool.get().await.unwrap();
    let mut exact = true;
    for k in 0..keys {
        let value: Option<i64> =
            redis::cmd("GET").arg(format!("{prefix}:{k}")).query_async(&mut *conn).await.unwrap();
        exact &= value == Some((tasks * rounds) as i64);
    }
    (failures, exact)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_serves_a_storm() {
    let (Some(url), Some(ca)) = (common::require_env("REDIS_TLS_URL"), common::require_env("TLS_CA_FILE"))
    else {
        return;
    };
    let manager = RedisManager::new(&url).unwrap().root_cert(std::fs::read(ca).unwrap());
    let pool = Pool::builder(manager).config(config(1, 4)).build().await.unwrap();
    let prefix = format!("tls-{}", fastrand_suffix());
    assert_eq!(storm(&pool, &prefix, 16, 8, 5).await, (0, true));
    // Without the CA, the server's certificate is not trusted: a clear refusal.
    let err = Pool::builder(RedisManager::new(&url).unwrap()).config(config(1, 1)).build().await.unwrap_err();
    assert!(testkit::report(&err).to_lowercase().contains("certificate"), "{}", testkit::report(&err));
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        % 1_000_000_007
}

#[tokio::test]
async fn a_manager_from_an_existing_client() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let client = redis::Client::open(url.as_str()).unwrap();
    let pool = Pool::builder(RedisManager::from_client(&client)).config(config(1, 2)).build().await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_many_slots_exactly_and_survives_a_master_failover() {
    let (Some(urls), Some(restart)) =
        (common::require_env("REDIS_CLUSTER_URLS"), common::require_env("REDIS_CLUSTER_NODE_START"))
    else {
        return;
    };
    let seeds: Vec<&str> = urls.split(',').collect();
    let pool =
        Pool::builder(RedisManager::cluster(&seeds).unwrap()).config(config(2, 8)).build().await.unwrap();
    let prefix = format!("cluster-{}", fastrand_suffix());
    // 64 keys land in slots of every master.
    assert_eq!(storm(&pool, &prefix, 16, 64, 3).await, (0, true));

    // Kill a master; its replica takes over after the node timeout (1 s).
    let (host, port) = testkit::redis_cluster_master(&seeds).await;
    testkit::redis_shutdown(&host, port).await;
    let killed = Instant::now();
    // Requests during the failover window may fail; once it is over, none may.
    let mut last_failure = None;
    let prefix2 = format!("{prefix}-after");
    while killed.elapsed() < Duration::from_secs(30) {
        let (failures, _) = storm(&pool, &prefix2, 4, 16, 1).await;
        if failures > 0 {
            last_failure = Some(killed.elapsed());
        } else if last_failure.is_none_or(|at| killed.elapsed() > at + Duration::from_secs(2)) {
            break;
        }
    }
    let window = last_failure.unwrap_or_default();
    assert!(window < Duration::from_secs(15), "requests failed for {window:?} after the master was killed");
    let prefix3 = format!("{prefix}-settled");
    assert_eq!(storm(&pool, &prefix3, 16, 64, 2).await, (0, true), "after the failover window");
    // Bring the node back (it rejoins as a replica), for the tests that follow.
    common::run_control_with(&restart, &port.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_managed_master_is_followed_across_a_failover() {
    let (Some(urls), Some(master)) =
        (common::require_env("REDIS_SENTINEL_URLS"), common::require_env("REDIS_SENTINEL_MASTER"))
    else {
        return;
    };
    let sentinels: Vec<&str> = urls.split(',').collect();
    let pool = Pool::builder(RedisManager::sentinel(&sentinels, &master).unwrap())
        .config(config(2, 4))
        .build()
        .await
        .unwrap();
    let key = format!("sentinel-{}", fastrand_suffix());
    let set = |value: i64| {
        let (pool, key) = (pool.clone(), key.clone());
        async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
    };
    set(1).await.unwrap();
    let sentinel = redis::Client::open(sentinels[0]).unwrap();
    let mut sconn = sentinel.get_multiplexed_async_connection().await.unwrap();
    let before: Vec<String> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(&master)
        .query_async(&mut sconn)
        .await
        .unwrap();
    let () = redis::cmd("SENTINEL").arg("FAILOVER").arg(&master).query_async(&mut sconn).await.unwrap();
    let started = Instant::now();
    let after = loop {
        let now: Vec<String> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&master)
            .query_async(&mut sconn)
            .await
            .unwrap();
        if now != before {
            break now;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no failover happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Until the Sentinels demote the old master it still takes writes (Redis's own window);
    // wait for it to become a replica.
    let old = redis::Client::open(format!("redis://{}:{}", before[0], before[1])).unwrap();
    loop {
        // A new connection each time: a master drops its clients when it is demoted.
        let role: Option<Vec<redis::Value>> = match old.get_multiplexed_async_connection().await {
            Ok(mut conn) => redis::cmd("ROLE").query_async(&mut conn).await.ok(),
            Err(_) => None,
        };
        if role.is_some_and(|role| role.first() == Some(&redis::Value::BulkString(b"slave".to_vec()))) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the old master was never demoted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes reach the new master: connections to the demoted one get READONLY, are closed,
    // and the pool asks the Sentinels again.
    let mut first_ok = None;
    for i in 0..200 {
        if set(i).await.is_ok() {
            first_ok = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_ok = first_ok.expect("no write succeeded after the failover");
    for i in 0..100 {
        set(100 + i).await.expect("every write succeeds once the pool follows the new master");
    }
    for _ in 0..4 {
        let mut conn = pool.get().await.unwrap();
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut *conn).await.unwrap();
        assert!(
            info.contains(&format!("tcp_port:{}", after[1])),
            "a pooled connection still talks to the old master"
        );
    }
    assert!(pool.metrics().closed.broken >= 1, "the demoted master's connections were closed");
    println!("first write on the new master {first_ok:?} after the failover started; {}", pool.metrics());
}
