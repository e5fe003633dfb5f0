//! An HTTP/1.1 connection pool to one origin: a small hyper server on loopback, and 32 tasks
//! calling it through an `HttpClient` over the pool (which fills in the Host header and holds
//! each connection until its response body has been read).
//!
//! `cargo run --release --example http`

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use connpool::http::{HttpClient, HttpManager};
use connpool::{Config, Pool};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The origin: a hyper server answering every request with its path.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            request.uri().path().to_owned(),
                        ))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let mut config = Config::api();
    config.min_size = 2;
    config.max_size = 8;
    let pool = Pool::builder(HttpManager::new(addr.to_string())).config(config).build().await?;
    let client = HttpClient::new(pool.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let request = Request::get(format!("/{task}/{i}")).body(Empty::<Bytes>::new())?;
                    let body = client.send(request).await?.into_body().collect().await?.to_bytes();
                    assert_eq!(body, format!("/{task}/{i}"));
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.map_err(|e| e as Box<dyn std::error::Error>)?;
    }
    println!("1600 requests over at most 8 connections in {:.2?}", started.elapsed());
    println!("{}", pool.metrics());
    Ok(())
}
