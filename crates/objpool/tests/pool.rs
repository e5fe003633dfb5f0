//! The pool's behaviour, one feature at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objpool::{BuildError, GetError, Pool, TryGetError};

/// An object that counts how many of its kind are alive.
#[derive(Debug)]
struct Tracked {
    id: usize,
    dirty: bool,
    live: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A creator of numbered `Tracked` objects, and the count of live ones.
fn tracked() -> (impl Fn() -> Tracked + Send + Sync + 'static, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let next = AtomicUsize::new(0);
    let counter = live.clone();
    let create = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Tracked { id: next.fetch_add(1, Ordering::SeqCst), dirty: false, live: counter.clone() }
    };
    (create, live)
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let err = Pool::builder().max_size(0).build(|| 0u8).unwrap_err();
    assert!(matches!(err, BuildError::ZeroMaxSize), "{err}");
    let err = Pool::builder().max_size(2).pre_create(3).build(|| 0u8).unwrap_err();
    assert!(matches!(err, BuildError::PreCreateAboveMaxSize { pre_create: 3, max_size: 2 }));
    assert_eq!(err.to_string(), "invalid pool configuration: pre_create (3) is above max_size (2)");
}

#[test]
fn failing_pre_creation_is_a_typed_error_and_keeps_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let made = AtomicUsize::new(0);
    let counter = live.clone();
    let err = Pool::builder()
        .max_size(4)
        .pre_create(3)
        .try_build(move || {
            if made.fetch_add(1, Ordering::SeqCst) == 2 {
                return Err("database is down");
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Tracked { id: 0, dirty: false, live: counter.clone() })
        })
        .unwrap_err();
    match &err {
        BuildError::Create { created, source } => {
            assert_eq!(*created, 2);
            assert_eq!(source.to_string(), "database is down");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(std::error::Error::source(&err).unwrap().to_string(), "database is down");
    assert_eq!(live.load(Ordering::SeqCst), 0, "the objects made before the failure leaked");
}

#[test]
fn pre_creates_then_creates_lazily_up_to_max_size() {
    let (create, live) = tracked();
    let pool = Pool::builder().max_size(3).pre_create(2).build(create).unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 2);
    assert_eq!((pool.stats().idle, pool.stats().created), (2, 2));
    let a = pool.try_get().unwrap();
    let b = pool.try_get().unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 2, "an idle object was there to reuse");
    let c = pool.try_get().unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 3);
    assert!(matches!(pool.try_get(), Err(TryGetError::Exhausted)));
    let mut ids = [a.id, b.id, c.id];
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2]);
    drop((a, b, c));
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.in_use, stats.created, stats.reused), (3, 0, 3, 0));
    drop(pool.try_get().unwrap());
    assert_eq!(pool.stats().reused, 1, "a returned object was handed out again");
    assert_eq!(stats.peak_in_use, 3);
    drop(pool);
    assert_eq!(live.load(Ordering::SeqCst), 0, "dropping the pool drops its objects");
}

#[test]
fn reset_runs_on_return() {
    let (create, _live) = tracked();
    let pool = Pool::builder().max_size(1).reset(|t: &mut Tracked| t.dirty = false).build(create).unwrap();
    pool.try_get().unwrap().dirty = true;
    let again = pool.try_get().unwrap();
    assert!(!again.dirty);
    assert_eq!(again.id, 0);
}

#[test]
fn recycle_can_refuse_an_object_and_free_its_slot() {
    let (create, live) = tracked();
    let pool = Pool::builder().max_size(1).recycle(|t: &mut Tracked| !t.dirty).build(create).unwrap();
    pool.try_get().unwrap().dirty = true;
    assert_eq!(live.load(Ordering::SeqCst), 0, "the refused object was not dropped");
    assert_eq!(pool.try_get().unwrap().id, 1, "the slot was not freed for a new object");
    assert_eq!(pool.stats().discarded, 1);
}

#[test]
fn a_panicking_reset_discards_the_object_and_leaves_the_pool_usable() {
    let (create, live) = tracked();
    let pool = Pool::builder()
        .max_size(1)
        .reset(|t: &mut Tracked| assert!(!t.dirty, "reset refuses dirty objects"))
        .build(create)
        .unwrap();
    pool.try_get().unwrap().dirty = true;
    assert_eq!(live.load(Ordering::SeqCst), 0);
    let stats = pool.stats();
    assert_eq!((stats.reset_panics, stats.discarded), (1, 1));
    assert_eq!(pool.try_get().unwrap().id, 1);
}

