//! The HTTP manager and client against real hyper servers on loopback: HTTP/1.1 pooled and held
//! until each body is read, HTTP/2 shared by concurrent requests, HTTPS with ALPN choosing either
//! (certificates from `scripts/servers.sh`), the `Host` header filled in, bodies streamed both
//! ways.
#![cfg(feature = "http")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use connpool::http::{HttpClient, HttpManager};
use connpool::{Pool, PoolError};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the test servers saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Answers `/echo` with the request body, `/close` with `Connection: close`, `/big` with 64
/// chunks, `/wait` only once `wait` requests are in flight at once, anything else with its path
/// and the `Host` it was sent to.
async fn handle(
    request: Request<Incoming>,
    seen: Arc<Seen>,
    wait: Arc<tokio::sync::Barrier>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let path = request.uri().path().to_owned();
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .map(|h| h.to_str().unwrap().to_string())
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let body = match path.as_str() {
        "/echo" => request.into_body().collect().await.unwrap().to_bytes().boxed_unsync_full(),
        "/big" => {
            let chunks = (0..64).map(|i| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![i as u8; 1024]))));
            StreamBody::new(futures_util::stream::iter(chunks)).boxed()
        }
        "/wait" => {
            wait.wait().await;
            Full::new(Bytes::from("waited")).boxed()
        }
        _ => Full::new(Bytes::from(format!("{path} {host}"))).boxed(),
    };
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::new(body);
    if path == "/close" {
        response.headers_mut().insert("connection", "close".parse().unwrap());
    }
    response
}

trait FullExt {
    fn boxed_unsync_full(self) -> http_body_util::combinators::BoxBody<Bytes, Infallible>;
}

impl FullExt for Bytes {
    fn boxed_unsync_full(self) -> http_body_util::combinators::BoxBody<Bytes, Infallible> {
        Full::new(self).boxed()
    }
}

