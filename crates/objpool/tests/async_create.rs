//! Async creators: creation runs in the caller's task, can be cancelled, and fails typed.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use objpool::{BuildError, GetError, Pool};

mod support;

/// Sets its flag when dropped: tells whether a creation future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A slow creation on a current-thread runtime: while one task's get waits for its creator,
/// a ticker task keeps running, and it is the ticker that lets the creation finish. A creator
/// run inside a poll would block the only runtime thread, and the ticker would never tick.
#[test]
fn a_slow_creator_does_not_stop_other_tasks() {
    let (object, ticks) = support::beside_a_ticker(|ticker| async move {
        let release = ticker.release();
        let pool = Pool::builder()
            .max_size(1)
            .build_async(move || {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok::<_, std::convert::Infallible>(42u32)
                }
            })
            .await
            .unwrap();
        let ticking = ticker.start();
        let object = *pool.get_async().await.unwrap();
        ticking.await.unwrap();
        object
    });
    assert_eq!((object, ticks), (42, support::TICKS));
}

#[test]
fn cancelling_a_creation_drops_it_and_frees_its_slot() {
    let calls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = {
        let (calls, dropped) = (calls.clone(), dropped.clone());
        rt.block_on(Pool::builder().max_size(1).build_async(move || {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                if first {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(7u8)
            }
        }))
        .unwrap()
    };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let mut get = pin!(pool.get_async());
        assert!(get.as_mut().poll(&mut cx).is_pending(), "the first creation never finishes");
        assert_eq!(pool.stats().in_use, 1, "the creation holds the slot");
        assert!(!dropped.load(Ordering::SeqCst));
    }
    assert!(dropped.load(Ordering::SeqCst), "the cancelled creation's future was dropped");
    assert_eq!(pool.stats().in_use, 0, "its slot was freed");
    assert_eq!(*rt.block_on(pool.get_async()).unwrap(), 7);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.create_errors, calls.load(Ordering::SeqCst)), (1, 0, 2), "{stats}");
}

#[test]
fn a_panicking_async_creator_is_a_typed_error() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = {
        let calls = calls.clone();
        rt.block_on(Pool::builder().max_size(1).build_async(move || {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            if call == 0 {
                panic!("creator function down");
            }
            async move {
                match call {
                    1 => panic!("creation future down"),
                    2 => Err("creation refused"),
                    _ => Ok(call),
                }
            }
        }))
        .unwrap()
    };
    for expected in ["creator function down", "creation future down"] {
        match rt.block_on(pool.get_async()) {
            Err(GetError::CreatorPanicked { message }) => assert_eq!(message, expected),
            other => panic!("unexpected {other:?}"),
        }
    }
    match rt.block_on(pool.get_async()) {
        Err(GetError::Create(source)) => assert_eq!(source.to_string(), "creation refused"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(*rt.block_on(pool.get_async()).unwrap(), 3, "every failure freed the slot");
    assert_eq!(pool.stats().create_errors, 3);
}

/// A blocking get runs an async creator to completion on its own thread, woken by whatever
/// completes the creation (here another thread).
#[test]
fn blocking_gets_drive_an_async_creator() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = rt
        .block_on(Pool::builder().max_size(2).build_async(|| {
            let (send, receive) = futures::channel::oneshot::channel();
            std::thread::spawn(move || send.send(5u16).unwrap());
            receive
        }))
        .unwrap();
    let (a, b) = (pool.get().unwrap(), pool.try_get().unwrap());
    assert_eq!((*a, *b), (5, 5));
    assert_eq!(pool.stats().created, 2);
}

#[test]
fn build_async_pre_creates_and_reports_failures() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = rt
        .block_on(Pool::builder().max_size(4).pre_create(3).build_async(|| async { Ok::<_, &str>(1u8) }))
        .unwrap();
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.created), (3, 3));

    let calls = Arc::new(AtomicUsize::new(0));
    let err = rt
        .block_on(Pool::builder().max_size(4).pre_create(3).build_async(move || {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move { if call == 1 { Err("second creation fails") } else { Ok(0u8) } }
        }))
        .unwrap_err();
    match &err {
        BuildError::Create { created: 1, source } => assert_eq!(source.to_string(), "second creation fails"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Close while a creation is in flight: the caller gets its object (the creation began before
/// the close), and the object is dropped when it comes back.
#[test]
fn an_object_created_across_a_close_is_dropped_on_return() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let live = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (release, live) = (release.clone(), live.clone());
        rt.block_on(Pool::builder().max_size(1).build_async(move || {
            let (release, live) = (release.clone(), live.clone());
            async move {
                release.notified().await;
                live.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(DropCount(live))
            }
        }))
        .unwrap()
    };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut get = pin!(pool.get_async());
    assert!(get.as_mut().poll(&mut cx).is_pending());
    pool.close();
    release.notify_one();
    let Poll::Ready(Ok(object)) = get.as_mut().poll(&mut cx) else {
        panic!("the creation in flight was lost")
    };
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(object);
    assert_eq!(live.load(Ordering::SeqCst), 0, "returned to a closed pool, the object is dropped");
}

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
