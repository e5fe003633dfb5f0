//! A [`Manager`] for Redis on the `redis` crate (feature `redis`): a single server, a Redis
//! Cluster (slots followed across `MOVED` and `ASK` by the crate's cluster connection), or a
//! Sentinel-managed master (found again after a failover); over TLS (`rediss://`) with the
//! `redis-rustls` feature.
//!
//! Every connection is multiplexed, so the manager is
//! [`cancel_safe`](crate::Manager::cancel_safe): a request abandoned midway leaves nothing for the
//! next user. A connection is reported broken after an I/O error, a dropped connection, a
//! refusal, a timeout, or a `READONLY` reply (the master it talks to was demoted by a
//! failover), and the pool replaces it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};

use crate::credentials::{CredentialProvider, Credentials};
use crate::hooks::BoxError;
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
///
/// // A cluster: any of its nodes as seeds.
/// let cluster = connpool::redis::RedisManager::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])?;
/// // A master behind Sentinel.
/// let sentinel = connpool::redis::RedisManager::sentinel(["redis://10.0.0.1:26379"], "mymaster")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisManager {
    target: Target,
    credentials: Option<Arc<dyn CredentialProvider>>,
    /// Where the next pub/sub connection to a cluster is tried first.
    next_node: Arc<AtomicUsize>,
    #[cfg(feature = "redis-rustls")]
    root_cert: Option<Arc<[u8]>>,
}

#[derive(Clone)]
enum Target {
    Single(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master: String,
        /// Built once; `SentinelClient` asks for `&mut` and caches its sentinel connections.
        client: Arc<tokio::sync::Mutex<Option<SentinelClient>>>,
    },
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The redis crate's `ConnectionInfo` prints its password as `<redacted>`.
        let mut d = f.debug_struct("RedisManager");
        match &self.target {
            Target::Single(info) => d.field("server", info),
            Target::Cluster(nodes) => d.field("cluster", nodes),
            Target::Sentinel { sentinels, master, .. } => {
                d.field("sentinels", sentinels).field("master", master)
            }
        };
        d.field("credentials", &self.credentials.as_ref().map(|_| "provider")).finish_non_exhaustive()
    }
}

/// Why a Redis connection could not be made or checked.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisManagerError {
    /// From the redis crate.
    Redis(RedisError),
    /// The credential provider failed.
    Credentials(BoxError),
}

impl fmt::Display for RedisManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(_) => f.write_str("Redis error"),
            Self::Credentials(_) => f.write_str("the credential provider failed"),
        }
    }
}

impl std::error::Error for RedisManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(error) => Some(error),
            Self::Credentials(error) => Some(&**error),
        }
    }
}

impl From<RedisError> for RedisManagerError {
    fn from(error: RedisError) -> Self {
        Self::Redis(error)
    }
}

impl RedisManager {
    fn with_target(target: Target) -> Self {
        Self {
            target,
            credentials: None,
            next_node: Arc::default(),
            #[cfg(feature = "redis-rustls")]
            root_cert: None,
        }
    }

