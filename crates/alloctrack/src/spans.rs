//! Allocations per `tracing` span (feature `tracing`): [`SpanAllocations`], a layer for
//! `tracing-subscriber`.
//!
//! # Implementation details
//!
//! Each thread keeps a stack of the spans it is inside, with the thread's counters as they were
//! when each was entered (or last resumed). Entering a span charges what the thread allocated
//! since the enclosing span's start to the enclosing span and starts the new one; exiting charges
//! the span and resumes the enclosing one. So every allocation is charged to the innermost span
//! the thread was in, once: "self" counts, as a profiler's. The layer's own bookkeeping (the
//! stack's growth, a new span name in the totals) happens between a charge and the next start,
//! so it is charged to no span. Futures instrumented with a span enter and exit it around each
//! poll, on whichever thread polls them, so a task that migrates is followed.
//!
//! Frames carry the layer that pushed them: two layers in one process keep apart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::span::Id;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::registry::Counts;
use crate::scope::ScopeStats;
use crate::thread::counts_if_measured;

/// A `tracing-subscriber` layer that charges each allocation to the span the allocating thread
/// is in (the innermost one), and keeps totals per span name.
///
/// ```no_run
/// # // no_run: doc tests do not install the tracking allocator.
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let allocations = alloctrack::SpanAllocations::new();
/// let subscriber = tracing_subscriber::registry().with(allocations.clone());
/// tracing::subscriber::set_global_default(subscriber).unwrap();
/// // ... later, on a report tick:
/// for (span, stats) in allocations.snapshot() {
///     println!("{span}: {stats}");
/// }
/// ```
///
/// Threads without a counter slot of their own (beyond [`MAX_THREADS`](crate::MAX_THREADS)),
/// or a process whose global allocator is not [`Tracking`](crate::Tracking), are not counted.
#[derive(Clone, Default)]
pub struct SpanAllocations {
    totals: Arc<Mutex<HashMap<&'static str, ScopeStats>>>,
}

impl std::fmt::Debug for SpanAllocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanAllocations").field("spans", &self.lock().len()).finish()
    }
}

struct Frame {
    /// The `totals` of the layer that pushed the frame, as an address.
    layer: usize,
    id: Id,
    name: &'static str,
    start: Counts,
}

std::thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

impl SpanAllocations {
    /// A layer with no totals yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What each span name's spans allocated so far (their own allocations, not their
    /// children's), the largest byte count first.
    pub fn snapshot(&self) -> Vec<(&'static str, ScopeStats)> {
        let mut spans: Vec<_> = self.lock().iter().map(|(name, stats)| (*name, *stats)).collect();
        spans.sort_by(|a, b| b.1.bytes_allocated.cmp(&a.1.bytes_allocated).then(a.0.cmp(b.0)));
        spans
    }

    /// Publishes the totals through the `metrics` crate's recorder: counters (absolute)
    /// `alloctrack_span_allocations` and `alloctrack_span_allocated_bytes`, labelled
    /// `span = <name>`.
    #[cfg(feature = "metrics")]
    pub fn publish(&self) {
        for (span, stats) in self.snapshot() {
            metrics::counter!("alloctrack_span_allocations", "span" => span).absolute(stats.allocations);
            metrics::counter!("alloctrack_span_allocated_bytes", "span" => span).absolute(stats.bytes_allocated);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, ScopeStats>> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.totals) as usize
    }

    fn charge(&self, name: &'static str, counts: Counts) {
        self.lock().entry(name).or_default().add(counts.into());
    }

}

impl<S> Layer<S> for SpanAllocations
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(now)) = (ctx.span(id), counts_if_measured()) else { return };
        let key = self.key();
        let enclosing = STACK.with(|stack| {
            let stack = stack.borrow();
            stack.iter().rev().find(|f| f.layer == key).map(|f| (f.name, now.since(f.start)))
        });
        if let Some((name, spent)) = enclosing {
            self.charge(name, spent);
        }
        STACK.with(|stack| {
            stack.borrow_mut().push(Frame { layer: key, id: id.clone(), name: span.name(), start: now });
        });
        // Start after the bookkeeping above, which is charged to nobody.
        if let Some(start) = counts_if_measured() {
            STACK.with(|stack| {
                if let Some(frame) = stack.borrow_mut().last_mut() {
                    frame.start = start;
                }
            });
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let Some(now) = counts_if_measured() else { return };
        let key = self.key();
        let frame = STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            let at = stack.iter().rposition(|f| f.layer == key && f.id == *id)?;
            Some(stack.remove(at))
        });
        let Some(frame) = frame else { return };
        self.charge(frame.name, now.since(frame.start));
        // The enclosing span resumes now.
        if let Some(resume) = counts_if_measured() {
            STACK.with(|stack| {
                if let Some(frame) = stack.borrow_mut().iter_mut().rev().find(|f| f.layer == key) {
                    frame.start = resume;
                }
            });
        }
    }
}
