//! The counters, with `Tracking` as this test binary's global allocator.

use std::hint::black_box;

use alloctrack::{Scope, Tracking, assert_max_allocs, assert_no_alloc, measure, snapshot};

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

#[test]
fn counts_are_exact_for_known_patterns_on_one_thread() {
    let scope = Scope::start();
    let boxed = black_box(Box::new([0u8; 100]));
    let stats = scope.stats();
    assert_eq!((stats.allocations, stats.bytes_allocated, stats.deallocations), (1, 100, 0));
    drop(boxed);
    let stats = scope.stats();
    assert_eq!((stats.deallocations, stats.bytes_freed, stats.net_bytes()), (1, 100, 0));

    let (_, stats) = measure(|| {
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend([1, 2, 3, 4]);
        v.push(5); // grows: one reallocation from 32 to 64 bytes
        black_box(&v);
    });
    assert_eq!(stats.allocations, 1);
    assert_eq!(stats.reallocations, 1);
    assert_eq!(stats.deallocations, 1);
    assert_eq!(stats.bytes_allocated, 32 + 64, "{stats}");
    assert_eq!(stats.bytes_freed, 32 + 64, "{stats}");
}

#[test]
fn allocation_helpers_pass_and_fail_with_counts() {
    let data = [1u32, 2, 3];
    assert_eq!(assert_no_alloc(|| data.iter().sum::<u32>()), 6);
    assert_eq!(assert_max_allocs(2, || black_box(vec![0u8; 8]).len()), 8);

    let failure = std::panic::catch_unwind(|| assert_no_alloc(|| black_box(String::from("hello"))));
    let message = failure.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("expected at most 0 allocations, but the closure made 1 allocations (5 B)"),
        "{message}"
    );

    let failure = std::panic::catch_unwind(|| {
        assert_max_allocs(1, || (black_box(Box::new(1)), black_box(Box::new(2))))
    });
    assert!(failure.is_err());
}

#[test]
fn scopes_ignore_other_threads() {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let other = {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            barrier.wait();
            for _ in 0..if cfg!(miri) { 20 } else { 1000 } {
                black_box(vec![0u8; 64]);
            }
            barrier.wait();
        })
    };
    let scope = Scope::start();
    barrier.wait();
    barrier.wait();
    let stats = scope.stats();
    assert_eq!(stats.allocations, 0, "{stats}");
    other.join().unwrap();
}

#[test]
fn counts_of_exited_threads_stay_in_the_totals() {
    const THREADS: u64 = if cfg!(miri) { 2 } else { 8 };
    const EACH: u64 = if cfg!(miri) { 50 } else { 500 };
    // Other tests run at the same time: measure this test's threads by their own scopes
    // and check the process totals grow by at least as much.
    let before = snapshot();
    let per_thread: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                let (_, stats) = measure(|| {
                    for i in 0..EACH {
                        black_box(vec![0u8; 1 + i as usize % 100]);
                    }
                });
                stats
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    for stats in &per_thread {
        assert_eq!((stats.allocations, stats.deallocations), (EACH, EACH));
    }
    let after = snapshot();
    assert!(after.allocations - before.allocations >= THREADS * EACH);
    assert!(after.deallocations - before.deallocations >= THREADS * EACH);
    let bytes: u64 = per_thread.iter().map(|s| s.bytes_allocated).sum();
    assert_eq!(bytes, THREADS * (0..EACH).map(|i| 1 + i % 100).sum::<u64>());
    assert!(after.bytes_allocated - before.bytes_allocated >= bytes);
}

#[test]
fn allocations_during_thread_teardown_are_counted() {
    struct AllocatesOnDrop;
    impl Drop for AllocatesOnDrop {
        fn drop(&mut self) {
            // Runs among the thread's TLS destructors, possibly after its slot was released.
            black_box(vec![0u8; 4096]);
        }
    }
    std::thread_local! { static LATE: AllocatesOnDrop = const { AllocatesOnDrop }; }
    let before = snapshot();
    std::thread::spawn(|| LATE.with(|_| ())).join().unwrap();
    let after = snapshot();
    assert!(after.bytes_allocated - before.bytes_allocated >= 4096);
}

#[test]
#[cfg_attr(miri, ignore = "64 MiB is too slow to fill under Miri")]
fn peak_and_live_bytes_follow_a_large_allocation() {
    let big = black_box(vec![1u8; 64 << 20]);
    let during = snapshot();
    assert!(during.live_bytes >= 64 << 20, "{during}");
    assert!(during.peak_live_bytes >= during.live_bytes);
    drop(big);
    let after = snapshot();
    assert!(after.peak_live_bytes >= 64 << 20, "the peak forgot the 64 MiB: {after}");
    assert!(after.tracking);
    let text = after.to_string();
    assert!(text.starts_with("live ") && text.contains("allocations"), "{text}");
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn stress_many_threads_balance_out() {
    // Threads allocate on one thread and free on another; totals must balance.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let before = snapshot();
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..5000 {
                    tx.send(vec![0u8; 16 + i % 512]).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || rx.iter().map(|v| v.len()).sum::<usize>());
    for p in producers {
        p.join().unwrap();
    }
    let total = consumer.join().unwrap();
    assert_eq!(total, 4 * (0..5000).map(|i| 16 + i % 512).sum::<usize>());
    let after = snapshot();
    assert!(after.allocations - before.allocations >= 20_000);
    assert!(after.deallocations - before.deallocations >= 20_000);
}
