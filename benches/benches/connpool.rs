//! `connpool-noop`: the pool's own overhead, by the public rust-pool-benchmark method.
//!
//! A manager hands out an integer; `tasks` tokio tasks (2 worker threads) each check out a
//! connection 10 times; one iteration is the time until all tasks finish. Parameter
//! `<pool size>x<tasks>`. bb8 runs with `test_on_check_out(false)` so that no pool validates on
//! checkout (ours does not by default; deadpool's `recycle` runs on every checkout and here
//! does nothing).

use std::convert::Infallible;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const CHECKOUTS_PER_TASK: usize = 10;

struct Ours;

impl connpool::Manager for Ours {
    type Connection = usize;
    type Error = Infallible;

    async fn connect(&self) -> Result<usize, Infallible> {
        Ok(0)
    }

    async fn validate(&self, _conn: &mut usize) -> Result<(), Infallible> {
        Ok(())
    }
}

struct Deadpool;

impl deadpool::managed::Manager for Deadpool {
    type Type = usize;
    type Error = Infallible;

    async fn create(&self) -> Result<usize, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _conn: &mut usize,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

struct Bb8;

impl bb8::ManageConnection for Bb8 {
    type Connection = usize;
    type Error = Infallible;

    async fn connect(&self) -> Result<usize, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _conn: &mut usize) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut usize) -> bool {
        false
    }
}

/// Runs `tasks` tasks of `CHECKOUTS_PER_TASK` checkouts each through `checkout`.
async fn run<P, F>(pool: &Arc<P>, tasks: usize, checkout: fn(Arc<P>) -> F)
where
    P: Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..CHECKOUTS_PER_TASK {
                    checkout(pool.clone()).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

fn noop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("connpool-noop");
    for size in [4usize, 8, 16] {
        for tasks in [4usize, 16, 64, 256] {
            let param = format!("{size}x{tasks}");
            group.throughput(Throughput::Elements((tasks * CHECKOUTS_PER_TASK) as u64));

            let ours = rt.block_on(async {
                connpool::Pool::builder(Ours)
                    .configure(|c| {
                        c.max_size = size;
                        c.min_size = size;
                    })
                    .build()
                    .await
                    .unwrap()
            });
            let ours = Arc::new(ours);
            group.bench_function(BenchmarkId::new("ours", &param), |b| {
                b.iter(|| {
                    rt.block_on(run(&ours, tasks, |pool| async move {
                        drop(pool.get().await.unwrap());
                    }))
                })
            });

            let deadpool = Arc::new(
                deadpool::managed::Pool::<Deadpool>::builder(Deadpool)
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .unwrap(),
            );
            group.bench_function(BenchmarkId::new("deadpool", &param), |b| {
                b.iter(|| {
                    rt.block_on(run(&deadpool, tasks, |pool| async move {
                        drop(pool.get().await.unwrap());
                    }))
                })
            });

            let bb8 = rt.block_on(async {
                bb8::Pool::builder().max_size(size as u32).test_on_check_out(false).build(Bb8).await.unwrap()
            });
            let bb8 = Arc::new(bb8);
            group.bench_function(BenchmarkId::new("bb8", &param), |b| {
                b.iter(|| {
                    rt.block_on(run(&bb8, tasks, |pool| async move {
                        drop(pool.get().await.unwrap());
                    }))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, noop);
criterion_main!(benches);