    /// A manager for the server at `url` (`redis://host:port/db`, or `rediss://` for TLS with the
    /// `redis-rustls` feature).
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self::with_target(Target::Single(url.into_connection_info()?)))
    }

    /// A manager for the server an existing client connects to (its address, database, user
    /// and password).
    pub fn from_client(client: &Client) -> Self {
        Self::with_target(Target::Single(client.get_connection_info().clone()))
    }

    /// A manager for a Redis Cluster, discovered from `nodes` (any of its nodes; the cluster
    /// connection learns the rest and follows `MOVED`/`ASK` redirections and failovers).
    ///
    /// # Errors
    /// A URL does not parse, or there is none.
    pub fn cluster<S: AsRef<str>>(nodes: impl IntoIterator<Item = S>) -> Result<Self, RedisError> {
        let nodes: Vec<ConnectionInfo> =
            nodes.into_iter().map(|n| n.as_ref().into_connection_info()).collect::<Result<_, _>>()?;
        if nodes.is_empty() {
            return Err(RedisError::from((redis::ErrorKind::InvalidClientConfig, "a cluster needs a node")));
        }
        Ok(Self::with_target(Target::Cluster(nodes)))
    }

    /// A manager for the master named `master` behind the Sentinels at `sentinels`: every
    /// connect asks the Sentinels where the master is, so new connections follow a failover
    /// (and old ones, demoted, report themselves broken on their first `READONLY` reply).
    ///
    /// # Errors
    /// A URL does not parse, or there is none.
    pub fn sentinel<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Result<Self, RedisError> {
        let sentinels: Vec<ConnectionInfo> =
            sentinels.into_iter().map(|n| n.as_ref().into_connection_info()).collect::<Result<_, _>>()?;
        if sentinels.is_empty() {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Sentinel needs an address",
            )));
        }
        let client = Arc::new(tokio::sync::Mutex::new(None));
        Ok(Self::with_target(Target::Sentinel { sentinels, master: master.into(), client }))
    }

    /// Asks `provider` for the user and password before every connect (a rotating secret).
    pub fn credentials(mut self, provider: impl CredentialProvider) -> Self {
        self.credentials = Some(Arc::new(provider));
        self
    }

    /// Trusts the CA certificate(s) in `pem` for `rediss://` servers, instead of the system's
    /// roots (feature `redis-rustls`).
    #[cfg(feature = "redis-rustls")]
    pub fn root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into().into());
        self
    }

    #[cfg(feature = "redis-rustls")]
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        self.root_cert
            .as_ref()
            .map(|pem| redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) })
    }

    /// A client for one server, with this manager's TLS roots.
    fn client(&self, info: ConnectionInfo) -> Result<Client, RedisError> {
        #[cfg(feature = "redis-rustls")]
        if let Some(certs) = self.certificates() {
            return Client::build_with_tls(info, certs);
        }
        Client::open(info)
    }

    async fn current_credentials(&self) -> Result<Option<Credentials>, RedisManagerError> {
        match &self.credentials {
            Some(provider) => provider.credentials().await.map(Some).map_err(RedisManagerError::Credentials),
            None => Ok(None),
        }
    }

    /// A client for the server to talk to now: the configured one, or the master the Sentinels
    /// name; with the current credentials.
    async fn server_client(&self, credentials: Option<&Credentials>) -> Result<Client, RedisManagerError> {
        match &self.target {
            Target::Single(info) => Ok(self.client(with_credentials(info.clone(), credentials))?),
            Target::Sentinel { sentinels, master, client } => {
                let mut client = client.lock().await;
                if client.is_none() {
                    *client = Some(self.sentinel_client(sentinels, master, credentials)?);
                }
                let sentinel = client.as_mut().expect("set above");
                match sentinel.async_get_client().await {
                    Ok(master) => Ok(master),
                    Err(error) => {
                        // Rebuilt next time: a Sentinel may have moved too.
                        *client = None;
                        Err(error.into())
                    }
                }
            }
            Target::Cluster(_) => unreachable!("a cluster has no single server"),
        }
    }

    fn sentinel_client(
        &self,
        sentinels: &[ConnectionInfo],
        master: &str,
        credentials: Option<&Credentials>,
    ) -> Result<SentinelClient, RedisError> {
        let mut redis_settings = sentinels[0].redis_settings().clone().set_db(0);
        if let Some(credentials) = credentials {
            redis_settings = redis_settings.set_password(credentials.password.expose());
            if let Some(user) = &credentials.user {
                redis_settings = redis_settings.set_username(user);
            }
        }
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_settings);
        #[cfg(feature = "redis-rustls")]
        let node = match sentinels[0].addr() {
            redis::ConnectionAddr::TcpTls { .. } => node.set_tls_mode(redis::TlsMode::Secure),
            _ => node,
        };
        // The redis crate takes a `String` here without its TLS feature and `impl AsRef<str>`
        // with it; a `String` suits both.
        #[allow(clippy::unnecessary_to_owned)]
        SentinelClient::build(sentinels.to_vec(), master.to_string(), Some(node), SentinelServerType::Master)
    }

    fn cluster_client(
        &self,
        nodes: &[ConnectionInfo],
        credentials: Option<&Credentials>,
    ) -> Result<ClusterClient, RedisError> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.to_vec());
        if let Some(credentials) = credentials {
            builder = builder.password(credentials.password.expose());
            if let Some(user) = &credentials.user {
                builder = builder.username(user);
            }
        }
        #[cfg(feature = "redis-rustls")]
        if let Some(certs) = self.certificates() {
            builder = builder.certs(certs);
        }
        builder.build()
    }

    /// A pub/sub connection of its own (a subscription cannot share a pooled connection): to
    /// the server, to the current master, or to one node of a cluster (whose pub/sub messages
    /// reach every node), the next node on each call so that a dead node is skipped.
    ///
    /// # Errors
    /// No server could be reached, or the credential provider failed.
    pub async fn pubsub(&self) -> Result<PubSub, RedisManagerError> {
        let credentials = self.current_credentials().await?;
        match &self.target {
            Target::Cluster(nodes) => {
                let start = self.next_node.fetch_add(1, Ordering::Relaxed);
                let mut last = None;
                for i in 0..nodes.len() {
                    let info =
                        with_credentials(nodes[(start + i) % nodes.len()].clone(), credentials.as_ref());
                    match self.client(info)?.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.expect("a cluster has a node").into())
            }
            _ => Ok(self.server_client(credentials.as_ref()).await?.get_async_pubsub().await?),
        }
    }
}

