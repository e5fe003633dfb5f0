//! The restart scenario shared by the PostgreSQL and Redis tests: tasks run queries while
//! the server is stopped for a few seconds and started again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The pool configuration of the restart tests: short checkout and connect timeouts, and the
/// API profile's retry policy.
pub fn config() -> connpool::Config {
    let mut config = super::config(2, 8);
    config.checkout_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    config.retry = connpool::RetryPolicy::Exponential {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        max_retries: 3,
    };
    config
}

/// The whole restart test for one client: a pool of `manager` with [`config`], 8 tasks making
/// requests through it for 8 s, the server stopped after 1 s for 3 s (with the commands in the
/// environment variables `stop` and `start`), then [`check`] and the pool's final state.
/// `request` runs one request on a checked-out connection and marks it broken if it fails.
pub async fn scenario<M, F, Fut>(manager: M, stop: &str, start: &str, request: F)
where
    M: connpool::Manager,
    F: Fn(connpool::Conn<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let (Some(stop), Some(start)) = (super::require_env(stop), super::require_env(start)) else { return };
    let pool = connpool::Pool::builder(manager).config(config()).build().await.expect("pool builds");
    let requests = pool.clone();
    let request = Arc::new(request);
    let (outcomes, went_down, back) = run(
        8,
        Duration::from_secs(8),
        Duration::from_secs(1),
        Duration::from_secs(3),
        stop,
        start,
        move || {
            let (pool, request) = (requests.clone(), request.clone());
            async move {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                request(conn).await
            }
        },
    )
    .await;
    // A checkout waits at most 1 s and a request 1 s.
    check(&outcomes, went_down, back, Duration::from_millis(2500));
    let status = pool.status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status}");
    println!("{}", pool.metrics());
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub at: Instant,
    pub took: Duration,
    pub error: Option<String>,
}

/// Runs `request` from `tasks` tasks until `run_for` has passed, stopping the server after
/// `down_at` for `down_for`. Returns the outcomes and when the server was back.
pub async fn run<F, Fut>(
    tasks: usize,
    run_for: Duration,
    down_at: Duration,
    down_for: Duration,
    stop: String,
    start: String,
    request: F,
) -> (Vec<Outcome>, Instant, Instant)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let request = Arc::new(request);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let begin = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (request, outcomes) = (request.clone(), outcomes.clone());
            tokio::spawn(async move {
                while begin.elapsed() < run_for {
                    let at = Instant::now();
                    // A request that takes over 10 s is a hang.
                    let error = match tokio::time::timeout(Duration::from_secs(10), request()).await {
                        Ok(Ok(())) => None,
                        Ok(Err(error)) => Some(error),
                        Err(_) => Some("HANG".to_owned()),
                    };
                    outcomes.lock().push(Outcome { at, took: at.elapsed(), error });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(down_at).await;
    let stopped = tokio::task::spawn_blocking(move || super::run_control(&stop));
    stopped.await.unwrap();
    let went_down = Instant::now();
    tokio::time::sleep(down_for).await;
    tokio::task::spawn_blocking(move || super::run_control(&start)).await.unwrap();
    let back = Instant::now();
    for worker in workers {
        worker.await.expect("no request panicked");
    }
    let outcomes = outcomes.lock().clone();
    (outcomes, went_down, back)
}

/// Checks the scenario's promises: no request hung or took past `max_request`, requests
/// during the outage failed with a message, and the pool served requests again within 2 s of
/// the server's return.
pub fn check(outcomes: &[Outcome], went_down: Instant, back: Instant, max_request: Duration) {
    assert!(!outcomes.is_empty());
    for outcome in outcomes {
        assert_ne!(outcome.error.as_deref(), Some("HANG"), "a request hung");
        assert!(outcome.took <= max_request, "a request took {:?}: {:?}", outcome.took, outcome.error);
    }
    let during: Vec<_> =
        outcomes.iter().filter(|o| o.at > went_down + Duration::from_millis(200) && o.at < back).collect();
    let failed = during.iter().filter(|o| o.error.is_some()).count();
    assert!(failed > 0, "no request failed while the server was down ({} requests)", during.len());
    for outcome in &during {
        if let Some(error) = &outcome.error {
            assert!(!error.is_empty(), "an empty error message");
        }
    }
    let first_success_after = outcomes
        .iter()
        .filter(|o| o.error.is_none() && o.at >= back)
        .map(|o| o.at + o.took)
        .min()
        .expect("no request succeeded after the server came back");
    let recovery = first_success_after.duration_since(back);
    println!(
        "{} requests, {failed} failed during the outage; first success {recovery:?} after the server was back",
        outcomes.len()
    );
    if let Some(sample) = during.iter().find_map(|o| o.error.as_ref()) {
        println!("an error during the outage: {sample}");
    }
    assert!(recovery <= Duration::from_secs(2), "the pool took {recovery:?} to recover");
}
