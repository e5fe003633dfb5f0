//! Times the caches of the throughput benchmarks against each other in one process, their passes
//! interleaved: each round runs one pass of the 1,048,576 Zipf draws of `cache-zipf-read` (or,
//! with `--mixed`, the operations of `cache-zipf-mixed`) over every cache in turn, one thread,
//! and the figure kept per cache is the median over the rounds of its pass's time over the
//! reference's pass in the same round.
//!
//! On a shared machine a criterion run of one id and the next can see different neighbours:
//! ratios of ids timed seconds apart move by 10-40% between runs of the same binary. Passes of a
//! few tens of milliseconds, alternated, see the same machine, so their ratio moves far less. A
//! diagnostic beside `cargo bench -p benches --bench cache`, whose results BENCHMARKS.md reports.
//!
//! Usage: cache-interleaved [--mixed] [--rounds N] <capacity in entries> <implementation>...
//! (the reference is `quick_cache` if named, else the last implementation; 15 rounds by default)

use std::time::Instant;

use benches::cache_peers::{draws, filled, get_all, implementation, mixed_all};

const USAGE: &str =
    "usage: cache-interleaved [--mixed] [--rounds N] <capacity in entries> <implementation>...";

fn fail(message: &str) -> ! {
    eprintln!("{message}\n{USAGE}");
    std::process::exit(2);
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mixed = args.iter().any(|a| a == "--mixed");
    args.retain(|a| a != "--mixed");
    let mut rounds = 15;
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = match args.get(i + 1).map(|n| n.parse::<usize>()) {
            Some(Ok(n)) if n > 0 => n,
            _ => fail("--rounds takes a positive number"),
        };
        args.drain(i..=i + 1);
    }
    let Some((capacity, names)) = args.split_first() else { fail("no capacity given") };
    let capacity = match capacity.parse::<u64>() {
        Ok(c) if c > 0 => c,
        _ => fail(&format!("the capacity must be a positive number of entries, not {capacity:?}")),
    };
    if names.is_empty() {
        fail("no implementation given");
    }
    let makes: Vec<_> =
        names.iter().map(|name| implementation(name).unwrap_or_else(|message| fail(&message))).collect();
    let reference = names.iter().position(|n| n == "quick_cache").unwrap_or(names.len() - 1);
    let keys = draws(0);
    let pass = if mixed { mixed_all } else { get_all };
    let caches: Vec<_> = makes
        .into_iter()
        .map(|make| {
            let cache = filled(make, capacity);
            pass(&*cache, &keys); // warming, untimed
            cache
        })
        .collect();
    let mut times = vec![Vec::with_capacity(rounds); caches.len()];
    for _ in 0..rounds {
        for (cache, times) in caches.iter().zip(&mut times) {
            let start = Instant::now();
            pass(&**cache, &keys);
            times.push(start.elapsed().as_nanos() as f64 / keys.len() as f64);
        }
    }
    let what = if mixed { "cache-zipf-mixed operations" } else { "cache-zipf-read gets" };
    println!("capacity {capacity} entries, {rounds} rounds of {} {what}, one thread:\n", keys.len());
    println!(
        "| implementation | median ns per operation | median time over {}'s in the same round |",
        names[reference]
    );
    println!("|---|---|---|");
    for (name, own) in names.iter().zip(&times) {
        let ratios = own.iter().zip(&times[reference]).map(|(t, r)| t / r).collect();
        println!("| {name} | {:.1} | {:.3} |", median(own.clone()), median(ratios));
    }
}
