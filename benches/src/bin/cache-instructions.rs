//! Runs one pass of `cache-zipf-read` gets (1,048,576 Zipf draws, one thread) over one cache of
//! the throughput benchmarks, after a pass that warms it, so that callgrind can count the
//! instructions of the measured pass alone: `scripts/bench-cache-instructions.py` runs it under
//! `valgrind --tool=callgrind --toggle-collect=cache_instructions::measured` for each cache.
//! With `--inserts`, the measured pass is instead the inserts of `cache-zipf-mixed` (every tenth
//! draw), after the same warming pass of gets.
//!
//! Usage: cache-instructions <implementation> <capacity in entries> [--inserts]

use benches::cache_peers::{Bench, draws, filled, get_all, implementation, insert_some};

/// The pass whose instructions are counted: gets, or inserts if `inserts`. Returns the hits, or
/// the inserts made.
#[inline(never)]
fn measured(cache: &dyn Bench, keys: &[u64], inserts: bool) -> usize {
    if inserts { insert_some(cache, keys) } else { get_all(cache, keys) }
}

fn main() {
    const USAGE: &str = "usage: cache-instructions <implementation> <capacity in entries> [--inserts]";
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let inserts = args.iter().any(|a| a == "--inserts");
    args.retain(|a| a != "--inserts");
    let (name, capacity) = match args.as_slice() {
        [name, capacity] => match capacity.parse::<u64>() {
            Ok(capacity) if capacity > 0 => (name, capacity),
            _ => {
                eprintln!("the capacity must be a positive number of entries, not {capacity:?}\n{USAGE}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let make = implementation(name).unwrap_or_else(|message| {
        eprintln!("{message}");
        std::process::exit(2);
    });
    let cache = filled(make, capacity);
    let keys = draws(0);
    get_all(&*cache, &keys);
    let done = measured(&*cache, &keys, inserts);
    if inserts {
        println!("{name} {capacity}: {done} inserts");
    } else {
        println!("{name} {capacity}: {done} hits in {} gets", keys.len());
    }
}
