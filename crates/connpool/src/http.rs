//! A [`Manager`] of HTTP connections to one origin on hyper's client connection API, and
//! [`HttpClient`], which sends requests through a pool of them (feature `http`; HTTPS with the
//! `http-rustls` feature).
//!
//! An HTTP/1.1 connection carries one request at a time, so [`HttpClient`] keeps it checked out
//! until the response body has been read to its end (or dropped). An HTTP/2 connection
//! multiplexes many requests, so the client takes a handle to it and returns it to the pool at
//! once: concurrent requests share the connection instead of each checking out its own, up to
//! the server's stream limit. Over TLS, ALPN chooses between the two; over plain TCP,
//! [`HttpManager::new`] speaks HTTP/1.1 and [`HttpManager::http2`] HTTP/2 with prior knowledge.
//!
//! Request and response bodies are streamed: a request takes any `http_body::Body` of `Bytes`;
//! a response body is read frame by frame as it arrives.

use std::fmt;
use std::pin::Pin;
#[cfg(feature = "http-rustls")]
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::error::PoolError;
use crate::hooks::BoxError;
use crate::manager::Manager;
use crate::pool::Pool;

/// The request body every pooled connection takes: any body, boxed.
pub type RequestBody = BoxBody<Bytes, BoxError>;

/// Opens HTTP connections to one origin (`host:port`); each is checked ready before reuse and
/// reported broken once hyper says it closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use connpool::http::{HttpClient, HttpManager};
/// use http_body_util::{BodyExt, Empty};
///
/// let pool = connpool::Pool::builder(HttpManager::new("127.0.0.1:8080")).build().await?;
/// let client = HttpClient::new(pool);
/// let response = client.send(hyper::Request::get("/health").body(Empty::<bytes::Bytes>::new())?).await?;
/// assert!(response.status().is_success());
/// let body = response.into_body().collect().await?.to_bytes(); // or stream it frame by frame
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpManager {
    /// `host:port`, the authority requests are sent to.
    authority: String,
    /// The host alone, the name a TLS certificate must carry.
    #[cfg_attr(not(feature = "http-rustls"), allow(dead_code))]
    host: String,
    protocol: Protocol,
}

#[derive(Clone)]
enum Protocol {
    Http1,
    Http2PriorKnowledge,
    #[cfg(feature = "http-rustls")]
    Https(tokio_rustls::TlsConnector),
}

impl fmt::Debug for HttpManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2PriorKnowledge => "h2 (prior knowledge)",
            #[cfg(feature = "http-rustls")]
            Protocol::Https(_) => "https (h2 or http/1.1 by ALPN)",
        };
        f.debug_struct("HttpManager")
            .field("authority", &self.authority)
            .field("protocol", &protocol)
            .finish()
    }
}

fn host_of(authority: &str) -> String {
    // `[::1]:443` -> `::1`; `example.com:443` -> `example.com`.
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

impl HttpManager {
    fn with(authority: impl Into<String>, protocol: Protocol) -> Self {
        let authority = authority.into();
        Self { host: host_of(&authority), authority, protocol }
    }

    /// Plain-HTTP/1.1 connections to `authority` (`host:port`).
    pub fn new(authority: impl Into<String>) -> Self {
        Self::with(authority, Protocol::Http1)
    }

    /// Plain HTTP/2 ("h2c", prior knowledge) connections to `authority`: shared by concurrent
    /// requests through [`HttpClient`].
    pub fn http2(authority: impl Into<String>) -> Self {
        Self::with(authority, Protocol::Http2PriorKnowledge)
    }

    /// HTTPS connections to `authority` with rustls (feature `http-rustls`), HTTP/2 or HTTP/1.1
    /// as the server chooses by ALPN. `tls` says which authorities to trust (see
    /// [`tls_client_config`](crate::tls_client_config)); its ALPN list is set here.
    #[cfg(feature = "http-rustls")]
    pub fn https(authority: impl Into<String>, mut tls: rustls::ClientConfig) -> Self {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::with(authority, Protocol::Https(tokio_rustls::TlsConnector::from(Arc::new(tls))))
    }

    /// The origin's authority (`host:port`).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    fn scheme(&self) -> &'static str {
        match self.protocol {
            Protocol::Http1 | Protocol::Http2PriorKnowledge => "http",
            #[cfg(feature = "http-rustls")]
            Protocol::Https(_) => "https",
        }
    }
}

