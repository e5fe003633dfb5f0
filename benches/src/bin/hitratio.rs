//! Replays a cache trace through each implementation at given capacities and prints hit ratios.
//!
//! ```text
//! cargo run --release -p benches --bin hitratio -- <trace file> <capacity>... [--format arc|lirs|sized] [--only <name>]... [--shards <n>]
//! ```
//!
//! `--only` replays only the implementations so named (repeatable), for a quicker run.
//! `--shards` builds our caches with that many shards (a power of two) instead of their default.
//!
//! Formats (told by the file name unless `--format` is given): `arc` (`*.lis[.zst]`: lines
//! `start nblocks ignore req_no`, touching keys `start..start+nblocks`), `lirs` (`*.trace[.gz]`: one key
//! a line; a line holding only `*` marks a phase boundary and is skipped) and `sized` (`*.trace.xz` or
//! a name containing `size`: lines `time key bytes`). For `arc` and `lirs` a capacity is a number of
//! entries; for `sized` it is a byte budget, or a percentage of the bytes of all distinct objects when
//! written like `5%`. Compressed files (`.zst`, `.gz`, `.xz`) are read as they are.
//!
//! Every implementation sees the same requests: look the key up, insert it on a miss. `lru` (the `lru`
//! crate, one unsharded list) is exact LRU. The weighted rows give each entry its object size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use bounded_cache::{Cache, Policy};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Arc,
    Lirs,
    Sized,
}

/// One request: a key and its size in bytes (1 for unsized traces).
type Request = (u64, u32);

fn open(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".zst") {
        Box::new(zstd::Decoder::new(file)?)
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn guess_format(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    if name.contains(".lis") {
        Some(Format::Arc)
    } else if name.contains("size") || name.ends_with(".trace.xz") {
        Some(Format::Sized)
    } else if name.contains(".trace") {
        Some(Format::Lirs)
    } else {
        None
    }
}

fn read_trace(path: &Path, format: Format) -> Result<Vec<Request>, String> {
    let reader = BufReader::new(open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?);
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}: line {}: {e}", path.display(), n + 1))?;
        let mut fields = line.split_whitespace();
        let mut num = |what: &str| -> Result<u64, String> {
            fields
                .next()
                .ok_or_else(|| format!("{}: line {}: missing {what}", path.display(), n + 1))?
                .parse::<u64>()
                .map_err(|e| format!("{}: line {}: bad {what}: {e}", path.display(), n + 1))
        };
        // LIRS traces mark a boundary between phases with a line holding only `*`: not a request.
        if line.trim().is_empty() || (format == Format::Lirs && line.trim() == "*") {
            continue;
        }
        match format {
            Format::Arc => {
                let start = num("start")?;
                let blocks = num("block count")?;
                out.extend((start..start + blocks).map(|k| (k, 1)));
            }
            Format::Lirs => out.push((num("key")?, 1)),
            Format::Sized => {
                let _time = num("time")?;
                let key = num("key")?;
                let size = num("size")?;
                out.push((key, size.clamp(1, u64::from(u32::MAX)) as u32));
            }
        }
    }
    Ok(out)
}

/// A cache under test: `touch` looks a key up and inserts it on a miss; returns whether it hit.
trait Replay {
    fn touch(&mut self, key: u64, size: u32) -> bool;
}

struct Ours<W: bounded_cache::Weigher<u64, u32>>(Cache<u64, u32, W>);
impl<W: bounded_cache::Weigher<u64, u32>> Replay for Ours<W> {
    fn touch(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        let _ = self.0.insert(key, size);
        false
    }
}

struct Moka(moka::sync::Cache<u64, u32>);
impl Replay for Moka {
    fn touch(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, size);
        false
    }
}

struct Quick(quick_cache::sync::Cache<u64, u32, SizeWeighter>);
#[derive(Clone)]
struct SizeWeighter(bool);
impl quick_cache::Weighter<u64, u32> for SizeWeighter {
    fn weight(&self, _: &u64, size: &u32) -> u64 {
        if self.0 { u64::from(*size) } else { 1 }
    }
}
impl Replay for Quick {
    fn touch(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, size);
        false
    }
}

/// TinyUFO weighs entries in `u16`: it runs on the traces that count entries only.
struct Ufo(tinyufo::TinyUfo<u64, ()>);
impl Replay for Ufo {
    fn touch(&mut self, key: u64, _: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, (), 1);
        false
    }
}

struct Lru(lru::LruCache<u64, ()>);
impl Replay for Lru {
    fn touch(&mut self, key: u64, _: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, ());
        false
    }
}

fn run(cache: &mut dyn Replay, trace: &[Request]) -> f64 {
    let hits = trace.iter().filter(|&&(k, s)| cache.touch(k, s)).count();
    100.0 * hits as f64 / trace.len() as f64
}

