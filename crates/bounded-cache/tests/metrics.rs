//! The `metrics` feature publishes the statistics under the cache's name.
#![cfg(feature = "metrics")]

use bounded_cache::Cache;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn two_caches_publish_their_statistics_apart() {
    let sessions: Cache<u32, u32> = Cache::new(1 << 20);
    let pages: Cache<u32, u32> = Cache::new(1 << 20);
    sessions.insert(1, 1).unwrap();
    sessions.get(&1);
    sessions.get(&2);
    sessions.remove(&1);
    pages.insert(1, 1).unwrap();
    pages.insert(2, 2).unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        sessions.stats().publish("sessions");
        pages.stats().publish("pages");
    });
    let published = snapshotter.snapshot().into_vec();
    let value = |name: &str, labels: &[(&str, &str)]| {
        published
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(l, v)| key.labels().any(|label| label.key() == *l && label.value() == *v))
            })
            .map(|(.., value)| value)
    };
    let counter = |n| DebugValue::Counter(n);
    assert_eq!(value("bounded_cache_hits", &[("cache", "sessions")]), Some(&counter(1)));
    assert_eq!(value("bounded_cache_misses", &[("cache", "sessions")]), Some(&counter(1)));
    assert_eq!(
        value("bounded_cache_evictions", &[("cache", "sessions"), ("cause", "explicit")]),
        Some(&counter(1))
    );
    assert_eq!(
        value("bounded_cache_evictions", &[("cache", "sessions"), ("cause", "size")]),
        Some(&counter(0))
    );
    assert_eq!(value("bounded_cache_inserts", &[("cache", "pages")]), Some(&counter(2)));
    assert_eq!(value("bounded_cache_entries", &[("cache", "pages")]), Some(&DebugValue::Gauge(2.0.into())));
    assert_eq!(
        value("bounded_cache_weighed_bytes", &[("cache", "pages")]),
        Some(&DebugValue::Gauge((pages.weighed_size() as f64).into()))
    );
    assert_eq!(
        value("bounded_cache_budget_bytes", &[("cache", "sessions")]),
        Some(&DebugValue::Gauge(((1u64 << 20) as f64).into()))
    );
}
