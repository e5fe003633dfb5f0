//! `compute`, `insert_if_absent` and `remove_if`: atomic per key, coalesced with loaders, and an
//! invalidation wins. Interleavings are forced with channels and the cache's own counters.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex};
use std::thread;

use bounded_cache::{Cache, Compute, Computed, InsertErrorKind};

/// Waits (yielding, no sleep) until `n` callers have joined a flight in progress.
fn until_coalesced(cache: &Cache<u32, u64>, n: u64) {
    while cache.stats().coalesced < n {
        thread::yield_now();
    }
}

#[test]
fn eight_threads_counting_with_compute_lose_no_increment() {
    const THREADS: u64 = 8;
    const EACH: u64 = if cfg!(miri) { 20 } else { 10_000 };
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let barrier = Barrier::new(THREADS as usize);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..EACH {
                    cache.compute(1, |n| Compute::Put(n.map_or(1, |n| n + 1))).unwrap();
                }
            });
        }
    });
    assert_eq!(cache.get(&1), Some(THREADS * EACH));
}

#[test]
fn a_write_that_lands_while_the_function_runs_makes_it_run_again() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    cache.insert(1, 10).unwrap();
    let (running_tx, running_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let seen = Mutex::new(Vec::new());
    let result = thread::scope(|s| {
        let computing = s.spawn(|| {
            cache.compute(1, |n| {
                seen.lock().unwrap().push(n.copied());
                if seen.lock().unwrap().len() == 1 {
                    running_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                }
                Compute::Put(n.map_or(0, |n| n + 1))
            })
        });
        running_rx.recv().unwrap();
        cache.insert(1, 100).unwrap(); // lands while the function runs
        go_tx.send(()).unwrap();
        computing.join().unwrap()
    });
    assert_eq!(*seen.lock().unwrap(), [Some(10), Some(100)], "ran again on the inserted value");
    assert_eq!(result.unwrap(), Computed::Replaced { old: 100, new: 101 });
    assert_eq!(cache.get(&1), Some(101), "the insert was not lost");
}

#[test]
fn a_loader_waiting_on_a_compute_takes_its_value() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let (running_tx, running_rx) = mpsc::channel();
    thread::scope(|s| {
        let computing = s.spawn(|| {
            cache.compute(1, |n| {
                assert_eq!(n, None);
                running_tx.send(()).unwrap();
                until_coalesced(&cache, 1);
                Compute::Put(5)
            })
        });
        running_rx.recv().unwrap();
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("the compute's value is shared")), 5);
        assert_eq!(computing.join().unwrap().unwrap(), Computed::Inserted(5));
    });
    let s = cache.stats();
    assert_eq!((s.loads, s.coalesced), (0, 1), "one flight for both, and it was no load");
}

#[test]
fn a_compute_waits_for_a_load_in_flight_and_computes_on_its_value() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let (loading_tx, loading_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let cache = &cache;
        let loading = s.spawn(move || {
            cache.get_or_insert_with(1, || {
                loading_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                7
            })
        });
        loading_rx.recv().unwrap();
        let computing = s.spawn(move || cache.compute(1, |n| Compute::Put(n.unwrap() * 10)));
        // The compute found the load's flight and waits on it.
        until_coalesced(cache, 1);
        go_tx.send(()).unwrap();
        assert_eq!(loading.join().unwrap(), 7);
        assert_eq!(computing.join().unwrap().unwrap(), Computed::Replaced { old: 7, new: 70 });
    });
    assert_eq!(cache.get(&1), Some(70));
}

#[test]
fn after_a_compute_that_removes_or_keeps_nothing_a_waiting_loader_loads() {
    for decision in [Compute::Remove, Compute::Keep] {
        let cache: Cache<u32, u64> = Cache::new(1 << 20);
        let (running_tx, running_rx) = mpsc::channel();
        let loads = AtomicUsize::new(0);
        thread::scope(|s| {
            let computing = s.spawn(|| {
                cache.compute(1, |_| {
                    running_tx.send(()).unwrap();
                    until_coalesced(&cache, 1);
                    decision.clone()
                })
            });
            running_rx.recv().unwrap();
            let loaded = cache.get_or_insert_with(1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                3
            });
            assert_eq!(loaded, 3);
            assert_eq!(computing.join().unwrap().unwrap(), Computed::Absent);
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1, "{decision:?}: the waiter ran its own loader");
        assert_eq!(cache.get(&1), Some(3));
    }
}

