//! `cache-tiered`: the latency of one get through `bounded_cache::tier::TieredCache` when it hits
//! L1, when it hits Redis (L2), and when it misses both (L2 lookup, loader, L2 write); and of an
//! invalidation (one instance writes a key, until another instance's L1 copy is gone: SET,
//! PUBLISH, the message's delivery). Beside them, a plain Redis GET through the redis crate on one
//! multiplexed connection, in the same run. On a single Redis (`REDIS_URL`) and, when
//! `REDIS_CLUSTER_URLS` is set, on the three-master cluster (ids `.../cluster`):
//! `scripts/servers.sh cargo bench -p benches --bench cache-tiered`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bounded_cache::tier::TieredCache;
use connpool::redis::RedisManager;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use redis::aio::ConnectionLike;

/// A plain connection for the reference GET: multiplexed to one server, or cluster-aware.
#[derive(Clone)]
enum Plain {
    Server(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Plain {
    async fn get(mut self, key: &str) -> Option<Vec<u8>> {
        let cmd = redis::cmd("GET").arg(key).clone();
        let reply = match &mut self {
            Plain::Server(conn) => conn.req_packed_command(&cmd).await,
            Plain::Cluster(conn) => conn.req_packed_command(&cmd).await,
        };
        redis::from_redis_value(reply.unwrap()).unwrap()
    }
}

fn tiered(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("cache-tiered skipped: REDIS_URL is not set (run through scripts/servers.sh)");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut deployments = vec![("single", RedisManager::new(&url).unwrap(), None)];
    if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS") {
        let seeds: Vec<String> = urls.split(',').map(str::to_string).collect();
        deployments.push(("cluster", RedisManager::cluster(&seeds).unwrap(), Some(seeds)));
    }
    let value = "x".repeat(100);
    let mut group = c.benchmark_group("cache-tiered");
    group.measurement_time(Duration::from_secs(5));
    for (name, manager, seeds) in deployments {
        let (cache, no_l1, other, plain) = rt.block_on(async {
            let pool = || {
                connpool::Pool::builder(manager.clone()).configure(|c| c.max_size = 4).build_lazy().unwrap()
            };
            let ns = format!("bench-{}-{name}", std::process::id());
            let cache: TieredCache<String> = TieredCache::builder(pool(), &ns, 1).build().await.unwrap();
            // An L1 too small for any entry: every get goes to Redis.
            let no_l1: TieredCache<String> =
                TieredCache::builder(pool(), &ns, 1).l1_budget(1).build().await.unwrap();
            let other: TieredCache<String> = TieredCache::builder(pool(), &ns, 1).build().await.unwrap();
            cache.insert("hot", value.clone()).await;
            let plain = match &seeds {
                None => Plain::Server(
                    redis::Client::open(url.as_str())
                        .unwrap()
                        .get_multiplexed_async_connection()
                        .await
                        .unwrap(),
                ),
                Some(seeds) => Plain::Cluster(
                    redis::cluster::ClusterClient::new(seeds.clone())
                        .unwrap()
                        .get_async_connection()
                        .await
                        .unwrap(),
                ),
            };
            (cache, no_l1, other, plain)
        });
        let redis_key = cache.redis_key("hot");
        if name == "single" {
            group.bench_function(BenchmarkId::new("ours-l1-hit", "100B"), |b| {
                b.to_async(&rt).iter(|| async {
                    cache
                        .get_or_load("hot", || async { Ok::<_, std::io::Error>(String::new()) })
                        .await
                        .unwrap()
                });
            });
        }
        group.bench_function(BenchmarkId::new("ours-l2-hit", name), |b| {
            b.to_async(&rt).iter(|| async { no_l1.get("hot").await.unwrap() });
        });
        let n = AtomicU64::new(0);
        group.bench_function(BenchmarkId::new("ours-miss", name), |b| {
            b.to_async(&rt).iter(|| async {
                let key = format!("miss-{}", n.fetch_add(1, Ordering::Relaxed));
                let v = value.clone();
                no_l1.get_or_load(&key, || async move { Ok::<_, std::io::Error>(v) }).await.unwrap()
            });
        });
        // From `cache` writing a key until `other` has dropped its L1 copy.
        group.bench_function(BenchmarkId::new("ours-invalidation", name), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (cache, other, value, n) = (&cache, &other, &value, &n);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let key = format!("inv-{}", n.fetch_add(1, Ordering::Relaxed));
                        let v = value.clone();
                        other.get_or_load(&key, || async move { Ok::<_, std::io::Error>(v) }).await.unwrap();
                        assert!(other.l1_contains(&key), "the reader holds no L1 copy: {}", other.stats());
                        let start = Instant::now();
                        cache.insert(&key, value.clone()).await;
                        while other.l1_contains(&key) {
                            assert!(
                                start.elapsed() < Duration::from_secs(5),
                                "no invalidation: {}",
                                other.stats()
                            );
                            tokio::task::yield_now().await;
                        }
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
        group.bench_function(BenchmarkId::new("redis-get", name), |b| {
            b.to_async(&rt).iter(|| plain.clone().get(&redis_key));
        });
    }
    group.finish();
}

criterion_group!(benches, tiered);
criterion_main!(benches);
