//! A service's memory, watched the way a Python service tunes its garbage collector: what each
//! request allocates, what the process holds and its peak, and a pressure callback that sheds a
//! cache before the heap reaches its budget.
//!
//! `cargo run --release --example alloctrack`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloctrack::{Level, PressureMonitor, Source, Tracking};

#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

/// A request handler that builds a response and remembers it in an unbounded cache (the leak a
/// pressure callback has to contain).
fn handle(id: u64, cache: &Mutex<HashMap<u64, String>>) -> usize {
    let body: String = (0..50).map(|i| format!("{{\"item\":{},\"request\":{id}}},", i * id)).collect();
    let len = body.len();
    cache.lock().unwrap().insert(id, body);
    len
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Arc::new(Mutex::new(HashMap::new()));
    let baseline = alloctrack::snapshot().live_bytes;

    // Allocations per request, on this thread, with no global lock on the allocation path.
    let (len, stats) = alloctrack::measure(|| handle(0, &cache));
    println!("one request: {len} bytes of response, {stats}");

    // A 16 MiB heap budget over the heap this program started with: the callback clears the
    // cache at the warning level. `check` samples now; `spawn` would sample on a thread.
    let monitor = PressureMonitor::builder(baseline + (16 << 20))
        .warning(0.75)
        .critical(0.90)
        .source(Source::LiveBytes)
        .build()?;
    let shed = Arc::new(Mutex::new(0u32));
    {
        let (cache, shed) = (Arc::clone(&cache), Arc::clone(&shed));
        monitor.on_pressure(move |event| {
            if event.level >= Level::Warning {
                cache.lock().unwrap().clear();
                *shed.lock().unwrap() += 1;
            }
        });
    }
    for id in 1..=60_000 {
        handle(id, &cache);
        if id % 1_000 == 0 {
            monitor.check();
        }
    }

    let snapshot = alloctrack::snapshot();
    println!("process: {snapshot}");
    println!(
        "the cache was shed {} times; it holds {} responses",
        shed.lock().unwrap(),
        cache.lock().unwrap().len()
    );
    assert!(*shed.lock().unwrap() > 0, "60,000 responses of ~1.5 KiB exceed 12 MiB: the callback ran");
    assert!(snapshot.peak_live_bytes < baseline + (16 << 20), "the heap stayed within its budget");
    Ok(())
}