/// `info` with the user and password of `credentials`, if any.
fn with_credentials(info: ConnectionInfo, credentials: Option<&Credentials>) -> ConnectionInfo {
    let Some(credentials) = credentials else { return info };
    let mut settings = info.redis_settings().clone().set_password(credentials.password.expose());
    if let Some(user) = &credentials.user {
        settings = settings.set_username(user);
    }
    info.set_redis_settings(settings)
}

/// A pooled Redis connection: use it wherever a `redis::aio::ConnectionLike` goes
/// (`query_async(&mut *conn)`). It remembers errors that leave it unusable, so the pool closes
/// it on return.
pub struct RedisConnection {
    conn: Conn,
    broken: bool,
}

enum Conn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.conn {
            Conn::Server(_) => "server",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConnection").field("kind", &kind).field("broken", &self.broken).finish()
    }
}

impl RedisConnection {
    fn note(&mut self, result: &Result<impl Sized, RedisError>) {
        let lost = |error: &RedisError| {
            error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_timeout()
                || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        };
        if result.as_ref().err().is_some_and(lost) {
            self.broken = true;
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match &mut self.conn {
                Conn::Server(conn) => conn.req_packed_command(cmd).await,
                Conn::Cluster(conn) => conn.req_packed_command(cmd).await,
            };
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
            let result = match &mut self.conn {
                Conn::Server(conn) => conn.req_packed_commands(pipeline, offset, count).await,
                Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count).await,
            };
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Server(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Manager for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisManagerError;

    async fn connect(&self) -> Result<RedisConnection, RedisManagerError> {
        let credentials = self.current_credentials().await?;
        let conn = match &self.target {
            Target::Cluster(nodes) => {
                Conn::Cluster(self.cluster_client(nodes, credentials.as_ref())?.get_async_connection().await?)
            }
            _ => Conn::Server(
                self.server_client(credentials.as_ref()).await?.get_multiplexed_async_connection().await?,
            ),
        };
        Ok(RedisConnection { conn, broken: false })
    }

    async fn validate(&self, conn: &mut RedisConnection) -> Result<(), RedisManagerError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from((redis::ErrorKind::UnexpectedReturnType, "unexpected PING reply", pong))
                .into())
        }
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.broken
    }

    fn cancel_safe(&self) -> bool {
        true
    }
}
