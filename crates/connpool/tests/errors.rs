//! The error convention: each error's `Display` says its own layer's message, `source()` gives
//! the cause, so a reporter walking the chain (anyhow, eyre, tracing) prints every cause once.

mod common;

use std::time::Duration;

use common::config;
use connpool::sim::SimManager;
use connpool::{BuildError, ConfigError, ConnectError, Pool, PoolError};
use testkit::assert_error_chain;

#[tokio::test(start_paused = true)]
async fn a_checkout_timeout_gives_the_last_connection_error_as_its_source() {
    let manager = SimManager::new();
    manager.set_down(true);
    let mut cfg = config(0, 2);
    cfg.checkout_timeout = Duration::from_millis(300);
    let pool = Pool::builder(manager).config(cfg).build_lazy().unwrap();
    let error = pool.get().await.unwrap_err();
    let chain = assert_error_chain(&error, 2);
    assert!(
        matches!(error, PoolError::Connect(_) | PoolError::Timeout { last_error: Some(_), .. }),
        "{chain:?}"
    );
    assert_eq!(chain[1], "connection refused by the simulated backend");
}

#[tokio::test(start_paused = true)]
async fn a_failed_build_gives_the_connection_error_as_its_source() {
    let manager = SimManager::new();
    manager.set_down(true);
    let error = Pool::builder(manager).config(config(1, 2)).build().await.unwrap_err();
    assert!(matches!(&error, BuildError::Connect(e) if matches!(**e, ConnectError::Backend(_))));
    assert_eq!(assert_error_chain(&error, 2)[1], "connection refused by the simulated backend");
}

#[test]
fn an_invalid_configuration_is_one_layer() {
    let error = Pool::builder(SimManager::new()).config(config(3, 2)).build_lazy().unwrap_err();
    assert!(matches!(error, BuildError::Config(ConfigError::MinAboveMax { min_size: 3, max_size: 2 })));
    assert_error_chain(&error, 1);
}

/// A real client library's error: tokio-postgres says "error connecting to server" and keeps
/// the operating system's "connection refused" in its source.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_refused_postgres_connection_keeps_every_layer_once() {
    use connpool::postgres::PgManager;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let manager = PgManager::new(&format!("postgres://app@127.0.0.1:{port}/app")).unwrap();
    let error = Pool::builder(manager).config(config(1, 2)).build().await.unwrap_err();
    let chain = assert_error_chain(&error, 4);
    assert!(chain[3].contains("refused"), "{chain:?}");
}

#[cfg(feature = "rustls")]
#[test]
fn certificates_that_cannot_be_loaded_are_typed() {
    use connpool::{TlsError, tls_roots};
    let error = tls_roots(b"no certificate here").unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate), "{error:?}");
    assert_error_chain(&error, 1);
    let garbled = b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
    let error = tls_roots(garbled).unwrap_err();
    assert!(matches!(error, TlsError::Pem(_)), "{error:?}");
    assert_error_chain(&error, 2);
}

#[cfg(feature = "http")]
#[tokio::test]
async fn a_request_for_another_origin_is_typed() {
    use connpool::http::{HttpClient, HttpClientError, HttpManager};
    let manager = HttpManager::new("127.0.0.1:9");
    let client = HttpClient::new(Pool::builder(manager).config(config(0, 1)).build_lazy().unwrap());
    let request = hyper::Request::get("http://example.com/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let error = client.send(request).await.unwrap_err();
    assert!(
        matches!(&error, HttpClientError::ForeignOrigin { authority, origin } if authority == "example.com" && origin == "127.0.0.1:9"),
        "{error:?}"
    );
    assert_error_chain(&error, 1);
}