/// Why opening or checking an HTTP connection failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The TCP connection (or, over TLS, the handshake) failed.
    Connect(std::io::Error),
    /// The HTTP handshake or the connection failed.
    Http(hyper::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(_) => f.write_str("connecting failed"),
            Self::Http(_) => f.write_str("the HTTP connection failed"),
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

/// A pooled HTTP connection. Its connection task is stopped when it is dropped.
#[derive(Debug)]
pub struct HttpConnection {
    sender: Sender,
    task: JoinHandle<()>,
}

#[derive(Debug)]
enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

impl HttpConnection {
    /// Whether this is an HTTP/2 connection (which many requests may share at once).
    pub fn is_http2(&self) -> bool {
        matches!(self.sender, Sender::Http2(_))
    }

    /// Sends a request on this connection. The request must be in the form its protocol wants;
    /// [`HttpClient::send`] takes care of that.
    ///
    /// # Errors
    /// hyper's error for the request.
    pub async fn send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handshake<I>(io: I, http2: bool) -> Result<HttpConnection, HttpError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if http2 {
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), io).await.map_err(HttpError::Http)?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = &error as &dyn std::error::Error, "HTTP/2 connection ended");
            }
        });
        Ok(HttpConnection { sender: Sender::Http2(sender), task })
    } else {
        let (sender, connection) = http1::handshake(io).await.map_err(HttpError::Http)?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = &error as &dyn std::error::Error, "HTTP/1.1 connection ended");
            }
        });
        Ok(HttpConnection { sender: Sender::Http1(sender), task })
    }
}

impl Manager for HttpManager {
    type Connection = HttpConnection;
    type Error = HttpError;

    async fn connect(&self) -> Result<HttpConnection, HttpError> {
        let stream = TcpStream::connect(&self.authority).await.map_err(HttpError::Connect)?;
        stream.set_nodelay(true).map_err(HttpError::Connect)?;
        match &self.protocol {
            Protocol::Http1 => handshake(stream, false).await,
            Protocol::Http2PriorKnowledge => handshake(stream, true).await,
            #[cfg(feature = "http-rustls")]
            Protocol::Https(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
                    HttpError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let tls = connector.connect(name, stream).await.map_err(HttpError::Connect)?;
                let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(tls, http2).await
            }
        }
    }

    async fn validate(&self, conn: &mut HttpConnection) -> Result<(), HttpError> {
        match &mut conn.sender {
            Sender::Http1(sender) => sender.ready().await.map_err(HttpError::Http),
            Sender::Http2(sender) => sender.ready().await.map_err(HttpError::Http),
        }
    }

    fn is_broken(&self, conn: &mut HttpConnection) -> bool {
        match &conn.sender {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    /// HTTP/2 multiplexes: an abandoned request resets its own stream only. HTTP/1.1 (and HTTPS,
    /// which may negotiate it) is request/response.
    fn cancel_safe(&self) -> bool {
        matches!(self.protocol, Protocol::Http2PriorKnowledge)
    }
}

/// Sends requests through a pool of [`HttpManager`] connections: fills in the `Host` header
/// (HTTP/1.1) or the scheme and authority (HTTP/2), holds an HTTP/1.1 connection until its
/// response body is read, and shares HTTP/2 connections between concurrent requests.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pool: Pool<HttpManager>,
}

impl HttpClient {
    /// A client over `pool`.
    pub fn new(pool: Pool<HttpManager>) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<HttpManager> {
        &self.pool
    }