#[test]
fn a_failing_creator_reaches_the_caller_and_frees_the_slot() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = fail.clone();
    let pool = Pool::builder()
        .max_size(1)
        .try_build(move || if flag.load(Ordering::SeqCst) { Err("refused") } else { Ok(7u32) })
        .unwrap();
    match pool.try_get() {
        Err(TryGetError::Create(e)) => assert_eq!(e.to_string(), "refused"),
        other => panic!("unexpected {other:?}"),
    }
    match pool.get_timeout(Duration::from_millis(10)) {
        Err(GetError::Create(e)) => assert_eq!(e.to_string(), "refused"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(pool.stats().create_errors, 2);
    fail.store(false, Ordering::SeqCst);
    assert_eq!(*pool.try_get().unwrap(), 7);
}

#[test]
fn a_panicking_creator_frees_the_slot() {
    let calls = AtomicUsize::new(0);
    let pool = Pool::builder()
        .max_size(1)
        .build(move || {
            assert!(calls.fetch_add(1, Ordering::SeqCst) > 0, "first creation panics");
            5u8
        })
        .unwrap();
    match pool.try_get() {
        Err(TryGetError::CreatorPanicked { message }) => assert_eq!(message, "first creation panics"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(pool.stats().create_errors, 1);
    assert_eq!(*pool.try_get().unwrap(), 5, "the slot was freed");
}

#[test]
fn a_panicking_creator_is_a_typed_error_for_every_get() {
    let pool = Pool::builder().max_size(1).build(|| -> u8 { panic!("creator down") }).unwrap();
    assert!(matches!(pool.get(), Err(GetError::CreatorPanicked { .. })));
    assert!(matches!(pool.get_timeout(Duration::from_secs(1)), Err(GetError::CreatorPanicked { .. })));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let err = rt.block_on(pool.get_async()).unwrap_err();
    assert_eq!(err.to_string(), "the creator of a pooled object panicked: creator down");
    assert_eq!(pool.stats().create_errors, 3);
}

#[test]
fn detach_and_discard_free_their_slots() {
    let (create, live) = tracked();
    let pool = Pool::builder().max_size(1).build(create).unwrap();
    let kept = pool.try_get().unwrap().detach();
    assert_eq!(kept.id, 0);
    let second = pool.try_get().unwrap();
    assert_eq!(second.id, 1, "the detached object's slot was not freed");
    second.discard();
    assert_eq!(live.load(Ordering::SeqCst), 1, "only the detached object is alive");
    assert_eq!(pool.try_get().unwrap().id, 2);
    let stats = pool.stats();
    assert_eq!((stats.detached, stats.discarded, stats.created), (1, 1, 3));
}

#[test]
fn owned_guards_release_their_pool_handle() {
    let (create, live) = tracked();
    let pool = Pool::builder().max_size(3).pre_create(3).build(create).unwrap();
    let detached = pool.try_get().unwrap().into_owned().detach();
    pool.try_get().unwrap().into_owned().discard();
    drop(pool.try_get().unwrap().into_owned());
    drop(pool);
    assert_eq!(live.load(Ordering::SeqCst), 1, "the pool was leaked with its objects");
    drop(detached);
}

#[test]
fn owned_guards_cross_threads() {
    let pool = Pool::builder().max_size(1).build(Vec::<u32>::new).unwrap();
    let mut guard = pool.try_get().unwrap().into_owned();
    std::thread::spawn(move || guard.push(1)).join().unwrap();
    assert_eq!(*pool.try_get().unwrap(), vec![1], "no reset was configured");
}

#[test]
fn get_timeout_gives_up_with_how_long_it_waited() {
    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    let _held = pool.try_get().unwrap();
    let started = Instant::now();
    match pool.get_timeout(Duration::from_millis(50)) {
        Err(GetError::Timeout { waited }) => assert!(waited >= Duration::from_millis(50)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(50));
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.waiting, stats.waits), (1, 0, 0));
}

#[test]
fn timeouts_of_any_length_are_accepted() {
    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    for timeout in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::ZERO] {
        assert!(pool.get_timeout(timeout).is_ok(), "{timeout:?}");
    }
    let held = pool.try_get().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.get_timeout(Duration::MAX).map(|g| *g));
        while pool.stats().waiting == 0 {
            std::thread::yield_now();
        }
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), 0, "a wait without end is served");
    });
}

/// N threads hold an object each at the same moment, forced by a barrier: the exact peak is N,
/// though every object was pre-created (no creation or wait to sample it at).
#[test]
fn the_peak_is_exact_and_can_be_reset() {
    const N: usize = 6;
    let pool = Pool::builder().max_size(16).pre_create(16).exact_peak(true).build(|| 0u8).unwrap();
    let barrier = std::sync::Barrier::new(N);
    std::thread::scope(|s| {
        for _ in 0..N {
            s.spawn(|| {
                let guard = pool.get().unwrap();
                barrier.wait();
                drop(guard);
            });
        }
    });
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.peak_in_use), (0, N));
    // A new interval starts from what is in use now.
    let held = pool.try_get().unwrap();
    assert_eq!(pool.reset_peak(), N, "reset returns the peak of the interval that ends");
    assert_eq!(pool.stats().peak_in_use, 1);
    let more = (pool.try_get().unwrap(), pool.try_get().unwrap());
    drop((held, more));
    assert_eq!(pool.stats().peak_in_use, 3);
}

