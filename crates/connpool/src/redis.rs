//! A [`Manager`] for Redis on the `redis` crate (feature `redis`).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::manager::Manager;

/// Opens Redis connections, validates them with `PING`, and reports a connection broken after
/// an I/O error on it.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = connpool::redis::RedisManager::new("redis://127.0.0.1:6379")?;
/// let pool = connpool::Pool::builder(manager).build().await?;
/// let mut conn = pool.get().await?;
/// let () = redis::cmd("SET").arg("key").arg(1).query_async(&mut *conn).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisManager {
    client: redis::Client,
}

impl RedisManager {
    /// A manager for the server at `url` (`redis://host:port/db`).
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self { client: redis::Client::open(url)? })
    }

    /// The client the connections come from, for what a pool cannot share (a pub/sub
    /// subscription needs a connection of its own).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }
}

/// A pooled Redis connection: use it wherever a `redis::aio::ConnectionLike` goes
/// (`query_async(&mut *conn)`). It remembers I/O errors so the pool closes it on return.
pub struct RedisConnection {
    conn: MultiplexedConnection,
    broken: bool,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection").field("broken", &self.broken).finish_non_exhaustive()
    }
}

impl RedisConnection {
    fn note(&mut self, result: &Result<impl Sized, RedisError>) {
        if let Err(error) = result {
            if error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_timeout()
            {
                self.broken = true;
            }
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.conn.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

impl Manager for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<RedisConnection, RedisError> {
        let conn = self.client.get_multiplexed_async_connection().await?;
        Ok(RedisConnection { conn, broken: false })
    }

    async fn validate(&self, conn: &mut RedisConnection) -> Result<(), RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from((redis::ErrorKind::UnexpectedReturnType, "unexpected PING reply", pong)))
        }
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.broken
    }
}
