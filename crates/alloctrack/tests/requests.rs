//! Allocations per request and route (feature `tower`).

mod support;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use alloctrack::{RequestAllocations, Tracking};
use support::{YieldOnce, poll_once};
use tower_layer::Layer;
use tower_service::Service;

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

type Response = Pin<Box<dyn Future<Output = Result<usize, ()>> + Send>>;

/// Allocates 10 bytes and its boxed response future in `call`, then `n` bytes in the response
/// future before and after an await: `n` is the request body.
#[derive(Clone)]
struct Handler;

impl Service<http::Request<usize>> for Handler {
    type Response = usize;
    type Error = ();
    type Future = Pin<Box<dyn Future<Output = Result<usize, ()>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<usize>) -> Self::Future {
        black_box(vec![0u8; 10]);
        let n = *request.body();
        Box::pin(async move {
            let first = black_box(vec![0u8; n]);
            YieldOnce::new().await;
            let second = black_box(vec![0u8; n]);
            Ok(first.len() + second.len())
        })
    }
}

fn poll(response: &mut Response) -> Poll<Result<usize, ()>> {
    poll_once(response.as_mut())
}

fn request(path: &str, n: usize) -> http::Request<usize> {
    http::Request::builder().uri(path).body(n).unwrap()
}

#[test]
fn each_request_is_measured_across_threads_and_summed_per_route() {
    let layer = RequestAllocations::new();
    let mut service = layer.layer(Handler);
    for (path, n) in [("/a", 100), ("/b", 1000), ("/a", 200)] {
        let mut response: Response = Box::pin(service.call(request(path, n)));
        assert!(poll(&mut response).is_pending());
        // The rest of the request is handled on another thread.
        let done = std::thread::spawn(move || poll(&mut response)).join().unwrap();
        assert_eq!(done, Poll::Ready(Ok(2 * n)));
    }
    let routes = layer.snapshot();
    assert_eq!(
        routes.iter().map(|(route, _)| route.as_str()).collect::<Vec<_>>(),
        ["/b", "/a"],
        "most bytes first"
    );
    let (_, b) = &routes[0];
    // Per request: 10 bytes and the boxed response future (40 bytes) in `call`, then 2 x n.
    assert_eq!((b.requests, b.allocated.allocations, b.allocated.bytes_allocated), (1, 4, 2050));
    let (_, a) = &routes[1];
    assert_eq!((a.requests, a.allocated.allocations, a.allocated.bytes_allocated), (2, 8, 700));
    assert_eq!(a.bytes_per_request(), 350.0);
}

#[test]
fn routes_can_be_named_by_the_caller_and_unfinished_requests_are_not_recorded() {
    let layer =
        RequestAllocations::new().route_with(|head| head.uri.path().rsplit_once('/').unwrap().0.to_string());
    let mut service = layer.layer(Handler);
    for id in 0..3 {
        let mut response: Response = Box::pin(service.call(request(&format!("/users/{id}"), 8)));
        assert!(poll(&mut response).is_pending());
        if id < 2 {
            assert!(poll(&mut response).is_ready());
        }
        // The third is dropped unfinished (a client gone): not recorded.
    }
    let routes = layer.snapshot();
    assert_eq!(routes.len(), 1);
    assert_eq!((routes[0].0.as_str(), routes[0].1.requests), ("/users", 2));
}

/// A handler for a real server: `/users/<id>` renders a 4 KiB page, anything else answers "ok".
#[derive(Clone)]
struct Pages;

impl Service<http::Request<hyper::body::Incoming>> for Pages {
    type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let body =
            if request.uri().path().starts_with("/users/") { vec![b'x'; 4096] } else { b"ok".to_vec() };
        std::future::ready(Ok(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_server_reports_allocations_per_route_with_one_layer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let allocations = RequestAllocations::new().route_with(|head| {
        if head.uri.path().starts_with("/users/") { "/users/{id}".into() } else { head.uri.path().into() }
    });
    // The one line: the application's service wrapped in the layer.
    let service = allocations.layer(Pages);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    for path in ["/users/1", "/users/2", "/health", "/users/3"] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response));
    }
    server.abort();
    let routes = allocations.snapshot();
    let route = |name: &str| routes.iter().find(|(r, _)| r == name).map(|(_, s)| *s).unwrap_or_default();
    let (users, health) = (route("/users/{id}"), route("/health"));
    assert_eq!((users.requests, health.requests), (3, 1), "{routes:?}");
    assert!(users.allocated.bytes_allocated >= 3 * 4096, "each page's 4 KiB: {users:?}");
    assert!(users.bytes_per_request() > health.bytes_per_request() + 4000.0, "{routes:?}");
}