#[test]
fn a_panicking_function_changes_nothing_and_hands_over() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    cache.insert(1, 1).unwrap();
    let weight = cache.weighed_size();
    let (running_tx, running_rx) = mpsc::channel();
    thread::scope(|s| {
        let panicking = s.spawn(|| {
            cache.compute(1, |_| {
                running_tx.send(()).unwrap();
                until_coalesced(&cache, 1);
                panic!("compute failed");
            })
        });
        running_rx.recv().unwrap();
        // Reads do not wait for a compute: they see the value it has not replaced.
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("the entry is still there")), 1);
        // A compute waits on the panicking one's flight, then runs on the unchanged value.
        let after = cache.compute(1, |n| Compute::Put(n.unwrap() + 1)).unwrap();
        assert_eq!(after, Computed::Replaced { old: 1, new: 2 });
        assert!(panicking.join().is_err());
    });
    assert_eq!((cache.get(&1), cache.weighed_size()), (Some(2), weight));
}

#[test]
fn computing_the_same_key_from_inside_panics_instead_of_deadlocking() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let nested = catch_unwind(AssertUnwindSafe(|| {
        cache.compute(1, |_| {
            let _ = cache.compute(1, |_| Compute::Keep);
            Compute::Keep
        })
    }));
    assert!(nested.is_err());
    let loading = catch_unwind(AssertUnwindSafe(|| {
        cache.compute(1, |_| Compute::Put(cache.get_or_insert_with(1, || 1)))
    }));
    assert!(loading.is_err());
    // Other keys are fine, and the cache is usable.
    let other = cache.compute(1, |_| Compute::Put(cache.get_or_insert_with(2, || 2) + 1)).unwrap();
    assert_eq!(other, Computed::Inserted(3));
}

#[test]
fn insert_if_absent_and_remove_if() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    assert_eq!(cache.insert_if_absent(1, 10).unwrap(), 10);
    assert_eq!(cache.insert_if_absent(1, 20).unwrap(), 10, "the present value wins");
    assert_eq!(cache.remove_if(1, |v| *v > 10), None);
    assert_eq!(cache.get(&1), Some(10));
    assert_eq!(cache.remove_if(1, |v| *v == 10), Some(10));
    assert_eq!(cache.remove_if(1, |_| true), None);
    assert!(!cache.contains(&1));
    assert_eq!(cache.compute(1, |_| Compute::Remove).unwrap(), Computed::Absent);
    assert_eq!(cache.compute(2, |_| Compute::Put(2)).unwrap().into_value(), Some(2));
    assert_eq!(cache.compute(2, |_| Compute::Keep).unwrap().value(), Some(&2));
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (1, 0), "computes are not lookups: only the get counted");
}

#[test]
fn a_value_heavier_than_the_budget_comes_back_and_the_old_one_goes() {
    let cache: Cache<u32, Vec<u8>> = Cache::new(1024);
    cache.insert(1, vec![1]).unwrap();
    let err = cache.compute(1, |_| Compute::Put(vec![0; 4096])).unwrap_err();
    assert_eq!((err.key, err.value.len(), err.kind), (1, 4096, InsertErrorKind::TooHeavy));
    assert!(!cache.contains(&1), "no older value may stay");
    let err = cache.insert_if_absent(2, vec![0; 4096]).unwrap_err();
    assert_eq!(err.value.len(), 4096);
    assert_eq!((cache.len(), cache.weighed_size()), (0, 0));
    assert_eq!(cache.stats().rejected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_computes_from_many_tasks_lose_no_increment() {
    const TASKS: u64 = 8;
    const EACH: u64 = if cfg!(miri) { 5 } else { 500 };
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    cache
                        .compute_async(1, |n| async move {
                            tokio::task::yield_now().await; // other tasks run mid-compute
                            Compute::Put(n.map_or(1, |n| n + 1))
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.get(&1), Some(TASKS * EACH));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_async_compute_changes_nothing_and_hands_over() {
    let cache: Cache<u32, u64> = Cache::new(1 << 20);
    cache.insert(1, 1).unwrap();
    let (running_tx, running_rx) = tokio::sync::oneshot::channel();
    let stuck = tokio::spawn({
        let cache = cache.clone();
        async move {
            let mut running_tx = Some(running_tx);
            cache
                .compute_async(1, |_| {
                    let running_tx = running_tx.take();
                    async move {
                        running_tx.map(|tx| tx.send(()));
                        std::future::pending::<Compute<u64>>().await
                    }
                })
                .await
        }
    });
    running_rx.await.unwrap();
    let waiting = tokio::spawn({
        let cache = cache.clone();
        async move { cache.compute_async(1, |n| async move { Compute::Put(n.unwrap() + 1) }).await }
    });
    // The second compute waits on the first one's flight; then the first is cancelled.
    while cache.stats().coalesced < 1 {
        tokio::task::yield_now().await;
    }
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(waiting.await.unwrap().unwrap(), Computed::Replaced { old: 1, new: 2 });
    assert_eq!(cache.get(&1), Some(2));
}