/// The implementations at `capacity`; ours with `shards` shards if given, else their default.
fn implementations(
    capacity: u64,
    sized: bool,
    shards: Option<usize>,
) -> Vec<(&'static str, Box<dyn Replay>)> {
    let ours = |policy| -> Box<dyn Replay> {
        if sized {
            let builder = Cache::builder(capacity).policy(policy);
            let builder = if let Some(n) = shards { builder.shards(n) } else { builder };
            Box::new(Ours(builder.weigher(|_: &u64, s: &u32| *s as usize).build().unwrap()))
        } else {
            let builder = Cache::builder(0).max_entries(capacity).policy(policy);
            let builder = if let Some(n) = shards { builder.shards(n) } else { builder };
            Box::new(Ours(builder.build().unwrap()))
        }
    };
    let moka = if sized {
        moka::sync::Cache::builder().max_capacity(capacity).weigher(|_: &u64, s: &u32| *s).build()
    } else {
        moka::sync::Cache::new(capacity)
    };
    let estimated_items = if sized { (capacity / 4096).max(16) as usize } else { capacity as usize };
    let quick = quick_cache::sync::Cache::with_weighter(estimated_items, capacity, SizeWeighter(sized));
    let mut all: Vec<(&'static str, Box<dyn Replay>)> = vec![
        // The recommended policy, which is the default (W-TinyLFU).
        ("ours", ours(Policy::default())),
        ("ours-s3fifo", ours(Policy::S3Fifo)),
        ("ours-lru", ours(Policy::Lru)),
        ("moka", Box::new(Moka(moka))),
        ("quick_cache", Box::new(Quick(quick))),
    ];
    if !sized {
        let entries = capacity as usize;
        all.push(("tinyufo", Box::new(Ufo(tinyufo::TinyUfo::new(entries, entries)))));
        all.push(("tinyufo-compact", Box::new(Ufo(tinyufo::TinyUfo::new_compact(entries, entries)))));
        let cap = std::num::NonZeroUsize::new(capacity as usize).expect("capacity above zero");
        all.push(("lru (exact LRU)", Box::new(Lru(lru::LruCache::new(cap)))));
    }
    all
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut format = None;
    let mut capacities = Vec::new();
    let mut only = Vec::new();
    let mut shards = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--only" => match args.next() {
                Some(name) => only.push(name),
                None => {
                    eprintln!("--only takes an implementation's name");
                    return ExitCode::from(2);
                }
            },
            "--shards" => match args.next().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n.is_power_of_two() => shards = Some(n),
                _ => {
                    eprintln!("--shards takes a power of two");
                    return ExitCode::from(2);
                }
            },
            "--format" => {
                format = match args.next().as_deref() {
                    Some("arc") => Some(Format::Arc),
                    Some("lirs") => Some(Format::Lirs),
                    Some("sized") => Some(Format::Sized),
                    other => {
                        eprintln!("--format takes arc, lirs or sized, not {other:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            _ if path.is_none() => path = Some(arg),
            _ => capacities.push(arg),
        }
    }
    let (Some(path), false) = (path, capacities.is_empty()) else {
        eprintln!(
            "usage: hitratio <trace file> <capacity>... [--format arc|lirs|sized] [--only <name>]... [--shards <n>]"
        );
        return ExitCode::from(2);
    };
    let path = Path::new(&path);
    let Some(format) = format.or_else(|| guess_format(path)) else {
        eprintln!("cannot tell the format of {} from its name; pass --format", path.display());
        return ExitCode::from(2);
    };
    let trace = match read_trace(path, format) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => {
            eprintln!("{} holds no requests", path.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let sized = format == Format::Sized;
    let distinct_bytes: u64 = if sized {
        let mut sizes = HashMap::new();
        for &(k, s) in &trace {
            sizes.insert(k, u64::from(s));
        }
        sizes.values().sum()
    } else {
        0
    };
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    println!("trace {name}: {} requests ({format:?})", trace.len());
    if sized {
        println!("bytes of all distinct objects: {distinct_bytes}");
    }
    println!();
    println!("| implementation | capacity | hit ratio |");
    println!("|---|---|---|");
    for cap in &capacities {
        let (capacity, label) = match cap.strip_suffix('%') {
            Some(pct) if sized => {
                let pct: f64 = pct.parse().unwrap_or(0.0);
                let bytes = (distinct_bytes as f64 * pct / 100.0) as u64;
                (bytes, format!("{cap} ({bytes} B)"))
            }
            _ => match cap.parse::<u64>() {
                Ok(c) if c > 0 => (c, cap.clone()),
                _ => {
                    eprintln!(
                        "capacity {cap:?} is not a positive number{}",
                        if sized { " or a percentage" } else { "" }
                    );
                    return ExitCode::from(2);
                }
            },
        };
        let mut chosen = implementations(capacity, sized, shards);
        if !only.is_empty() {
            chosen.retain(|(name, _)| only.iter().any(|o| o == name));
            if chosen.is_empty() {
                eprintln!("no implementation is named {}", only.join(" or "));
                return ExitCode::from(2);
            }
        }
        for (implementation, mut cache) in chosen {
            let ratio = run(cache.as_mut(), &trace);
            println!("| {implementation} | {label} | {ratio:.2}% |");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LIRS trace file holding `text`.
    fn trace(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn lirs_phase_markers_are_not_requests() {
        let file = trace("7\n*\n8\n\n7\n");
        assert_eq!(read_trace(file.path(), Format::Lirs).unwrap(), vec![(7, 1), (8, 1), (7, 1)]);
    }

    #[test]
    fn a_bad_key_is_reported_with_its_line() {
        let file = trace("7\nx\n");
        let error = read_trace(file.path(), Format::Lirs).unwrap_err();
        assert!(error.contains("line 2: bad key"), "{error}");
    }
}
