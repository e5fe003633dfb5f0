//! Async resets: run by the next taker of a returned object, in its task, before it sees it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;
use std::time::Duration;

use objpool::{BuildError, Pool};

mod support;

/// A session that counts how many of its kind are alive.
struct Session {
    statements: Vec<&'static str>,
    live: Arc<AtomicUsize>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn session(live: &Arc<AtomicUsize>) -> Session {
    live.fetch_add(1, Ordering::SeqCst);
    Session { statements: Vec::new(), live: live.clone() }
}

#[test]
fn a_returned_object_is_reset_before_its_next_use_and_a_new_one_is_not() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let resets = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (resets, live) = (resets.clone(), live.clone());
        Pool::builder()
            .max_size(1)
            .reset_async(move |s: &mut Session| {
                let resets = resets.clone();
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    s.statements.clear();
                    resets.fetch_add(1, Ordering::SeqCst);
                    true
                })
            })
            .build(move || session(&live))
            .unwrap()
    };
    rt.block_on(async {
        pool.get_async().await.unwrap().statements.push("BEGIN");
        assert_eq!(resets.load(Ordering::SeqCst), 0, "the reset waits for the next taker");
        assert!(pool.get_async().await.unwrap().statements.is_empty());
        assert_eq!(resets.load(Ordering::SeqCst), 1);
    });
    assert_eq!((pool.stats().created, live.load(Ordering::SeqCst)), (1, 1));
}

/// The reset waits for something only another task provides, on a current-thread runtime: it
/// must run in the caller's task, not inside a blocked poll.
#[test]
fn a_slow_reset_does_not_stop_other_tasks() {
    let (len, ticks) = support::beside_a_ticker(|ticker| async move {
        let release = ticker.release();
        let pool = Pool::builder()
            .max_size(1)
            .reset_async(move |v: &mut Vec<u8>| {
                let release = release.clone();
                Box::pin(async move {
                    release.notified().await;
                    v.clear();
                    true
                })
            })
            .build(Vec::new)
            .unwrap();
        pool.get_async().await.unwrap().push(1);
        let ticking = ticker.start();
        let len = pool.get_async().await.unwrap().len();
        ticking.await.unwrap();
        len
    });
    assert_eq!((len, ticks), (0, support::TICKS));
}

#[test]
fn a_refused_or_panicking_reset_replaces_the_object() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (live, calls) = (live.clone(), calls.clone());
        Pool::builder()
            .max_size(1)
            .reset_async(move |s: &mut Session| {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    match call {
                        0 => false,
                        1 => panic!("test panic: reset"),
                        _ => {
                            s.statements.clear();
                            true
                        }
                    }
                })
            })
            .build(move || session(&live))
            .unwrap()
    };
    for _ in 0..4 {
        let mut session = rt.block_on(pool.get_async()).unwrap();
        assert!(session.statements.is_empty(), "a new or reset object");
        session.statements.push("SET ROLE admin");
    }
    let stats = pool.stats();
    assert_eq!((stats.created, stats.discarded, stats.reset_panics), (3, 2, 1), "{stats}");
    assert_eq!(live.load(Ordering::SeqCst), 1);
}

#[test]
fn a_cancelled_reset_drops_the_object_and_frees_its_slot() {
    let live = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (live, calls) = (live.clone(), calls.clone());
        Pool::builder()
            .max_size(1)
            .reset_async(move |_: &mut Session| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    if first {
                        std::future::pending::<()>().await;
                    }
                    true
                })
            })
            .build(move || session(&live))
            .unwrap()
    };
    drop(pool.try_get().unwrap());
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let mut get = pin!(pool.get_async());
        assert!(get.as_mut().poll(&mut cx).is_pending(), "the first reset never finishes");
        assert_eq!(pool.stats().in_use, 1);
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "the half-reset object was dropped");
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.idle, stats.discarded), (0, 0, 1), "{stats}");
    assert!(pool.try_get().is_ok(), "the slot was freed");
}

/// Blocking gets run the async reset on their own thread, woken by whatever completes it.
#[test]
fn blocking_gets_run_the_async_reset() {
    let pool = Pool::builder()
        .max_size(1)
        .reset_async(|v: &mut Vec<u8>| {
            let (send, receive) = futures::channel::oneshot::channel();
            std::thread::spawn(move || send.send(()).unwrap());
            Box::pin(async move {
                receive.await.unwrap();
                v.clear();
                true
            })
        })
        .build(Vec::new)
        .unwrap();
    pool.get().unwrap().push(1);
    assert!(pool.get().unwrap().is_empty());
    pool.try_get().unwrap().push(2);
    assert!(pool.get_timeout(Duration::from_secs(5)).unwrap().is_empty());
}

#[test]
fn an_unmanaged_pool_refuses_an_async_reset() {
    let err = Pool::builder()
        .seed([Vec::<u8>::new()])
        .reset_async(|_| Box::pin(async { true }))
        .build_unmanaged()
        .unwrap_err();
    assert!(matches!(err, BuildError::Unmanaged), "{err}");
}

#[allow(dead_code)]
fn assert_acquire_is_send_and_sync(pool: &Pool<Vec<u8>>) -> impl Future + Send + Sync + '_ {
    pool.get_async()
}
