//! `streamproc stats`: the One Billion Row Challenge aggregation. Each line is `name;value` with a
//! decimal value; the output is `{name=min/mean/max, ...}` sorted by name, one decimal each.
//!
//! Values are kept as integers in tenths (the challenge's values have one decimal; more decimals are
//! rounded to the nearest tenth), so sums are exact and the result does not depend on the chunking.
//! A value must fit in 64 bits as tenths (an error names the line's offset otherwise); sums are
//! 128-bit, so no input can overflow them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::{Run, Status, report};

#[derive(Debug, Clone, Copy)]
struct Agg {
    min: i64,
    max: i64,
    sum: i128,
    count: u64,
}

impl Agg {
    fn new(v: i64) -> Self {
        Self { min: v, max: v, sum: i128::from(v), count: 1 }
    }
    fn add(&mut self, v: i64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += i128::from(v);
        self.count += 1;
    }
    fn merge(&mut self, o: &Agg) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
    }
}

type Table = HashMap<Box<[u8]>, Agg, foldhash::fast::FixedState>;

/// Parses a decimal (`-12.3`, `7`, `0.25`) into tenths, rounding half away from zero.
fn parse_tenths(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    let mut int: i64 = 0;
    let mut frac_tenths = 0i64;
    let mut round = 0i64;
    let mut seen_digit = false;
    let mut i = 0;
    while i < digits.len() && digits[i].is_ascii_digit() {
        int = int.checked_mul(10)?.checked_add(i64::from(digits[i] - b'0'))?;
        seen_digit = true;
        i += 1;
    }
    if i < digits.len() {
        if digits[i] != b'.' {
            return None;
        }
        i += 1;
        let frac = &digits[i..];
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        frac_tenths = i64::from(frac[0] - b'0');
        round = i64::from(frac.get(1).is_some_and(|&d| d >= b'5'));
        seen_digit = true;
    }
    if !seen_digit {
        return None;
    }
    let v = int.checked_mul(10)?.checked_add(frac_tenths + round)?;
    Some(if neg { -v } else { v })
}

/// A line `stats` cannot read: the file, the line's offset and what is wrong with it.
#[derive(Debug)]
struct BadLine(String);

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadLine {}

fn aggregate(data: &[u8], offset: u64) -> Result<Table, String> {
    let mut table = Table::default();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data)
        .chain((data.last() != Some(&b'\n') && !data.is_empty()).then_some(data.len()))
    {
        let line = &data[start..end];
        let line_offset = offset + start as u64;
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let sep =
            memchr::memrchr(b';', line).ok_or_else(|| format!("line at offset {line_offset}: no ';'"))?;
        let (name, value) = (&line[..sep], &line[sep + 1..]);
        let v = parse_tenths(value).ok_or_else(|| {
            format!(
                "line at offset {line_offset}: {:?} is not a number of at most 18 digits",
                String::from_utf8_lossy(value)
            )
        })?;
        match table.get_mut(name) {
            Some(agg) => agg.add(v),
            None => {
                table.insert(name.into(), Agg::new(v));
            }
        }
    }
    Ok(table)
}

/// Formats tenths with one decimal.
fn tenths(v: i64) -> String {
    format!("{}{}.{}", if v < 0 { "-" } else { "" }, v.abs() / 10, v.abs() % 10)
}

/// The mean in tenths, rounded half up (towards positive infinity), as the challenge does. It lies
/// between the minimum and the maximum, so it fits where they do.
fn mean_tenths(sum: i128, count: u64) -> i64 {
    let count = i128::from(count);
    let mean = (2 * sum + count).div_euclid(2 * count);
    i64::try_from(mean).expect("a mean lies between the minimum and the maximum")
}

fn merge(mut acc: Table, t: Table) -> Table {
    for (name, agg) in t {
        match acc.get_mut(&name) {
            Some(a) => a.merge(&agg),
            None => {
                acc.insert(name, agg);
            }
        }
    }
    acc
}

pub(crate) fn run(run: &Run, files: &[PathBuf]) -> Status {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let outcomes = run.processor.fold_each(
        run.inputs(files),
        |chunk| {
            aggregate(chunk.data(), chunk.offset())
                .map_err(|e| BadLine(format!("{}: {e}", names[chunk.input()])))
        },
        Table::default,
        merge,
    );
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            report(&error);
            return Status::Failed;
        }
    };
    let mut status = Status::Ok;
    let mut table = Table::default();
    for outcome in outcomes {
        match outcome {
            Ok(t) => table = merge(table, t),
            Err(error) => {
                report(&error);
                status = Status::Failed;
            }
        }
    }
    let mut names: Vec<_> = table.into_iter().collect();
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if run.json {
        let mut object = serde_json::Map::new();
        for (name, agg) in &names {
            object.insert(
                String::from_utf8_lossy(name).into_owned(),
                serde_json::json!({
                    "min": tenths(agg.min).parse::<f64>().expect("a decimal"),
                    "mean": tenths(mean_tenths(agg.sum, agg.count)).parse::<f64>().expect("a decimal"),
                    "max": tenths(agg.max).parse::<f64>().expect("a decimal"),
                    "count": agg.count,
                }),
            );
        }
        println!("{}", serde_json::Value::Object(object));
        return status;
    }
    let mut out = String::with_capacity(names.len() * 32);
    out.push('{');
    for (i, (name, agg)) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{}={}/{}/{}",
            String::from_utf8_lossy(name),
            tenths(agg.min),
            tenths(mean_tenths(agg.sum, agg.count)),
            tenths(agg.max)
        );
    }
    out.push('}');
    println!("{out}");
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rounds() {
        assert_eq!(parse_tenths(b"12.3"), Some(123));
        assert_eq!(parse_tenths(b"-0.5"), Some(-5));
        assert_eq!(parse_tenths(b"7"), Some(70));
        assert_eq!(parse_tenths(b"0.25"), Some(3));
        assert_eq!(parse_tenths(b"-"), None);
        assert_eq!(parse_tenths(b"1.x"), None);
        assert_eq!(parse_tenths(b"abc"), None);
        assert_eq!(tenths(-5), "-0.5");
        assert_eq!(mean_tenths(-15, 2), -7); // -0.75 rounds up to -0.7
        assert_eq!(mean_tenths(15, 2), 8);
        // Two values whose sum overflows 64 bits.
        assert_eq!(mean_tenths(2 * 9_000_000_000_000_000_000, 2), 9_000_000_000_000_000_000);
        assert_eq!(parse_tenths(b"9999999999999999999"), None, "above 64 bits as tenths");
    }

    #[test]
    fn reports_bad_lines_with_their_offset() {
        assert!(aggregate(b"a;1.0\nb;zz\n", 100).unwrap_err().contains("offset 106"));
        assert!(aggregate(b"a;1.0\nnosep\n", 0).unwrap_err().contains("no ';'"));
        let t = aggregate(b"a;1.0\na;-2.5\nb;3", 0).unwrap();
        assert_eq!((t[&b"a"[..]].min, t[&b"a"[..]].max, t[&b"a"[..]].count), (-25, 10, 2));
        assert_eq!(t[&b"b"[..]].sum, 30);
    }
}
