//! The cancellation matrix: a checkout cancelled at each of its await points, while the
//! connection attempt it started succeeds, fails, is slow, or never answers. After each case
//! no slot is lost (the pool can still hand out `max_size` connections), nothing stays in use
//! or waiting, and a connection made for the cancelled checkout is kept, not dropped.

mod common;

use std::time::Duration;

use connpool::sim::SimManager;

#[derive(Debug, Clone, Copy)]
enum Connect {
    Succeeds,
    Fails,
    Slow,
    NeverAnswers,
}

#[derive(Debug, Clone, Copy)]
enum CancelAt {
    /// While queued for a grant (the connection attempt in flight).
    Waiting,
    /// While pre-ping validates an idle connection.
    PrePing,
}

async fn case(connect: Connect, at: CancelAt) {
    let slow = matches!(connect, Connect::Slow);
    let latency = if slow { Duration::from_millis(300) } else { Duration::ZERO };
    let manager = SimManager::new().validate_latency(Duration::from_millis(100)).connect_latency(latency);
    let mut config = common::config(0, 2);
    config.connect_timeout = Duration::from_millis(500);
    config.pre_ping = matches!(at, CancelAt::PrePing);
    let pool = common::pool(&manager, config).await;
    if let CancelAt::PrePing = at {
        // One idle connection, old enough to be pinged.
        drop(pool.get().await.unwrap());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let manager = match connect {
        Connect::Succeeds => manager,
        Connect::Fails => {
            manager.set_down(true);
            manager
        }
        Connect::Slow => manager,
        Connect::NeverAnswers => {
            manager.set_stalled(true);
            manager
        }
    };
    let cancel_after = match (at, slow) {
        (CancelAt::PrePing, _) => Duration::from_millis(50), // mid-validation
        (CancelAt::Waiting, true) => Duration::from_millis(50),
        (CancelAt::Waiting, false) => Duration::ZERO,
    };
    let result = tokio::time::timeout(cancel_after.max(Duration::from_nanos(1)), pool.get()).await;
    if let Ok(Ok(conn)) = result {
        drop(conn); // it finished before the cancellation: fine, it goes back
    }
    // Heal the backend and let in-flight attempts finish or time out.
    manager.set_down(false);
    manager.set_stalled(false);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{connect:?}/{at:?}: {status}");
    assert!(status.size <= 2, "{connect:?}/{at:?}: {status}");
    assert_eq!(status.size as u64, manager.open(), "{connect:?}/{at:?}: a connection was dropped uncounted");
    if matches!(connect, Connect::Succeeds) && matches!(at, CancelAt::Waiting) {
        assert_eq!(status.idle, 1, "the connection made for the cancelled checkout was kept");
    }
    // No slot lost: both slots can be checked out at once.
    let a = pool.get().await.expect("first slot");
    let b = pool.get().await.expect("second slot");
    drop((a, b));
}

#[tokio::test(start_paused = true)]
async fn cancelled_checkouts_lose_nothing() {
    for connect in [Connect::Succeeds, Connect::Fails, Connect::Slow, Connect::NeverAnswers] {
        for at in [CancelAt::Waiting, CancelAt::PrePing] {
            case(connect, at).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_connection_made_for_a_cancelled_checkout_joins_the_idle_set() {
    let manager = SimManager::new().connect_latency(Duration::from_millis(300));
    let pool = common::pool(&manager, common::config(0, 1)).await;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), pool.get()).await;
    assert!(cancelled.is_err());
    assert_eq!(pool.status().connecting, 1, "the attempt goes on");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((pool.status().idle, manager.open()), (1, 1));
    assert_eq!(pool.get().await.unwrap().id(), 0, "the kept connection serves the next checkout");
}

#[tokio::test(start_paused = true)]
async fn a_grant_to_a_cancelled_checkout_passes_to_the_next_waiter() {
    use std::future::Future;
    use std::task::{Context, Poll};

    let manager = SimManager::new();
    let pool = common::pool(&manager, common::config(1, 1)).await;
    let held = pool.get().await.unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut first = Box::pin(pool.get());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut second = Box::pin(pool.get());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(held); // granted to `first`, which is never polled again
    drop(first);
    let Poll::Ready(Ok(conn)) = second.as_mut().poll(&mut cx) else { panic!("the grant was lost") };
    drop(conn);
    assert_eq!(pool.status().idle, 1);
}
