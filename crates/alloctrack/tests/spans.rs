//! Allocations per tracing span (feature `tracing`).

mod support;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::Poll;

use alloctrack::{SpanAllocations, Tracking};
use support::{YieldOnce, poll_once};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

fn stats(layer: &SpanAllocations, name: &str) -> alloctrack::ScopeStats {
    layer.snapshot().into_iter().find(|(span, _)| *span == name).map(|(_, s)| s).unwrap_or_default()
}

#[test]
fn each_allocation_is_charged_to_the_innermost_span_once() {
    let layer = SpanAllocations::new();
    let subscriber = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(subscriber, || {
        // The spans are made up front: creating one allocates in the registry.
        let (request, parse, render) =
            (tracing::info_span!("request"), tracing::info_span!("parse"), tracing::info_span!("render"));
        let _request = request.enter();
        black_box(vec![0u8; 1000]);
        for _ in 0..3 {
            let _parse = parse.enter();
            black_box(vec![0u8; 100]);
        }
        {
            let _render = render.enter();
            black_box(vec![0u8; 50]);
            black_box(vec![0u8; 50]);
        }
        black_box(vec![0u8; 7]);
    });
    let parse = stats(&layer, "parse");
    assert_eq!((parse.allocations, parse.bytes_allocated), (3, 300), "{parse}");
    let render = stats(&layer, "render");
    assert_eq!((render.allocations, render.bytes_allocated), (2, 100), "{render}");
    let request = stats(&layer, "request");
    assert_eq!(
        (request.allocations, request.bytes_allocated),
        (2, 1007),
        "its own, not its children's: {request}"
    );
    assert_eq!(layer.snapshot()[0].0, "request", "largest first");
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

fn poll(task: &mut Task, dispatch: &tracing::Dispatch) -> Poll<()> {
    tracing::dispatcher::with_default(dispatch, || poll_once(task.as_mut()))
}

#[test]
fn an_instrumented_future_is_followed_across_threads() {
    let layer = SpanAllocations::new();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    let span = tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("handler"));
    let mut task: Task = Box::pin(
        async {
            black_box(vec![0u8; 64]);
            YieldOnce::new().await;
            black_box(vec![0u8; 128]);
        }
        .instrument(span),
    );
    assert!(poll(&mut task, &dispatch).is_pending());
    let other = dispatch.clone();
    let done = std::thread::spawn(move || poll(&mut task, &other)).join().unwrap();
    assert!(done.is_ready());
    let handler = stats(&layer, "handler");
    assert_eq!((handler.allocations, handler.bytes_allocated), (2, 192), "{handler}");
}
