//! `connpool-postgres`: `SELECT 1` through a real PostgreSQL server, ours against
//! deadpool-postgres and bb8-postgres. Parameter `<pool size>x<tasks>`; each task runs 10
//! queries; one iteration is the time until all tasks finish.
//!
//! Reads `DATABASE_URL`: `scripts/servers.sh cargo bench -p benches --bench connpool-postgres`.
//! Without it the group is skipped with a message.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const QUERIES_PER_TASK: usize = 10;

/// One iteration on `$pool` (any of the three pools: each `get` gives a guard that derefs to a
/// `tokio_postgres::Client`): `$tasks` tasks, each running `SELECT 1` `QUERIES_PER_TASK` times
/// on a connection checked out for it.
macro_rules! select_one_round {
    ($rt:expr, $tasks:expr, $pool:expr) => {
        || {
            let shared = $pool.clone();
            $rt.block_on(run($tasks, move |_| {
                let pool = shared.clone();
                async move {
                    let conn = pool.get().await.unwrap();
                    conn.simple_query("SELECT 1").await.unwrap();
                }
            }))
        }
    };
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("connpool-postgres skipped: DATABASE_URL is not set (run through scripts/servers.sh)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("connpool-postgres");
    group.sample_size(30);
    for size in [4usize, 16] {
        for tasks in [16usize, 64] {
            let param = format!("{size}x{tasks}");
            group.throughput(Throughput::Elements((tasks * QUERIES_PER_TASK) as u64));

            let ours = Arc::new(rt.block_on(async {
                connpool::Pool::builder(connpool::postgres::PgManager::new(&url).unwrap())
                    .configure(|c| {
                        c.min_size = size;
                        c.max_size = size;
                    })
                    .build()
                    .await
                    .unwrap()
            }));
            let ours_round = select_one_round!(rt, tasks, ours);

            let deadpool = {
                let pg: tokio_postgres::Config = url.parse().unwrap();
                let manager = deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls);
                Arc::new(deadpool_postgres::Pool::builder(manager).max_size(size).build().unwrap())
            };
            let deadpool_round = select_one_round!(rt, tasks, deadpool);

            let bb8 = Arc::new(rt.block_on(async {
                let manager =
                    bb8_postgres::PostgresConnectionManager::new_from_stringlike(&url, tokio_postgres::NoTls)
                        .unwrap();
                bb8::Pool::builder()
                    .max_size(size as u32)
                    .min_idle(Some(size as u32))
                    .build(manager)
                    .await
                    .unwrap()
            }));
            let bb8_round = select_one_round!(rt, tasks, bb8);
            let sides: [(&str, &dyn Fn()); 3] =
                [("ours", &ours_round), ("deadpool", &deadpool_round), ("bb8", &bb8_round)];
            for (name, round) in in_order(sides) {
                group.bench_function(BenchmarkId::new(name, &param), |b| b.iter(round));
            }
        }
    }
    group.finish();
}

/// The benchmarks of one point in the order given, or reversed when `BENCH_REVERSE` is set:
/// `scripts/bench-connpool-postgres.py` alternates between rounds, so that no side always runs
/// first (an A/A check, one pool benchmarked three times in a row, found the position alone
/// moving a result by a few percent).
fn in_order<T, const N: usize>(mut sides: [T; N]) -> [T; N] {
    if std::env::var_os("BENCH_REVERSE").is_some() {
        sides.reverse();
    }
    sides
}

/// Runs `tasks` tasks, each making `QUERIES_PER_TASK` calls of `query`.
async fn run<F, Fut>(tasks: usize, query: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let query = query.clone();
            tokio::spawn(async move {
                for _ in 0..QUERIES_PER_TASK {
                    query(t).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// `connpool-postgres-tls`: the same workload over TLS (rustls) to the TLS-only server of
/// `scripts/servers.sh`, ours beside deadpool-postgres with the same connector.
fn postgres_tls(c: &mut Criterion) {
    let (Ok(url), Ok(ca)) = (std::env::var("PG_TLS_URL"), std::env::var("TLS_CA_FILE")) else {
        eprintln!("connpool-postgres-tls skipped: PG_TLS_URL is not set (run through scripts/servers.sh)");
        return;
    };
    let tls = connpool::tls_client_config(connpool::tls_roots(&std::fs::read(ca).unwrap()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("connpool-postgres-tls");
    group.sample_size(30);
    for size in [4usize, 16] {
        for tasks in [16usize, 64] {
            let param = format!("{size}x{tasks}");
            group.throughput(Throughput::Elements((tasks * QUERIES_PER_TASK) as u64));

            let ours = Arc::new(rt.block_on(async {
                connpool::Pool::builder(connpool::postgres::PgManager::rustls(&url, tls.clone()).unwrap())
                    .configure(|c| {
                        c.min_size = size;
                        c.max_size = size;
                    })
                    .build()
                    .await
                    .unwrap()
            }));
            let ours_round = select_one_round!(rt, tasks, ours);

            let deadpool = {
                let pg: tokio_postgres::Config = url.parse().unwrap();
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone());
                let manager = deadpool_postgres::Manager::new(pg, connector);
                Arc::new(deadpool_postgres::Pool::builder(manager).max_size(size).build().unwrap())
            };
            let deadpool_round = select_one_round!(rt, tasks, deadpool);
            let sides: [(&str, &dyn Fn()); 2] = [("ours", &ours_round), ("deadpool", &deadpool_round)];
            for (name, round) in in_order(sides) {
                group.bench_function(BenchmarkId::new(name, &param), |b| b.iter(round));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, postgres, postgres_tls);
criterion_main!(benches);
