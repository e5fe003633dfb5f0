//! The HTTP/1.1 manager against a real hyper server on loopback.
#![cfg(feature = "http")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use connpool::http::HttpManager;
use connpool::{Pool, PoolError};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// An HTTP/1.1 server that echoes the path; `/close` answers with `Connection: close`.
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_owned();
                        let mut response = Response::new(Full::new(Bytes::from(path.clone())));
                        if path == "/close" {
                            response.headers_mut().insert("connection", "close".parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn get(conn: &mut connpool::Conn<HttpManager>, path: &str) -> String {
    let request = Request::get(path).header("host", "localhost").body(Full::default()).unwrap();
    let response = conn.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_storm_reuses_connections_and_leaks_nothing() {
    let addr = server().await;
    let pool =
        Pool::builder(HttpManager::new(addr.to_string())).config(common::config(0, 4)).build().await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let mut conn = pool.get().await.unwrap();
                    let path = format!("/{t}/{i}");
                    assert_eq!(get(&mut conn, &path).await, path);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = pool.metrics();
    assert_eq!((metrics.status.in_use, metrics.status.waiting), (0, 0), "{metrics}");
    assert!(metrics.created <= 4, "{metrics}");
    assert_eq!(metrics.checkouts, 320);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let addr = server().await;
    let pool =
        Pool::builder(HttpManager::new(addr.to_string())).config(common::config(0, 1)).build().await.unwrap();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(get(&mut conn, "/close").await, "/close");
    let first = conn.id();
    drop(conn);
    // The closed connection is detected at return or at the next readiness check.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut conn = pool.get().await.unwrap();
    assert_eq!(get(&mut conn, "/again").await, "/again");
    assert_ne!(conn.id(), first, "the closed connection was handed out again");
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
    assert!(err.to_string().contains("connecting failed"), "{err}");
}
