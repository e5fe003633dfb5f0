//! A Redis pool shared by concurrent tasks.
//!
//! `scripts/servers.sh cargo run --release --example redis` (starts a throwaway server and
//! sets `REDIS_URL`), or point `REDIS_URL` at your own.

use std::time::Instant;

use connpool::redis::RedisManager;
use connpool::{Config, Pool};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL")
        .map_err(|_| "set REDIS_URL, or run: scripts/servers.sh cargo run --release --example redis")?;
    let mut config = Config::worker();
    config.min_size = 2;
    config.max_size = 8;
    let pool = Pool::builder(RedisManager::new(&url)?).config(config).build().await?;

    let key = "connpool-example-counter";
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    let mut conn = pool.get().await?;
                    let _: i64 = redis::cmd("INCR").arg(key).query_async(&mut *conn).await?;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.map_err(|e| e as Box<dyn std::error::Error>)?;
    }
    let mut conn = pool.get().await?;
    let count: i64 = redis::cmd("GETDEL").arg(key).query_async(&mut *conn).await?;
    println!("{count} INCRs from 32 tasks in {:.2?}", started.elapsed());
    drop(conn);
    println!("{}", pool.metrics());
    Ok(())
}
