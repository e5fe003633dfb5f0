//! A [`Manager`] for PostgreSQL on `tokio-postgres` (feature `postgres`), over plain TCP or any
//! TLS implementation of `tokio-postgres` (feature `postgres-rustls` for a ready-made rustls one).
//!
//! The connection string's `sslmode` is honoured as `tokio-postgres` defines it: `disable` never
//! uses TLS, `prefer` (the default) uses it when the server offers it, and `require` fails with
//! a clear error against a server without TLS, or with a manager built without TLS.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use crate::credentials::CredentialProvider;
use crate::hooks::BoxError;
use crate::manager::Manager;

/// Opens PostgreSQL connections from a connection string, validates them with a cheap query,
/// and reports a connection broken once its client is closed. `T` is the TLS connector
/// (`NoTls` by default; [`PgManager::rustls`] with the `postgres-rustls` feature).
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
///
/// A password that rotates (a secrets manager, an RDS IAM token) comes from a
/// [`CredentialProvider`] asked before every connect:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use connpool::{Credentials, Secret};
///
/// let manager = connpool::postgres::PgManager::new("postgres://app@db.internal/app")?
///     .credentials(|| async { Ok(Credentials::password(Secret::new(fetch_token().await?))) });
/// # Ok(()) }
/// # async fn fetch_token() -> Result<String, connpool::BoxError> { Ok(String::new()) }
/// ```
#[derive(Clone)]
pub struct PgManager<T = NoTls> {
    config: tokio_postgres::Config,
    tls: T,
    validation_query: String,
    credentials: Option<Arc<dyn CredentialProvider>>,
}

impl<T> fmt::Debug for PgManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres's `Config` prints its password as `_`.
        f.debug_struct("PgManager")
            .field("config", &self.config)
            .field("tls", &std::any::type_name::<T>())
            .field("credentials", &self.credentials.as_ref().map(|_| "provider"))
            .finish_non_exhaustive()
    }
}

impl PgManager<NoTls> {
    /// A manager for the database at `url` (`postgres://user:password@host:port/db?...` or the
    /// key-value form), without TLS.
    ///
    /// # Errors
    /// The connection string does not parse.
    pub fn new(url: &str) -> Result<Self, PgError> {
        Ok(Self::from_config(tokio_postgres::Config::from_str(url).map_err(PgError::Postgres)?))
    }

    /// A manager from a parsed configuration, without TLS.
    pub fn from_config(config: tokio_postgres::Config) -> Self {
        Self { config, tls: NoTls, validation_query: "SELECT 1".to_owned(), credentials: None }
    }
}

#[cfg(feature = "postgres-rustls")]
impl PgManager<tokio_postgres_rustls::MakeRustlsConnect> {
    /// A manager for the database at `url` over TLS with rustls, trusting what `tls` trusts
    /// (its root certificates; see [`tls_roots`](crate::tls_roots) for PEM files).
    ///
    /// # Errors
    /// The connection string does not parse.
    pub fn rustls(url: &str, tls: rustls::ClientConfig) -> Result<Self, PgError> {
        Ok(PgManager::new(url)?.tls(tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
    }
}

impl<T> PgManager<T> {
    /// Uses `tls` to make the TLS connections (any `tokio_postgres::tls::MakeTlsConnect`).
    pub fn tls<U>(self, tls: U) -> PgManager<U> {
        PgManager {
            config: self.config,
            tls,
            validation_query: self.validation_query,
            credentials: self.credentials,
        }
    }

    /// The query that validates a connection (default `SELECT 1`).
    pub fn validation_query(mut self, query: impl Into<String>) -> Self {
        self.validation_query = query.into();
        self
    }

    /// Asks `provider` for the user and password before every connect, instead of the ones in
    /// the connection string.
    pub fn credentials(mut self, provider: impl CredentialProvider) -> Self {
        self.credentials = Some(Arc::new(provider));
        self
    }

    /// The configuration connections are made from.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

/// Why a PostgreSQL connection could not be made or checked.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgError {
    /// From `tokio-postgres`: connecting, the TLS handshake, authentication, a query.
    Postgres(tokio_postgres::Error),
    /// The credential provider failed.
    Credentials(BoxError),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("PostgreSQL error"),
            Self::Credentials(_) => f.write_str("the credential provider failed"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Postgres(error) => Some(error),
            Self::Credentials(error) => Some(&**error),
        }
    }
}

/// A pooled PostgreSQL connection: dereferences to the `tokio_postgres::Client`. Its connection
/// task is stopped when it is dropped.
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

impl<T> Manager for PgManager<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Connection = PgConnection;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConnection, PgError> {
        let mut config = self.config.clone();
        if let Some(provider) = &self.credentials {
            let credentials = provider.credentials().await.map_err(PgError::Credentials)?;
            if let Some(user) = &credentials.user {
                config.user(user);
            }
            config.password(credentials.password.expose());
        }
        let (client, connection) = config.connect(self.tls.clone()).await.map_err(PgError::Postgres)?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = &error as &dyn std::error::Error, "postgres connection ended");
            }
        });
        Ok(PgConnection { client, task })
    }

    async fn validate(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        conn.client.simple_query(&self.validation_query).await.map(drop).map_err(PgError::Postgres)
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
    }

    /// `tokio-postgres` matches replies to requests inside its connection task: a query
    /// abandoned midway leaves nothing for the next user.
    fn cancel_safe(&self) -> bool {
        true
    }
}
