//! The `metrics` feature publishes a snapshot through the installed recorder.
#![cfg(feature = "metrics")]

use alloctrack::Tracking;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

#[test]
fn a_snapshot_is_published_as_gauges_and_counters() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let snapshot = alloctrack::snapshot();
    metrics::with_local_recorder(&recorder, || snapshot.publish());
    let published: Vec<_> = snapshotter.snapshot().into_vec();
    let value =
        |name: &str| published.iter().find(|(key, ..)| key.key().name() == name).map(|(.., value)| value);
    assert_eq!(value("alloctrack_live_bytes"), Some(&DebugValue::Gauge((snapshot.live_bytes as f64).into())));
    assert_eq!(value("alloctrack_allocations_total"), Some(&DebugValue::Counter(snapshot.allocations)));
    assert_eq!(value("alloctrack_freed_bytes_total"), Some(&DebugValue::Counter(snapshot.bytes_freed)));
    assert!(snapshot.allocations > 0);
}

/// What a debugging recorder's snapshot holds.
type Published =
    [(metrics_util::CompositeKey, Option<metrics::Unit>, Option<metrics::SharedString>, DebugValue)];

/// The value of the counter `name` labelled `label = value`, if published.
fn counter(published: &Published, name: &str, label: (&str, &str)) -> Option<u64> {
    published.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let labelled = key.labels().any(|l| l.key() == label.0 && l.value() == label.1);
        match value {
            DebugValue::Counter(n) if key.name() == name && labelled => Some(*n),
            _ => None,
        }
    })
}

#[cfg(feature = "tracing")]
#[test]
fn span_totals_are_published_per_span() {
    use tracing_subscriber::layer::SubscriberExt;
    let layer = alloctrack::SpanAllocations::new();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer.clone()), || {
        let span = tracing::info_span!("decode");
        let _entered = span.enter();
        std::hint::black_box(vec![0u8; 300]);
    });
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || layer.publish());
    let published = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&published, "alloctrack_span_allocations", ("span", "decode")), Some(1));
    assert_eq!(counter(&published, "alloctrack_span_allocated_bytes", ("span", "decode")), Some(300));
}

#[cfg(feature = "tower")]
#[test]
fn route_totals_are_published_per_route() {
    use std::future::Ready;
    use std::task::{Context, Poll};
    use tower_layer::Layer;
    use tower_service::Service;

    struct Handler;
    impl Service<http::Request<()>> for Handler {
        type Response = usize;
        type Error = ();
        type Future = Ready<Result<usize, ()>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(std::hint::black_box(vec![0u8; 40]).len()))
        }
    }
    let layer = alloctrack::RequestAllocations::new();
    let mut service = layer.layer(Handler);
    let response = service.call(http::Request::builder().uri("/health").body(()).unwrap());
    let mut response = std::pin::pin!(response);
    let waker = std::task::Waker::noop();
    assert_eq!(response.as_mut().poll(&mut Context::from_waker(waker)), Poll::Ready(Ok(40)));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || layer.publish());
    let published = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&published, "alloctrack_route_requests", ("route", "/health")), Some(1));
    assert_eq!(counter(&published, "alloctrack_route_allocated_bytes", ("route", "/health")), Some(40));
}
