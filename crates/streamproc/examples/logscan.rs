//! An access log bigger than the memory it is given: counted by status code in parallel with
//! at most `workers + buffer` chunks in memory, then filtered to its 5xx lines, written out in
//! the log's own order.
//!
//! `cargo run --release --example logscan`

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;

use streamproc::{Config, Processor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A 20 MB log: "<request id> <status> <path>" per line.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("access.log");
    let mut log = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let statuses = [200, 200, 200, 200, 200, 200, 304, 404, 500, 503];
    let mut written = 0u64;
    for id in 0..500_000u64 {
        let status = statuses[(id.wrapping_mul(2654435761) % 10) as usize];
        writeln!(log, "{id:08} {status} /api/items/{}", id % 977)?;
        written += 1;
    }
    log.flush()?;
    drop(log);

    // 256 KiB chunks cut at line ends, 4 workers, 8 more chunks buffered: 3 MiB at most in flight.
    let processor = Processor::new(Config::new().chunk_size(256 << 10).workers(4).buffer(8).lines())?;
    let counts = processor.fold(
        &path,
        |chunk| {
            let mut counts = BTreeMap::new();
            for line in chunk.data().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let status = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
                *counts.entry(String::from_utf8_lossy(status).into_owned()).or_insert(0u64) += 1;
            }
            Ok::<_, Infallible>(counts)
        },
        BTreeMap::new(),
        |mut total, counts| {
            for (status, n) in counts {
                *total.entry(status).or_insert(0) += n;
            }
            total
        },
    )?;
    for (status, n) in &counts {
        println!("{status}: {n}");
    }
    assert_eq!(counts.values().sum::<u64>(), written, "every line counted once");

    // The server errors, in the order they were logged (chunks finish out of order; their
    // results are written in order).
    let mut errors = Vec::new();
    let bytes = processor.write_ordered(
        &path,
        |chunk| {
            let mut out = Vec::new();
            for line in chunk.data().split_inclusive(|&b| b == b'\n') {
                if line.get(9) == Some(&b'5') {
                    out.extend_from_slice(line);
                }
            }
            Ok::<_, Infallible>(out)
        },
        &mut errors,
    )?;
    let ids: Vec<&[u8]> = errors.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| &l[..8]).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in log order");
    println!("{} server errors ({bytes} bytes), first {}", ids.len(), String::from_utf8_lossy(ids[0]));
    Ok(())
}
