//! The tour: a small API service, simulated for 40 seconds, with every crate of the family doing
//! its job, and a report of what each measured.
//!
//! ```text
//! cargo run --release --example tour [-- --seconds 40] [--database-url postgres://...]
//! ```
//!
//! - Request handlers take a parser from an `objpool` pool to read the request line.
//! - They look the item up in a `bounded-cache` (byte budget, 5 s time to live); misses are loaded
//!   once per key from a backend through a `connpool` pool. The backend is an HTTP server this
//!   program starts on loopback, with 2-6 ms of latency and 0.5% of requests failing by dropping the
//!   connection (the handler retries once on a fresh connection), or a real PostgreSQL with
//!   `--database-url`.
//! - A background job processes a generated 100 MB log file with `streamproc` every few seconds.
//! - `alloctrack` is the global allocator, with sampled allocation sites; its pressure monitor
//!   shrinks the cache when live heap memory nears the limit, and its tower layer records what
//!   each of the backend's requests allocates.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bounded_cache::Cache;
use bytes::Bytes;
use connpool::http::{HttpClient, HttpManager};
use connpool::postgres::PgManager;
use connpool::{Config, Pool};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};

alloctrack::global_allocator!(sampling);

const HANDLERS: usize = 64;
const ITEMS: u64 = 50_000;
const ITEM_BYTES: usize = 1024;
const CACHE_BUDGET: u64 = 24 << 20;
const MEMORY_LIMIT: u64 = 40 << 20;

/// Reads a request line; pooled and reused, its buffers cleared on return.
#[derive(Default)]
struct Parser {
    parts: Vec<(usize, usize)>,
    path: String,
}

impl Parser {
    /// The item id of `GET /items/<id> HTTP/1.1`.
    fn item_id(&mut self, line: &str) -> Option<u64> {
        let mut start = 0;
        for (i, b) in line.bytes().enumerate().chain([(line.len(), b' ')]) {
            if b == b' ' {
                self.parts.push((start, i));
                start = i + 1;
            }
        }
        let &(s, e) = self.parts.get(1)?;
        self.path.push_str(&line[s..e]);
        self.path.strip_prefix("/items/")?.parse().ok()
    }
}

/// Where misses are loaded from.
enum Backend {
    Http(HttpClient),
    Postgres(Pool<PgManager>),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Backend {
    async fn fetch(&self, id: u64) -> Result<Bytes, BoxError> {
        match self {
            Backend::Http(client) => {
                // The client fills in the Host header and holds the connection until the body is read.
                let response =
                    client.send(Request::get(format!("/items/{id}")).body(Empty::<Bytes>::new())?).await?;
                let body = response.into_body().collect().await?.to_bytes();
                // The body may be a slice of a larger read buffer, which the cache would keep alive
                // while counting only the slice: cache a copy of exactly its bytes.
                Ok(Bytes::copy_from_slice(&body))
            }
            Backend::Postgres(pool) => {
                let conn = pool.get().await?;
                let row = conn
                    .query_one(
                        "SELECT repeat(md5($1::text), $2::int)",
                        &[&id.to_string(), &((ITEM_BYTES / 32) as i32)],
                    )
                    .await?;
                Ok(Bytes::from(row.get::<_, String>(0)))
            }
        }
    }

    fn status(&self) -> (connpool::Status, connpool::Metrics) {
        match self {
            Backend::Http(c) => (c.pool().status(), c.pool().metrics()),
            Backend::Postgres(p) => (p.status(), p.metrics()),
        }
    }
}

/// The simulated backend's handler, a tower service.
#[derive(Clone)]
struct ItemService;

impl tower_service::Service<Request<hyper::body::Incoming>> for ItemService {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_micros(2000 + rand::random::<u64>() % 4000)).await;
            if rand::random::<u16>() % 200 == 0 {
                // Drop the connection without an answer.
                return Err(std::io::Error::other("injected failure"));
            }
            let id = request.uri().path().trim_start_matches("/items/").to_string();
            let body: String = id.chars().cycle().take(ITEM_BYTES).collect();
            Ok(Response::new(Full::new(Bytes::from(body))))
        })
    }
}