    /// Sends `request` (a path such as `/v1/items`, or an absolute URI for this origin) and
    /// returns the response as soon as its head arrives; the body streams.
    ///
    /// # Errors
    /// [`HttpClientError::Pool`] if no connection could be checked out;
    /// [`HttpClientError::Http`] if the request failed on it (the connection is then closed);
    /// [`HttpClientError::ForeignOrigin`] for an absolute URI of another origin;
    /// [`HttpClientError::Request`] for one that cannot be rebuilt for this origin.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<ResponseBody>, HttpClientError>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let manager = self.pool.manager();
        let (mut parts, body) = request.into_parts();
        if let Some(authority) = parts.uri.authority().filter(|a| a.as_str() != manager.authority) {
            return Err(HttpClientError::ForeignOrigin {
                authority: authority.to_string(),
                origin: manager.authority.clone(),
            });
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let body = body.map_err(Into::into).boxed();
        let mut conn = self.pool.get().await.map_err(HttpClientError::Pool)?;
        if conn.is_http2() {
            parts.uri = Uri::builder()
                .scheme(manager.scheme())
                .authority(manager.authority.as_str())
                .path_and_query(path)
                .build()
                .map_err(HttpClientError::Request)?;
            // Shared: a handle for this request, the connection straight back to the pool.
            let Sender::Http2(sender) = &conn.sender else { unreachable!("checked above") };
            let mut sender = sender.clone();
            drop(conn);
            sender.ready().await.map_err(HttpClientError::Http)?;
            let response =
                sender.send_request(Request::from_parts(parts, body)).await.map_err(HttpClientError::Http)?;
            return Ok(response.map(|incoming| ResponseBody { incoming, conn: None }));
        }
        parts.uri =
            path.parse().map_err(|e: hyper::http::uri::InvalidUri| HttpClientError::Request(e.into()))?;
        if !parts.headers.contains_key(hyper::header::HOST) {
            let host = hyper::header::HeaderValue::from_str(&manager.authority)
                .map_err(|e| HttpClientError::Request(e.into()))?;
            parts.headers.insert(hyper::header::HOST, host);
        }
        match conn.send_request(Request::from_parts(parts, body)).await {
            Ok(response) => Ok(response.map(|incoming| ResponseBody { incoming, conn: Some(conn) })),
            Err(error) => {
                conn.mark_broken();
                Err(HttpClientError::Http(error))
            }
        }
    }
}

/// A response body from [`HttpClient`], streamed. For HTTP/1.1 it holds the connection, which
/// goes back to the pool when the body ends (or is dropped before: then the connection, with an
/// unread reply on it, is closed).
#[derive(Debug)]
pub struct ResponseBody {
    incoming: Incoming,
    conn: Option<Conn<HttpManager>>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.incoming).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => drop(this.conn.take()),
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut conn) = this.conn.take() {
                    conn.mark_broken();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let (Some(conn), false) = (&mut self.conn, self.incoming.is_end_stream()) {
            // Dropped before its end: the rest of the reply would reach the next user.
            conn.mark_broken();
        }
    }
}

/// Why [`HttpClient::send`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpClientError {
    /// No connection could be checked out.
    Pool(PoolError<HttpError>),
    /// The request failed on its connection.
    Http(hyper::Error),
    /// The request names another origin than the client's (an absolute URI).
    ForeignOrigin {
        /// The request's authority.
        authority: String,
        /// The client's origin.
        origin: String,
    },
    /// The request's URI or `Host` header cannot be built for this origin.
    Request(hyper::http::Error),
}

impl fmt::Display for HttpClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pool(_) => f.write_str("no HTTP connection available"),
            Self::Http(_) => f.write_str("the HTTP request failed"),
            Self::ForeignOrigin { authority, origin } => {
                write!(f, "{authority} is not this client's origin {origin}")
            }
            Self::Request(_) => f.write_str("invalid request"),
        }
    }
}

impl std::error::Error for HttpClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pool(error) => Some(error),
            Self::Http(error) => Some(error),
            Self::Request(error) => Some(error),
            Self::ForeignOrigin { .. } => None,
        }
    }
}
