//! A service's connection pool through an outage: requests keep flowing, fail with a clear
//! error while the backend is down, and the pool recovers by itself when it comes back.
//! The backend is simulated (connect latency, failures, restarts).
//!
//! `cargo run --release --example connpool`

use std::time::Duration;

use connpool::sim::SimManager;
use connpool::{Config, Pool};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = SimManager::new().connect_latency(Duration::from_millis(20)).failure_rate(0.02);
    let mut config = Config::api();
    config.min_size = 4;
    config.max_size = 16;
    config.checkout_timeout = Duration::from_millis(500);
    config.health_check_interval = Some(Duration::from_secs(1));
    let pool = Pool::builder(backend.clone()).config(config).build().await?;
    println!("started: {}", pool.status());

    for phase in ["healthy", "backend down", "recovering"] {
        match phase {
            "backend down" => {
                backend.set_down(true);
                backend.restart(); // existing connections die too
            }
            "recovering" => backend.set_down(false),
            _ => {}
        }
        let (mut ok, mut failed) = (0, 0);
        let mut last_error = None;
        let handlers: Vec<_> = (0..32)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for _ in 0..20 {
                        let outcome = match pool.get().await {
                            Ok(mut conn) => match conn.query(Duration::from_millis(2)).await {
                                Ok(_) => Ok(()),
                                Err(error) => {
                                    conn.mark_broken();
                                    Err(error.to_string())
                                }
                            },
                            Err(error) => Err(with_causes(&error)),
                        };
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        for handler in handlers {
            for outcome in handler.await? {
                match outcome {
                    Ok(()) => ok += 1,
                    Err(error) => {
                        failed += 1;
                        last_error = Some(error);
                    }
                }
            }
        }
        println!("{phase:>13}: {ok} requests served, {failed} failed; {}", pool.status());
        if let Some(error) = last_error {
            println!("{:>13}  last error: {error}", "");
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    println!("\n{}", pool.metrics());
    if let Err(left) = pool.close(Duration::from_secs(1)).await {
        println!("{left}");
    }
    Ok(())
}

/// An error and its causes on one line, each once (`a: b: c`), as a log line or `anyhow`'s `{:#}`
/// would show it: the pool's error says what failed at its layer, its source says why.
fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source()).map(|e| e.to_string()).collect::<Vec<_>>().join(": ")
}