/// The simulated backend: an HTTP server on loopback with latency and occasional failures,
/// its requests' allocations recorded per route by `alloctrack`'s tower layer.
async fn start_backend(allocations: alloctrack::RequestAllocations) -> std::io::Result<SocketAddr> {
    use tower_layer::Layer;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = allocations.layer(ItemService);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A log file for the background job: about 100 MB of request lines, 1% of them errors.
fn write_log(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..1_200_000u64 {
        let level = if rand::Rng::random_range(&mut rng, 0..100) == 0 { "ERROR" } else { "INFO" };
        writeln!(
            out,
            "2026-11-23T10:{:02}:{:02}Z {level} handler=items id={} latency_ms={} status=200 agent=tour",
            (i / 60) % 60,
            i % 60,
            rand::Rng::random_range(&mut rng, 0..ITEMS),
            rand::Rng::random_range(&mut rng, 1..50)
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    failed: AtomicU64,
    recovered: AtomicU64,
    handler_allocs: AtomicU64,
    handler_samples: AtomicU64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut seconds = 40u64;
    let mut database_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args.next().and_then(|s| s.parse().ok()).ok_or("--seconds takes a number")?
            }
            "--database-url" => database_url = Some(args.next().ok_or("--database-url takes a URL")?),
            other => {
                return Err(
                    format!("unknown argument {other:?} (try --seconds N, --database-url URL)").into()
                );
            }
        }
    }
    let run_for = Duration::from_secs(seconds);
    println!("tour: a simulated API service for {seconds} s ({HANDLERS} concurrent handlers)\n");

    // connpool: the backend's connections.
    let mut pool_config = Config::api();
    pool_config.name = Some("backend".into());
    pool_config.min_size = 4;
    pool_config.max_size = 32;
    // alloctrack: what each backend request allocates, per route (ids folded into one route).
    let route_allocations = alloctrack::RequestAllocations::new().route_with(|head| {
        if head.uri.path().starts_with("/items/") {
            "/items/{id}".to_string()
        } else {
            head.uri.path().to_string()
        }
    });
    let backend = Arc::new(match &database_url {
        Some(url) => {
            // Never print a secret: the URL's password (if any) reads `***`.
            println!("backend: PostgreSQL at {}", connpool::redact_url(url));
            Backend::Postgres(Pool::builder(PgManager::new(url)?).config(pool_config).build().await?)
        }
        None => {
            let addr = start_backend(route_allocations.clone()).await?;
            println!("backend: HTTP on {addr} (2-6 ms per request, 0.5% of requests drop the connection)");
            Backend::Http(HttpClient::new(
                Pool::builder(HttpManager::new(addr.to_string())).config(pool_config).build().await?,
            ))
        }
    });

    // objpool: request parsers, with an exact peak to size the pool by.
    let parsers = objpool::Pool::builder()
        .max_size(HANDLERS)
        .pre_create(HANDLERS)
        .exact_peak(true)
        .reset(|p: &mut Parser| {
            p.parts.clear();
            p.path.clear();
        })
        .build(Parser::default)?;

    // bounded-cache: items, by a byte budget, for 5 s each.
    let cache: Cache<u64, Bytes> =
        Cache::builder(CACHE_BUDGET).time_to_live(Duration::from_secs(5)).build()?;

    // alloctrack: shrink the cache when live heap memory nears the limit.
    let shrinks = Arc::new(AtomicU64::new(0));
    let monitor = alloctrack::PressureMonitor::builder(MEMORY_LIMIT).warning(0.75).critical(0.9).build()?;
    {
        let (cache, shrinks) = (cache.clone(), Arc::clone(&shrinks));
        monitor.on_pressure(move |event| {
            if event.level > alloctrack::Level::Normal {
                let budget = (cache.budget() / 4 * 3).max(4 << 20);
                cache.set_budget(budget);
                shrinks.fetch_add(1, Ordering::Relaxed);
                println!(
                    "  memory pressure ({:?}: {:.1} MiB of {:.0} MiB live): cache budget cut to {:.1} MiB",
                    event.level,
                    mib(event.used),
                    mib(event.limit),
                    mib(budget)
                );
            }
        });
    }
    let _monitor_thread = monitor.spawn(Duration::from_millis(100));

    // streamproc: a background job over a generated log file.
    let log_path = std::env::temp_dir().join(format!("tour-{}.log", std::process::id()));
    let log_bytes = tokio::task::spawn_blocking({
        let path = log_path.clone();
        move || write_log(&path)
    })
    .await??;
    println!("log job: {:.0} MB log file, processed with streamproc every 5 s\n", log_bytes as f64 / 1e6);
    let done = Arc::new(AtomicBool::new(false));
    let job = tokio::task::spawn_blocking({
        let (path, done) = (log_path.clone(), Arc::clone(&done));
        move || -> Result<(u64, u64, Duration), String> {
            let processor = streamproc::Processor::new(
                streamproc::Config::new().chunk_size(1 << 20).workers(2).buffer(4).lines(),
            )
            .map_err(|e| e.to_string())?;
            let (mut runs, mut errors, mut busy) = (0u64, 0u64, Duration::ZERO);
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                errors = processor
                    .fold(
                        &path,
                        |chunk| {
                            Ok::<_, Infallible>(
                                memchr::memmem::find_iter(chunk.data(), b" ERROR ").count() as u64
                            )
                        },
                        0,
                        |a, n| a + n,
                    )
                    .map_err(|e| e.to_string())?;
                busy += started.elapsed();
                runs += 1;
                for _ in 0..50 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok((runs, errors, busy))
        }
    });

    // The handlers.
    let counters = Arc::new(Counters::default());
    let start_allocs = alloctrack::snapshot().allocations;
    let started = Instant::now();
    let deadline = started + run_for;
    let handlers: Vec<_> = (0..HANDLERS)
        .map(|h| {
            let (parsers, cache, backend, counters) =
                (parsers.clone(), cache.clone(), Arc::clone(&backend), Arc::clone(&counters));
            tokio::spawn(async move {
                let mut histogram = hdrhistogram::Histogram::<u64>::new(2).expect("valid precision");
                let zipf = Zipf::new(ITEMS as f64, 0.9).expect("valid Zipf");
                let mut rng = rand::rngs::StdRng::seed_from_u64(h as u64);
                let mut line = String::with_capacity(64);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    line.clear();
                    use std::fmt::Write;
                    let _ = write!(line, "GET /items/{} HTTP/1.1", zipf.sample(&mut rng) as u64);
                    // The synchronous part of the handler (parse, cache lookup), measured for
                    // allocations on every 16th request.
                    let sample = counters.requests.load(Ordering::Relaxed) % 16 == 0;
                    let lookup = || {
                        let mut parser = parsers.try_get().expect("one parser per handler");
                        let id = parser.item_id(&line).expect("a well-formed request line");
                        (id, cache.get(&id))
                    };
                    let (id, cached) = if sample {
                        let ((id, cached), stats) = alloctrack::measure(lookup);
                        counters.handler_allocs.fetch_add(stats.allocations, Ordering::Relaxed);
                        counters.handler_samples.fetch_add(1, Ordering::Relaxed);
                        (id, cached)
                    } else {
                        lookup()
                    };
                    let body = match cached {
                        Some(body) => Ok(body),
                        None => {
                            let backend = &backend;
                            let counters = &counters;
                            cache
                                .get_or_try_insert_with(id, async move {
                                    match backend.fetch(id).await {
                                        Ok(body) => Ok(body),
                                        // One retry, on a fresh connection (the pool dropped the broken one).
                                        Err(_) => {
                                            let body = backend.fetch(id).await?;
                                            counters.recovered.fetch_add(1, Ordering::Relaxed);
                                            Ok::<_, BoxError>(body)
                                        }
                                    }
                                })
                                .await
                        }
                    };
                    match body {
                        Ok(body) => debug_assert_eq!(body.len(), ITEM_BYTES),
                        Err(_) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    histogram.record(began.elapsed().as_nanos() as u64).expect("in range");
                }
                histogram
            })
        })
        .collect();

    // Progress, every 2 s; pool utilisation sampled every 100 ms.
    let (mut util_sum, mut util_samples) = (0.0, 0u64);
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, _) = backend.status();
        if status.size > 0 {
            util_sum += status.in_use as f64 / status.size as f64;
            util_samples += 1;
        }
        if last.0.elapsed() >= Duration::from_secs(2) {
            let n = counters.requests.load(Ordering::Relaxed);
            let s = cache.stats();
            println!(
                "  {:>4.0} s  {:>7.0} req/s  cache hit rate {:>5.1}%  cache {:>5.1} MiB  pool {}/{} in use  live heap {:>5.1} MiB",
                started.elapsed().as_secs_f64(),
                (n - last.1) as f64 / last.0.elapsed().as_secs_f64(),
                s.hit_rate() * 100.0,
                mib(s.weighed_size),
                status.in_use,
                status.size,
                mib(alloctrack::snapshot().live_bytes)
            );
            last = (Instant::now(), n);
        }
    }
    let mut histogram = hdrhistogram::Histogram::<u64>::new(2)?;
    for h in handlers {
        histogram.add(h.await?)?;
    }
    let elapsed = started.elapsed();
    let total_allocs = alloctrack::snapshot().allocations - start_allocs;
    done.store(true, Ordering::Relaxed);
    let (job_runs, job_errors, job_busy) = job.await??;
    let _ = std::fs::remove_file(&log_path);

    // The report: every figure from this run's own measurements.
    let requests = counters.requests.load(Ordering::Relaxed);
    let cache_stats = cache.stats();
    let (_, pool_metrics) = backend.status();
    let memory = alloctrack::snapshot();
    let ms = |ns: u64| ns as f64 / 1e6;
    println!("\n== report ({:.1} s) ==", elapsed.as_secs_f64());
    println!(
        "requests      {requests} ({:.0} per second), {} failed",
        requests as f64 / elapsed.as_secs_f64(),
        counters.failed.load(Ordering::Relaxed)
    );
    println!(
        "latency       p50 {:.3} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.95)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    );
    println!(
        "cache         hit rate {:.1}%, {} entries in {:.1} of {:.1} MiB; evicted {} for size, {} expired; {} loads, {} coalesced",
        cache_stats.hit_rate() * 100.0,
        cache_stats.entries,
        mib(cache_stats.weighed_size),
        mib(cache_stats.budget),
        cache_stats.evicted_size,
        cache_stats.evicted_expired,
        cache_stats.loads,
        cache_stats.coalesced
    );
    println!(
        "pool          {:.0}% of open connections in use on average; {} checkouts, {} waited (p50 {:?}, p99 {:?}, max {:?})",
        if util_samples > 0 { util_sum / util_samples as f64 * 100.0 } else { 0.0 },
        pool_metrics.checkouts,
        pool_metrics.waits,
        pool_metrics.wait_p50,
        pool_metrics.wait_p99,
        pool_metrics.wait_max
    );
    println!(
        "connections   {} opened, {} closed broken, {} connect failures; {} failed fetches recovered by a retry",
        pool_metrics.created,
        pool_metrics.closed.broken,
        pool_metrics.connect_failures,
        counters.recovered.load(Ordering::Relaxed)
    );
    println!(
        "allocations   {:.2} per request in the handler's parse and lookup (alloctrack::measure on {} requests); {:.1} per request for the whole process (backend server and log job included)",
        counters.handler_allocs.load(Ordering::Relaxed) as f64
            / counters.handler_samples.load(Ordering::Relaxed).max(1) as f64,
        counters.handler_samples.load(Ordering::Relaxed),
        total_allocs as f64 / requests.max(1) as f64
    );
    println!(
        "memory        peak live heap {:.1} MiB (limit {:.0} MiB; {} pressure events shrank the cache), RSS now {:.1} MiB",
        mib(memory.peak_live_bytes),
        mib(MEMORY_LIMIT),
        shrinks.load(Ordering::Relaxed),
        mib(memory.rss_bytes.unwrap_or(0))
    );
    println!(
        "log job       {job_runs} runs over {:.0} MB, {job_errors} ERROR lines each, {:.0} MB/s with 2 workers",
        log_bytes as f64 / 1e6,
        log_bytes as f64 * job_runs as f64 / job_busy.as_secs_f64().max(1e-9) / 1e6
    );
    for (route, stats) in route_allocations.snapshot() {
        println!(
            "route         {route}: {} requests, {:.1} allocations and {:.0} B each (alloctrack's tower layer on the backend)",
            stats.requests,
            stats.allocated.allocations as f64 / stats.requests.max(1) as f64,
            stats.bytes_per_request()
        );
    }
    let profile = alloctrack::sampling::profile();
    println!(
        "heap sites    {} sampled allocation sites ({} samples, one per {} KiB on average); the top three by bytes:",
        profile.sites().len(),
        profile.stats().samples,
        profile.interval() / 1024
    );
    for site in profile.sites().iter().take(3) {
        println!("  {site}");
    }
    println!("objpool       {}", parsers.stats());
    Ok(())
}
