//! A [`Manager`] of HTTP/1.1 connections to one origin, on hyper's client connection API
//! (feature `http`).

use std::fmt;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::manager::Manager;

/// Opens plain-HTTP/1.1 connections to one origin (`host:port`); each pooled object is one
/// connection, checked ready before reuse and broken once hyper reports it closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use http_body_util::Full;
///
/// let pool = connpool::Pool::builder(connpool::http::HttpManager::new("127.0.0.1:8080")).build().await?;
/// let mut conn = pool.get().await?;
/// let request = hyper::Request::get("/health").header("host", "127.0.0.1").body(Full::default())?;
/// let response = conn.send_request(request).await?;
/// assert!(response.status().is_success());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpManager {
    origin: String,
}

impl HttpManager {
    /// A manager for the origin `authority` (`host:port`).
    pub fn new(authority: impl Into<String>) -> Self {
        Self { origin: authority.into() }
    }
}

/// Why opening or checking an HTTP connection failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The TCP connection failed.
    Connect(std::io::Error),
    /// The HTTP handshake or the connection failed.
    Http(hyper::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "connecting failed: {error}"),
            Self::Http(error) => write!(f, "HTTP connection failed: {error}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(error) => Some(error),
            Self::Http(error) => Some(error),
        }
    }
}

/// A pooled HTTP/1.1 connection: dereferences to hyper's [`SendRequest`]. Its connection task
/// is stopped when it is dropped.
#[derive(Debug)]
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl std::ops::Deref for HttpConnection {
    type Target = SendRequest<Full<Bytes>>;

    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}

impl std::ops::DerefMut for HttpConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sender
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Manager for HttpManager {
    type Connection = HttpConnection;
    type Error = HttpError;

    async fn connect(&self) -> Result<HttpConnection, HttpError> {
        let stream = TcpStream::connect(&self.origin).await.map_err(HttpError::Connect)?;
        stream.set_nodelay(true).map_err(HttpError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(HttpError::Http)?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended");
            }
        });
        Ok(HttpConnection { sender, task })
    }

    async fn validate(&self, conn: &mut HttpConnection) -> Result<(), HttpError> {
        conn.sender.ready().await.map_err(HttpError::Http)
    }

    fn is_broken(&self, conn: &mut HttpConnection) -> bool {
        conn.sender.is_closed()
    }
}
