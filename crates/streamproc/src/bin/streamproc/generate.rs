//! `streamproc gen`: a `name;value` file for `stats` (and for benchmarks), reproducible from a
//! seed: 400 names made of syllables, each with its own mean temperature, values with one decimal
//! in -99.9..=99.9.

use std::io::{BufWriter, Write};
use std::path::Path;

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ra", "su", "ten", "vo", "an", "bel", "dor", "e", "fa", "gu", "hin", "is", "jo", "ku",
    "lan", "mo", "nor", "ost", "pe", "qui", "rim",
];

pub(crate) fn run(rows: u64, file: &Path, seed: u64) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let stations: Vec<(String, f64)> = (0..400)
        .map(|i| {
            let mut name = String::new();
            for _ in 0..rng.usize(2..5) {
                name.push_str(SYLLABLES[rng.usize(..SYLLABLES.len())]);
            }
            let mut chars = name.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('X');
            (format!("{first}{}{i}", chars.as_str()), rng.f64() * 50.0 - 20.0)
        })
        .collect();
    let out = std::fs::File::create(file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let write_err = |e: std::io::Error| format!("cannot write {}: {e}", file.display());
    let mut line = String::with_capacity(64);
    for _ in 0..rows {
        let (name, mean) = &stations[rng.usize(..stations.len())];
        // A rough bell curve around the station's mean: the sum of three uniform draws.
        let noise = (rng.f64() + rng.f64() + rng.f64() - 1.5) * 20.0;
        let tenths = ((mean + noise) * 10.0).round().clamp(-999.0, 999.0) as i64;
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "{name};{}{}.{}",
            if tenths < 0 { "-" } else { "" },
            tenths.abs() / 10,
            tenths.abs() % 10
        );
        out.write_all(line.as_bytes()).map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}
