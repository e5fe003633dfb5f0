//! `cache-tiered`: the latency of one get through `bounded_cache::tier::TieredCache` when it hits
//! L1, when it hits Redis (L2), and when it misses both (L2 lookup, loader, L2 write), against a
//! plain Redis GET through the redis crate on one multiplexed connection. Needs `REDIS_URL`
//! (`scripts/servers.sh cargo bench -p benches --bench cache-tiered`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cache::tier::TieredCache;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn tiered(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("cache-tiered skipped: REDIS_URL is not set (run through scripts/servers.sh)");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let value = "x".repeat(100);
    let (cache, no_l1, mut plain) = rt.block_on(async {
        let pool = |url: &str| {
            let manager = connpool::redis::RedisManager::new(url).unwrap();
            connpool::Pool::builder(manager).configure(|c| c.max_size = 4).build_lazy().unwrap()
        };
        let ns = format!("bench-{}", std::process::id());
        let cache: TieredCache<String> = TieredCache::builder(pool(&url), &ns, 1).build().await.unwrap();
        // An L1 too small for any entry: every get goes to Redis.
        let no_l1: TieredCache<String> =
            TieredCache::builder(pool(&url), &ns, 1).l1_budget(1).build().await.unwrap();
        cache.insert("hot", value.clone()).await;
        let client = redis::Client::open(url.as_str()).unwrap();
        let plain = client.get_multiplexed_async_connection().await.unwrap();
        (cache, no_l1, plain)
    });
    let redis_key = cache.redis_key("hot");
    let mut group = c.benchmark_group("cache-tiered");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("ours-l1-hit", "100B"), |b| {
        b.to_async(&rt).iter(|| async {
            cache.get_or_load("hot", || async { Ok::<_, std::io::Error>(String::new()) }).await.unwrap()
        });
    });
    group.bench_function(BenchmarkId::new("ours-l2-hit", "100B"), |b| {
        b.to_async(&rt).iter(|| async { no_l1.get("hot").await.unwrap() });
    });
    let n = AtomicU64::new(0);
    group.bench_function(BenchmarkId::new("ours-miss", "100B"), |b| {
        b.to_async(&rt).iter(|| async {
            let key = format!("miss-{}", n.fetch_add(1, Ordering::Relaxed));
            let v = value.clone();
            no_l1.get_or_load(&key, || async move { Ok::<_, std::io::Error>(v) }).await.unwrap()
        });
    });
    group.bench_function(BenchmarkId::new("redis-get", "100B"), |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = plain.clone();
            let key = redis_key.clone();
            async move { redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(&mut conn).await.unwrap() }
        });
    });
    group.finish();
    let _ = &mut plain;
}

criterion_group!(benches, tiered);
criterion_main!(benches);