/// A server speaking HTTP/1.1 and HTTP/2 (by preface), over TLS when `tls` is given (ALPN
/// offering `alpn`).
async fn server(tls: Option<tokio_rustls_acceptor::Acceptor>, wait: usize) -> (SocketAddr, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let wait = Arc::new(tokio::sync::Barrier::new(wait.max(1)));
    let (s, w) = (Arc::clone(&seen), Arc::clone(&wait));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (s, w, tls) = (Arc::clone(&s), Arc::clone(&w), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (s, w) = (Arc::clone(&s), Arc::clone(&w));
                    async move { Ok::<_, Infallible>(handle(request, s, w).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else { return };
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[cfg(feature = "http-rustls")]
mod tokio_rustls_acceptor {
    pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;
}

#[cfg(not(feature = "http-rustls"))]
mod tokio_rustls_acceptor {
    /// Never built without the `http-rustls` feature.
    #[derive(Clone)]
    pub(crate) struct Acceptor;

    impl Acceptor {
        pub(crate) async fn accept(
            &self,
            stream: tokio::net::TcpStream,
        ) -> std::io::Result<tokio::net::TcpStream> {
            Ok(stream)
        }
    }
}

async fn text(client: &HttpClient, path: &str) -> String {
    let response = client.send(Request::get(path).body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_are_pooled_with_the_host_header_filled_in() {
    let (addr, seen) = server(None, 1).await;
    let pool =
        Pool::builder(HttpManager::new(addr.to_string())).config(common::config(0, 4)).build().await.unwrap();
    let client = HttpClient::new(pool.clone());
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let path = format!("/{t}/{i}");
                    assert_eq!(
                        text(&client, &path).await,
                        format!("{path} {}", client.pool().manager().authority())
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = pool.metrics();
    assert_eq!((metrics.status.in_use, metrics.status.waiting), (0, 0), "{metrics}");
    assert!(metrics.created <= 4 && seen.connections.load(Ordering::SeqCst) <= 4, "{metrics}");
    assert_eq!(metrics.checkouts, 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_shares_one_connection_between_64_concurrent_requests() {
    // Every `/wait` is answered only once 64 are in flight at once: over exclusive connections
    // (at most one here) this could never complete.
    let (addr, seen) = server(None, 64).await;
    let pool = Pool::builder(HttpManager::http2(addr.to_string()))
        .config(common::config(0, 1))
        .build()
        .await
        .unwrap();
    let client = HttpClient::new(pool.clone());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { text(&client, "/wait").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap(), "waited");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert!(seen.max_in_flight.load(Ordering::SeqCst) >= 64);
    assert_eq!(pool.metrics().created, 1);
    // The authority reached the server through the URI (`:authority`).
    assert_eq!(text(&client, "/who").await, format!("/who {addr}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways() {
    let (addr, _) = server(None, 1).await;
    let pool =
        Pool::builder(HttpManager::new(addr.to_string())).config(common::config(0, 1)).build().await.unwrap();
    let client = HttpClient::new(pool.clone());
    // A request body sent as 16 chunks.
    let chunks = (0..16).map(|i| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{i:02}")))));
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let response = client.send(Request::post("/echo").body(body).unwrap()).await.unwrap();
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, (0..16).map(|i| format!("{i:02}")).collect::<String>());
    // A response body read frame by frame.
    let mut body =
        client.send(Request::get("/big").body(Empty::<Bytes>::new()).unwrap()).await.unwrap().into_body();
    let (mut frames, mut bytes) = (0, 0);
    while let Some(frame) = body.frame().await {
        bytes += frame.unwrap().into_data().unwrap().len();
        frames += 1;
    }
    assert_eq!((bytes, frames > 1), (64 * 1024, true));
    drop(body);
    // The connection went back once the body ended, and serves the next request.
    assert_eq!(pool.status().in_use, 0);
    assert_eq!(text(&client, "/after").await, format!("/after {addr}"));
    // A body dropped before its end closes its HTTP/1.1 connection (the rest of the reply would
    // reach the next request).
    let response = client.send(Request::get("/big").body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    drop(response);
    assert_eq!(pool.metrics().closed.broken, 1);
    assert_eq!(text(&client, "/fresh").await, format!("/fresh {addr}"));
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let (addr, seen) = server(None, 1).await;
    let pool =
        Pool::builder(HttpManager::new(addr.to_string())).config(common::config(0, 1)).build().await.unwrap();
    let client = HttpClient::new(pool);
    assert!(text(&client, "/close").await.starts_with("/close"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(text(&client, "/again").await.starts_with("/again"));
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2, "the closed connection was not reused");
}

#[tokio::test]
async fn a_refused_origin_is_a_clear_error() {
    let port = common::closed_port();
    let pool = Pool::builder(HttpManager::new(format!("127.0.0.1:{port}")))
        .config(common::config(0, 1))
        .build()
        .await
        .unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Connect(_)), "{err}");
    assert!(testkit::report(&err).contains("connecting failed"), "{err}");
}

#[cfg(feature = "http-rustls")]
mod https {
    use super::*;

    fn acceptor(alpn: &[&[u8]]) -> Option<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = common::require_env("TLS_CERT_FILE")?;
        let key = common::require_env("TLS_KEY_FILE")?;
        let certs = CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    fn client_tls() -> rustls::ClientConfig {
        let ca = std::fs::read(common::require_env("TLS_CA_FILE").unwrap()).unwrap();
        connpool::tls_client_config(connpool::tls_roots(&ca).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_negotiates_http2_and_shares_the_connection() {
        let Some(acceptor) = acceptor(&[b"h2", b"http/1.1"]) else { return };
        let (addr, seen) = server(Some(acceptor), 64).await;
        let authority = format!("localhost:{}", addr.port());
        let pool = Pool::builder(HttpManager::https(authority.clone(), client_tls()))
            .config(common::config(0, 1))
            .build()
            .await
            .unwrap();
        let client = HttpClient::new(pool.clone());
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { text(&client, "/wait").await })
            })
            .collect();
        for task in tasks {
            assert_eq!(tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap(), "waited");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "64 requests over one h2 connection");
        assert_eq!(text(&client, "/who").await, format!("/who {authority}"));
        assert!(pool.get().await.unwrap().is_http2());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_falls_back_to_pooled_http1() {
        let Some(acceptor) = acceptor(&[b"http/1.1"]) else { return };
        let (addr, seen) = server(Some(acceptor), 1).await;
        let authority = format!("localhost:{}", addr.port());
        let pool = Pool::builder(HttpManager::https(authority.clone(), client_tls()))
            .config(common::config(0, 4))
            .build()
            .await
            .unwrap();
        let client = HttpClient::new(pool.clone());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (client, authority) = (client.clone(), authority.clone());
                tokio::spawn(async move {
                    assert_eq!(text(&client, &format!("/{i}")).await, format!("/{i} {authority}"))
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(!pool.get().await.unwrap().is_http2());
        assert!(seen.connections.load(Ordering::SeqCst) <= 4);
        assert_eq!(pool.metrics().status.in_use, 0);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error() {
        let Some(acceptor) = acceptor(&[b"h2"]) else { return };
        let (addr, _) = server(Some(acceptor), 1).await;
        let empty = rustls::RootCertStore::empty();
        let pool = Pool::builder(HttpManager::https(
            format!("localhost:{}", addr.port()),
            connpool::tls_client_config(empty),
        ))
        .config(common::config(0, 1))
        .build()
        .await
        .unwrap();
        let err = pool.get().await.unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(chain.contains("certificate"), "{chain}");
    }
}