#[test]
fn blocking_waiters_are_served_in_fifo_order() {
    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    let held = pool.try_get().unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..4 {
        let (worker_pool, order) = (pool.clone(), order.clone());
        threads.push(std::thread::spawn(move || {
            let _object = worker_pool.get().unwrap();
            order.lock().push(i);
        }));
        // Let thread i queue before thread i + 1 starts.
        while pool.stats().waiting != i + 1 {
            std::thread::yield_now();
        }
    }
    drop(held);
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3]);
    let stats = pool.stats();
    assert_eq!((stats.waits, stats.waiting, stats.idle), (4, 0, 1));
    assert!(stats.total_wait > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_waiters_are_served_in_fifo_order() {
    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    let held = pool.try_get().unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (worker_pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _object = worker_pool.get_async().await.unwrap();
            order.lock().push(i);
        }));
        while pool.stats().waiting != i + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_dropped_acquire_passes_its_grant_on() {
    use std::future::Future;
    use std::task::{Context, Poll};

    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    let held = pool.try_get().unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut first = Box::pin(pool.get_async());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut second = Box::pin(pool.get_async());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(pool.stats().waiting, 2);
    drop(held); // granted to `first`, which is never polled again
    assert_eq!(pool.stats().waiting, 1);
    drop(first);
    let Poll::Ready(Ok(object)) = second.as_mut().poll(&mut cx) else { panic!("grant was lost") };
    drop(object);
    assert_eq!(pool.stats().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_acquire_leaves_the_queue() {
    let pool = Pool::builder().max_size(1).build(|| 0u8).unwrap();
    let held = pool.try_get().unwrap();
    let timed_out = tokio::time::timeout(Duration::from_secs(1), pool.get_async()).await;
    assert!(timed_out.is_err());
    assert_eq!(pool.stats().waiting, 0);
    drop(held);
    assert!(pool.get_async().await.is_ok());
}

#[tokio::test]
async fn async_get_reports_creator_errors() {
    let pool = Pool::builder().max_size(1).try_build(|| Err::<u8, _>("no")).unwrap();
    match pool.get_async().await {
        Err(GetError::Create(e)) => assert_eq!(e.to_string(), "no"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn stats_display_is_readable() {
    let pool = Pool::builder().max_size(4).pre_create(1).build(|| 0u8).unwrap();
    let _a = pool.try_get().unwrap();
    let text = pool.stats().to_string();
    assert!(text.starts_with("in use 1/4 (peak 1), idle 0, waiting 0; created 1, reused 0"), "{text}");
    assert!((pool.stats().utilisation() - 0.25).abs() < 1e-9);
}

mod buffers {
    use bytes::BufMut;
    use objpool::BufferPoolBuilder;

    #[test]
    fn buffers_come_back_cleared() {
        let pool = BufferPoolBuilder::new(1024).max_size(2).build().unwrap();
        pool.try_get().unwrap().put_slice(b"secret");
        let buf = pool.try_get().unwrap();
        assert!(buf.is_empty());
        assert!(buf.capacity() >= 1024);
    }

    #[test]
    fn oversized_buffers_are_dropped_or_shrunk() {
        let pool = BufferPoolBuilder::new(1024).retained_capacity(4096).max_size(1).build().unwrap();
        pool.try_get().unwrap().put_bytes(0, 10_000);
        assert_eq!(pool.stats().discarded, 1);
        assert_eq!(pool.stats().idle, 0);

        let pool =
            BufferPoolBuilder::new(1024).retained_capacity(4096).shrink(true).max_size(1).build().unwrap();
        pool.try_get().unwrap().put_bytes(0, 10_000);
        let buf = pool.try_get().unwrap();
        assert!(buf.capacity() >= 1024 && buf.capacity() < 4096, "capacity {}", buf.capacity());
    }

    #[test]
    fn a_split_buffer_regains_its_capacity() {
        let pool = BufferPoolBuilder::new(1024).max_size(1).build().unwrap();
        let frozen = {
            let mut buf = pool.try_get().unwrap();
            buf.put_bytes(7, 1024);
            buf.split().freeze()
        };
        assert_eq!(frozen.len(), 1024);
        assert!(pool.try_get().unwrap().capacity() >= 1024);
    }
}
