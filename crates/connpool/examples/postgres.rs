//! A PostgreSQL pool serving concurrent queries.
//!
//! `scripts/servers.sh cargo run --release --example postgres` (starts a throwaway server and
//! sets `DATABASE_URL`), or point `DATABASE_URL` at your own.

use std::time::Instant;

use connpool::postgres::PgManager;
use connpool::{Config, Pool};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL, or run: scripts/servers.sh cargo run --release --example postgres")?;
    let mut config = Config::api();
    config.min_size = 4;
    config.max_size = 16;
    let pool = Pool::builder(PgManager::new(&url)?).config(config).build().await?;

    let started = Instant::now();
    let tasks: Vec<_> = (0..64i64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut sum = 0i64;
                for i in 0..50i64 {
                    let conn = pool.get().await?;
                    let row = conn.query_one("SELECT $1::int8 * $2::int8", &[&task, &i]).await?;
                    sum += row.get::<_, i64>(0);
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(sum)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await?.map_err(|e| e as Box<dyn std::error::Error>)?;
    }
    println!("3200 queries from 64 tasks in {:.2?}; checksum {total}", started.elapsed());
    println!("{}", pool.metrics());
    Ok(())
}
