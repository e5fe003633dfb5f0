//! A [`Manager`] for PostgreSQL on `tokio-postgres` (feature `postgres`).

use std::ops::{Deref, DerefMut};
use std::str::FromStr;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::manager::Manager;

/// Opens PostgreSQL connections (without TLS) from a connection string, validates them with a
/// cheap query, and reports a connection broken once its client is closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = connpool::postgres::PgManager::new("postgres://app@127.0.0.1/app")?;
/// let pool = connpool::Pool::builder(manager).config(connpool::Config::api()).build().await?;
/// let conn = pool.get().await?;
/// let row = conn.query_one("SELECT 1 + 1", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgManager {
    config: tokio_postgres::Config,
    validation_query: String,
}

impl PgManager {
    /// A manager for the database at `url` (`postgres://user:password@host:port/db?...` or the
    /// `key=value` form).
    ///
    /// # Errors
    /// The connection string does not parse.
    pub fn new(url: &str) -> Result<Self, tokio_postgres::Error> {
        Ok(Self::from_config(tokio_postgres::Config::from_str(url)?))
    }

    /// A manager for an already-built `tokio_postgres::Config`.
    pub fn from_config(config: tokio_postgres::Config) -> Self {
        Self { config, validation_query: "SELECT 1".to_owned() }
    }

    /// The query run to validate a connection (default `SELECT 1`).
    pub fn validation_query(mut self, query: impl Into<String>) -> Self {
        self.validation_query = query.into();
        self
    }
}

/// A pooled PostgreSQL connection: dereferences to a [`tokio_postgres::Client`]. Its
/// connection task is stopped when it is dropped.
#[derive(Debug)]
pub struct PgConnection {
    client: Client,
    task: JoinHandle<()>,
}

impl Deref for PgConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Manager for PgManager {
    type Connection = PgConnection;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<PgConnection, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgres connection ended");
            }
        });
        Ok(PgConnection { client, task })
    }

    async fn validate(&self, conn: &mut PgConnection) -> Result<(), tokio_postgres::Error> {
        conn.client.simple_query(&self.validation_query).await.map(drop)
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
    }
}
