//! Many threads and tasks hammering one pool, with the invariants checked throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use objpool::Pool;

/// An object that knows whether someone holds it.
struct Probe {
    held: AtomicBool,
    live: Arc<AtomicUsize>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

const MAX: usize = 4;

#[test]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
fn threads_never_share_an_object_or_exceed_max_size() {
    let live = Arc::new(AtomicUsize::new(0));
    let counter = live.clone();
    let pool = Pool::builder()
        .max_size(MAX)
        .pre_create(1)
        .build(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Probe { held: AtomicBool::new(false), live: counter.clone() }
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Objects detached (the slot freed) and objects detached and then dropped.
    let detaching = Arc::new(AtomicUsize::new(0));
    let detached_dropped = Arc::new(AtomicUsize::new(0));
    let checker = {
        let (pool, live, stop) = (pool.clone(), live.clone(), stop.clone());
        let (detaching, detached_dropped) = (detaching.clone(), detached_dropped.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let stats = pool.stats();
                assert!(stats.size() <= MAX, "{stats}");
                // A detached object lives outside the pool until its holder drops it: read the
                // counters so that `outside` over-estimates those at the moment `live` is read.
                let dropped = detached_dropped.load(Ordering::SeqCst);
                let live_now = live.load(Ordering::SeqCst);
                let outside = detaching.load(Ordering::SeqCst) - dropped;
                assert!(live_now <= MAX + outside, "{live_now} live, {outside} detached: {stats}");
                checks += 1;
            }
            checks
        })
    };
    let workers: Vec<_> = (0..6)
        .map(|t| {
            let pool = pool.clone();
            let (detaching, detached_dropped) = (detaching.clone(), detached_dropped.clone());
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let guard = match (i + t) % 4 {
                        0 => pool.try_get().ok(),
                        1 => pool.get_timeout(Duration::from_millis(1)).ok(),
                        _ => Some(pool.get().unwrap()),
                    };
                    let Some(guard) = guard else { continue };
                    assert!(!guard.held.swap(true, Ordering::SeqCst), "object handed out twice");
                    std::hint::spin_loop();
                    guard.held.store(false, Ordering::SeqCst);
                    match i % 97 {
                        0 => {
                            detaching.fetch_add(1, Ordering::SeqCst);
                            drop(guard.detach());
                            detached_dropped.fetch_add(1, Ordering::SeqCst);
                        }
                        1 => guard.discard(),
                        _ => drop(guard),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(checker.join().unwrap() > 0);
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats}");
    assert_eq!(stats.idle, live.load(Ordering::SeqCst));
    assert!(
        stats.created as usize - stats.detached as usize - stats.discarded as usize == stats.idle,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
async fn tasks_with_cancellations_lose_nothing() {
    let pool = Pool::builder().max_size(3).build(|| AtomicBool::new(false)).unwrap();
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..500u64 {
                    // Some acquires are cancelled by a timeout that fires at once or soon.
                    let wait = Duration::from_micros((t * 7 + i * 13) % 50);
                    if let Ok(Ok(guard)) = tokio::time::timeout(wait, pool.get_async()).await {
                        assert!(!guard.swap(true, Ordering::SeqCst), "object handed out twice");
                        tokio::task::yield_now().await;
                        guard.store(false, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats}");
    assert!(stats.created <= 3);
    // Every slot is usable again.
    let all: Vec<_> = (0..3).map(|_| pool.try_get().unwrap()).collect();
    assert_eq!(all.len(), 3);
}

/// Threads get and return while another resizes the pool over and over and then closes it:
/// no object is ever held twice, live objects never outnumber the slots, every waiter ends
/// (served or told the pool closed), and after the close nothing is left alive.
#[test]
#[cfg_attr(miri, ignore = "a stress test, too slow for an interpreter (ThreadSanitizer runs it)")]
fn resizes_and_a_close_under_load_lose_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let counter = live.clone();
    let pool = Pool::builder()
        .max_size(MAX)
        .capacity(MAX)
        .build(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Probe { held: AtomicBool::new(false), live: counter.clone() }
        })
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (pool, live, served) = (pool.clone(), live.clone(), served.clone());
            std::thread::spawn(move || {
                for i in 0u32.. {
                    let guard = match (i + t) % 3 {
                        0 => match pool.try_get() {
                            Ok(guard) => guard,
                            Err(objpool::TryGetError::Closed) => break,
                            Err(_) => continue,
                        },
                        1 => match pool.get_timeout(Duration::from_millis(1)) {
                            Ok(guard) => guard,
                            Err(objpool::GetError::Closed) => break,
                            Err(_) => continue,
                        },
                        _ => match pool.get() {
                            Ok(guard) => guard,
                            Err(objpool::GetError::Closed) => break,
                            Err(other) => panic!("unexpected {other}"),
                        },
                    };
                    assert!(!guard.held.swap(true, Ordering::SeqCst), "object handed out twice");
                    assert!(live.load(Ordering::SeqCst) <= MAX, "more objects than slots");
                    std::hint::spin_loop();
                    guard.held.store(false, Ordering::SeqCst);
                    served.fetch_add(1, Ordering::Relaxed);
                    if i % 53 == 0 {
                        guard.discard();
                    }
                }
            })
        })
        .collect();
    // Resize at least 4000 times, and until the workers were served 2000 times in between.
    let mut round = 0;
    while round < 4_000 || served.load(Ordering::Relaxed) < 2_000 {
        assert!(round < 50_000_000, "the workers starve while the pool is resized");
        pool.resize(round % MAX + 1).unwrap();
        round += 1;
        let stats = pool.stats();
        assert!(stats.idle + stats.in_use <= MAX, "{stats}");
    }
    pool.close();
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(served.load(Ordering::Relaxed) > 0);
    let stats = pool.stats();
    assert_eq!(
        (stats.idle, stats.in_use, stats.waiting, live.load(Ordering::SeqCst)),
        (0, 0, 0, 0),
        "{stats}"
    );
}
