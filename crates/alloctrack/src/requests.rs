//! Allocations per request and route (feature `tower`): [`RequestAllocations`], a tower layer
//! for HTTP services (axum, hyper, tonic).
//!
//! # Implementation details
//!
//! A request is measured as a future is by [`track`](crate::track): the thread's counters are
//! read around the service's `call` (the synchronous part of handling) and around each poll of
//! the response future, on whichever thread polls it, and the differences are added up. When
//! the response future completes, the request's total is added to its route's, under a mutex
//! taken once per request. The response body is not covered: it is polled by the server after
//! the response is handed over.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::registry::Counts;
use crate::scope::ScopeStats;
use crate::thread::counts_if_measured;

type RouteOf = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// What the requests of one route allocated, from [`RequestAllocations::snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteAllocations {
    /// Requests that completed.
    pub requests: u64,
    /// What they allocated, together.
    pub allocated: ScopeStats,
}

impl RouteAllocations {
    /// Bytes allocated per request, on average.
    pub fn bytes_per_request(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.allocated.bytes_allocated as f64 / self.requests as f64 }
    }
}

/// A tower [`Layer`](tower_layer::Layer) that records what each HTTP request allocates while
/// it is handled, per route.
///
/// The route of a request is its path by default. Paths that carry identifiers (`/users/42`)
/// make one route per identifier: give the router's route instead with
/// [`route_with`](Self::route_with) (with axum, the `MatchedPath` extension).
///
/// ```
/// let allocations = alloctrack::RequestAllocations::new()
///     .route_with(|head| head.uri.path().split('/').take(2).collect::<Vec<_>>().join("/"));
/// // `ServiceBuilder::new().layer(allocations.clone())`, then on a report tick:
/// for (route, stats) in allocations.snapshot() {
///     println!("{route}: {} requests, {:.0} B each", stats.requests, stats.bytes_per_request());
/// }
/// ```
///
/// Requests handled where allocations cannot be measured (no [`Tracking`](crate::Tracking)
/// global allocator, a thread beyond [`MAX_THREADS`](crate::MAX_THREADS)) are not recorded.
#[derive(Clone)]
pub struct RequestAllocations {
    routes: Arc<Mutex<HashMap<String, RouteAllocations>>>,
    route_of: RouteOf,
}

impl fmt::Debug for RequestAllocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestAllocations").field("routes", &self.lock().len()).finish_non_exhaustive()
    }
}

impl Default for RequestAllocations {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestAllocations {
    /// A layer recording per path.
    pub fn new() -> Self {
        Self { routes: Arc::default(), route_of: Arc::new(|request| request.uri.path().to_string()) }
    }

    /// Names each request's route with `route_of` (given the request's head).
    pub fn route_with(mut self, route_of: impl Fn(&http::request::Parts) -> String + Send + Sync + 'static) -> Self {
        self.route_of = Arc::new(route_of);
        self
    }

    /// The routes and what their requests allocated, the most bytes first.
    pub fn snapshot(&self) -> Vec<(String, RouteAllocations)> {
        let mut routes: Vec<_> = self.lock().iter().map(|(route, stats)| (route.clone(), *stats)).collect();
        routes.sort_by(|a, b| {
            b.1.allocated.bytes_allocated.cmp(&a.1.allocated.bytes_allocated).then_with(|| a.0.cmp(&b.0))
        });
        routes
    }

    /// Publishes the totals through the `metrics` crate's recorder: counters (absolute)
    /// `alloctrack_route_requests`, `alloctrack_route_allocations` and
    /// `alloctrack_route_allocated_bytes`, labelled `route = <route>`.
    #[cfg(feature = "metrics")]
    pub fn publish(&self) {
        for (route, stats) in self.snapshot() {
            metrics::counter!("alloctrack_route_requests", "route" => route.clone()).absolute(stats.requests);
            metrics::counter!("alloctrack_route_allocations", "route" => route.clone())
                .absolute(stats.allocated.allocations);
            metrics::counter!("alloctrack_route_allocated_bytes", "route" => route)
                .absolute(stats.allocated.bytes_allocated);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RouteAllocations>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S> tower_layer::Layer<S> for RequestAllocations {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> TrackRequests<S> {
        TrackRequests { inner, layer: self.clone() }
    }
}

/// The service [`RequestAllocations`] wraps around another.
#[derive(Clone, Debug)]
pub struct TrackRequests<S> {
    inner: S,
    layer: RequestAllocations,
}

impl<S, B> tower_service::Service<http::Request<B>> for TrackRequests<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let route = (self.layer.route_of)(&parts);
        let request = http::Request::from_parts(parts, body);
        let before = counts_if_measured();
        let future = self.inner.call(request);
        let allocated = match (before, counts_if_measured()) {
            (Some(before), Some(after)) => Some(after.since(before)),
            _ => None,
        };
        TrackedResponse { future, route: Some(route), allocated, layer: self.layer.clone() }
    }
}

/// The response future of [`TrackRequests`].
#[pin_project]
pub struct TrackedResponse<F> {
    #[pin]
    future: F,
    route: Option<String>,
    /// `None` once a poll ran where it could not be measured: the request is not recorded.
    allocated: Option<Counts>,
    layer: RequestAllocations,
}

impl<F> fmt::Debug for TrackedResponse<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedResponse").field("route", &self.route).finish_non_exhaustive()
    }
}

impl<F: Future> Future for TrackedResponse<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let before = counts_if_measured();
        let polled = this.future.poll(cx);
        *this.allocated = match (*this.allocated, before, counts_if_measured()) {
            (Some(total), Some(before), Some(after)) => Some(total.plus(after.since(before))),
            _ => None,
        };
        if polled.is_ready() {
            if let (Some(route), Some(allocated)) = (this.route.take(), *this.allocated) {
                let mut routes = this.layer.lock();
                let stats = routes.entry(route).or_default();
                stats.requests += 1;
                stats.allocated.add(allocated.into());
            }
        }
        polled
    }
}
