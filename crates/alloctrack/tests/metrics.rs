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
