//! Named pools: two pools in one process publish distinct metric series, a checkout wait is a
//! tracing span carrying the pool's name and the time waited, and secrets never print.
#![cfg(feature = "metrics")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connpool::sim::SimManager;
use connpool::{Config, Pool};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

fn named(name: &str) -> Config {
    let mut config = common::config(1, 1);
    config.name = Some(name.into());
    config
}

#[test]
fn two_named_pools_publish_distinct_series() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let orders = common::pool(&SimManager::new(), named("orders")).await;
            let search = common::pool(&SimManager::new(), named("search")).await;
            let _held = orders.get().await.unwrap();
            drop(search.get().await.unwrap());
            drop(search.get().await.unwrap());
            assert_eq!((orders.name(), search.name()), ("orders", "search"));
            tokio::time::sleep(Duration::from_millis(150)).await; // a maintenance tick each
        });
    });
    let published = snapshotter.snapshot().into_vec();
    let find = |name: &str, pool: &str| {
        published
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name && key.key().labels().any(|l| l.key() == "pool" && l.value() == pool)
            })
            .map(|(.., value)| value)
    };
    assert_eq!(find("connpool_active", "orders"), Some(&DebugValue::Gauge(1.0.into())));
    assert_eq!(find("connpool_active", "search"), Some(&DebugValue::Gauge(0.0.into())));
    assert_eq!(find("connpool_checkouts", "orders"), Some(&DebugValue::Counter(1)));
    assert_eq!(find("connpool_checkouts", "search"), Some(&DebugValue::Counter(2)));
    let unlabelled =
        published.iter().filter(|(key, ..)| key.key().labels().all(|l| l.key() != "pool")).count();
    assert_eq!(unlabelled, 0, "every series carries its pool");
}

/// A span's name and the fields recorded on it.
/// A span's or an event's fields: name and recorded value.
type FieldList = Vec<(String, String)>;
type SpanFields = (String, FieldList);

/// Spans seen, with their fields.
#[derive(Default, Clone)]
struct Spans(Arc<Mutex<Vec<SpanFields>>>);

struct Fields<'a>(&'a mut FieldList);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push((field.name().to_string(), testkit::report(value)));
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>
    tracing_subscriber::Layer<S> for Spans
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push((attrs.metadata().name().to_string(), fields));
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, fields)) = spans.last_mut() {
            values.record(&mut Fields(fields));
        }
    }
}

/// Events seen, with their fields (an error field recorded as tracing-subscriber's formatter
/// records it: the error and its sources).
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<FieldList>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

/// A failed connection attempt is logged with the backend's causes (tokio-postgres keeps
/// "connection refused" in the source of "error connecting to server"), not only its top
/// message.
#[cfg(feature = "postgres")]
#[test]
fn a_failed_connection_is_logged_with_its_causes() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let manager =
                connpool::postgres::PgManager::new(&format!("postgres://app@127.0.0.1:{port}/app")).unwrap();
            assert!(Pool::builder(manager).config(named("orders")).build().await.is_err());
        });
    });
    let events = events.0.lock().unwrap();
    let logged = events
        .iter()
        .find(|fields| fields.iter().any(|(k, v)| k == "message" && v == "connection attempt failed"))
        .expect("the failed attempt is logged");
    let error = &logged.iter().find(|(k, _)| k == "error").expect("with its error").1;
    assert!(error.contains("error connecting to server") && error.contains("refused"), "{error}");
}

#[test]
fn a_checkout_wait_is_a_span_with_the_pool_name_and_the_time_waited() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let pool: Pool<SimManager> = common::pool(&SimManager::new(), named("orders")).await;
            // No wait, no span.
            drop(pool.get().await.unwrap());
            let held = pool.get().await.unwrap();
            let waiter = {
                let pool = pool.clone();
                tokio::spawn(async move { drop(pool.get().await.unwrap()) })
            };
            tokio::time::sleep(Duration::from_millis(40)).await;
            drop(held);
            waiter.await.unwrap();
        });
    });
    let spans = spans.0.lock().unwrap();
    let waits: Vec<_> = spans.iter().filter(|(name, _)| name == "connpool.checkout_wait").collect();
    assert_eq!(waits.len(), 1, "{spans:?}");
    let fields = &waits[0].1;
    assert!(fields.contains(&("pool".to_string(), "orders".to_string())), "{fields:?}");
    let waited: u64 =
        fields.iter().find(|(k, _)| k == "waited_us").expect("waited recorded").1.parse().unwrap();
    assert!(waited >= 40_000, "{waited}");
}

#[cfg(all(feature = "postgres", feature = "redis"))]
#[test]
fn managers_and_urls_never_print_a_password() {
    let pg = connpool::postgres::PgManager::new("postgres://app:s3cret-pg@db.internal:5432/app").unwrap();
    let redis =
        connpool::redis::RedisManager::new("redis://default:s3cret-redis@cache.internal:6379").unwrap();
    for printed in [format!("{pg:?}"), format!("{redis:?}")] {
        assert!(!printed.contains("s3cret"), "{printed}");
    }
    let redacted = connpool::redact_url("postgres://app:s3cret-pg@db.internal:5432/app");
    assert_eq!(redacted, "postgres://app:***@db.internal:5432/app");
    assert_eq!(format!("{:?}", connpool::Secret::new("s3cret")), "Secret(***)");
}
