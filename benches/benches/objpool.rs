//! `objpool` against its peers.
//!
//! - `objpool-steady`: each thread gets a `Vec<u8>`, writes to it and returns it (reset clears
//!   it), in a loop; the parameter is the thread count. Threads start together at a barrier
//!   that is outside the timed region. `ours-exact-peak` is ours with the exact peak's shared
//!   counter of checkouts (`Builder::exact_peak(true)`).
//! - `objpool-async`: 64 tasks on a two-worker tokio runtime share a pool of 8; each task gets
//!   an object 10 times, holding it across a yield so that the pool is always contended.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use support::run_threads;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const POOL: usize = 16;
const CAPACITY: usize = 64;

fn new_vec() -> Vec<u8> {
    Vec::with_capacity(CAPACITY)
}

struct OpoolVec;

impl opool::PoolAllocator<Vec<u8>> for OpoolVec {
    fn allocate(&self) -> Vec<u8> {
        new_vec()
    }

    fn reset(&self, obj: &mut Vec<u8>) {
        obj.clear();
    }
}

fn steady(c: &mut Criterion) {
    let mut group = c.benchmark_group("objpool-steady");
    for threads in [1usize, 2] {
        group.throughput(per_thread(threads));
        // `ours-exact-peak` shows the cost of counting every checkout (off by default).
        for (name, exact_peak) in [("ours", false), ("ours-exact-peak", true)] {
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                let pool = objpool::Pool::builder()
                    .max_size(POOL)
                    .exact_peak(exact_peak)
                    .reset(|v: &mut Vec<u8>| v.clear())
                    .build(new_vec)
                    .unwrap();
                b.iter_custom(|iters| {
                    run_threads(&pool, threads, iters, |pool| {
                        let mut v = pool.try_get().unwrap();
                        v.push(black_box(1));
                    })
                });
            });
        }
        group.bench_with_input(BenchmarkId::new("lockfree-object-pool", threads), &threads, |b, &threads| {
            let pool = lockfree_object_pool::LinearObjectPool::new(new_vec, |v| v.clear());
            b.iter_custom(|iters| {
                run_threads(&pool, threads, iters, |pool| {
                    let mut v = pool.pull();
                    v.push(black_box(1));
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("object-pool", threads), &threads, |b, &threads| {
            let pool = object_pool::Pool::new(POOL, new_vec);
            b.iter_custom(|iters| {
                run_threads(&pool, threads, iters, |pool| {
                    let mut v = pool.pull(new_vec);
                    v.push(black_box(1));
                    // object-pool has no reset hook: the user clears before returning.
                    v.clear();
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("opool", threads), &threads, |b, &threads| {
            let pool = opool::Pool::new(POOL, OpoolVec);
            b.iter_custom(|iters| {
                run_threads(&pool, threads, iters, |pool| {
                    let mut v = pool.get();
                    v.push(black_box(1));
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("sharded-slab", threads), &threads, |b, &threads| {
            // sharded-slab's `Pool` clears a `Vec` (its `Clear` impl) when the entry is cleared.
            let pool = sharded_slab::Pool::<Vec<u8>>::new();
            b.iter_custom(|iters| {
                run_threads(&pool, threads, iters, |pool| {
                    let mut v = pool.create().unwrap();
                    v.push(black_box(1));
                    let key = v.key();
                    drop(v);
                    pool.clear(key);
                })
            });
        });
    }
    group.finish();
}

const ASYNC_POOL: usize = 8;
const TASKS: usize = 64;
const GETS_PER_TASK: usize = 10;

fn contended_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("objpool-async");
    group.throughput(Throughput::Elements((TASKS * GETS_PER_TASK) as u64));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let param = format!("{ASYNC_POOL}x{TASKS}");

    group.bench_function(BenchmarkId::new("ours", &param), |b| {
        let pool = objpool::Pool::builder()
            .max_size(ASYNC_POOL)
            .pre_create(ASYNC_POOL)
            .reset(|v: &mut Vec<u8>| v.clear())
            .build(new_vec)
            .unwrap();
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            for _ in 0..GETS_PER_TASK {
                                let mut v = pool.get_async().await.unwrap();
                                v.push(black_box(1));
                                tokio::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        });
    });

    group.bench_function(BenchmarkId::new("deadpool", &param), |b| {
        let pool =
            Arc::new(deadpool::unmanaged::Pool::from((0..ASYNC_POOL).map(|_| new_vec()).collect::<Vec<_>>()));
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            for _ in 0..GETS_PER_TASK {
                                let mut v = pool.get().await.unwrap();
                                v.push(black_box(1));
                                tokio::task::yield_now().await;
                                // deadpool's unmanaged pool has no reset hook.
                                v.clear();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        });
    });
    group.finish();
}

/// One get-and-return per thread per iteration.
fn per_thread(threads: usize) -> Throughput {
    Throughput::Elements(threads as u64)
}

criterion_group!(benches, steady, contended_async);
criterion_main!(benches);
