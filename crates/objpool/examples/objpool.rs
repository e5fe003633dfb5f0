//! A pool of query parsers shared by request handlers: pre-created at start-up, reset on
//! return, sized by its statistics.
//!
//! `cargo run --release --example objpool`

use std::time::{Duration, Instant};

use objpool::Pool;

/// A parser that keeps its scratch space between queries: the thing worth pooling.
#[derive(Default)]
struct QueryParser {
    tokens: Vec<String>,
}

impl QueryParser {
    fn parse(&mut self, query: &str) -> usize {
        self.tokens.extend(query.split_whitespace().map(str::to_ascii_uppercase));
        self.tokens.len()
    }

    fn reset(&mut self) {
        self.tokens.clear();
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder()
        .max_size(16)
        .pre_create(4)
        .exact_peak(true)
        .reset(QueryParser::reset)
        .build(QueryParser::default)?;

    let queries =
        ["select id from users where name = ?", "update orders set paid = true", "delete from sessions"];
    let started = Instant::now();
    let handlers: Vec<_> = (0..64)
        .map(|handler| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut tokens = 0;
                for request in 0..2_000 {
                    let mut parser = pool.get_async().await.expect("the creator cannot fail");
                    tokens += parser.parse(queries[(handler + request) % queries.len()]);
                    if request % 500 == 0 {
                        // Some handlers wait on I/O while holding a parser.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                tokens
            })
        })
        .collect();
    let mut tokens = 0;
    for handler in handlers {
        tokens += handler.await?;
    }
    let elapsed = started.elapsed();

    let stats = pool.stats();
    println!("parsed {tokens} tokens in 128,000 requests in {elapsed:.2?}");
    println!("pool: {stats}");
    println!(
        "{} parsers served 128,000 requests, {} of them by a parser used before; peak in use {} of {}; \
         {} gets waited, {:?} on average",
        stats.created,
        stats.reused,
        stats.peak_in_use,
        stats.max_size,
        stats.waits,
        stats.mean_wait(),
    );
    Ok(())
}
