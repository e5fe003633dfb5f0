//! The `streamproc` tool end to end, each command checked against a one-thread computation in
//! the test (and `lines` against GNU `wc` too).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn streamproc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--chunk-size", "4KiB", "--workers", "3", "--buffer", "2"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn generated(rows: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("measurements.txt");
    stdout(&streamproc(&["gen", &rows.to_string(), path.to_str().unwrap(), "--seed", "7"]));
    (dir, path)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn stats_matches_a_one_thread_aggregation() {
    let (_dir, path) = generated(200_000);
    let data = std::fs::read_to_string(&path).unwrap();
    let mut expected: BTreeMap<&str, (i64, i64, i64, i64)> = BTreeMap::new();
    for line in data.lines() {
        let (name, value) = line.split_once(';').unwrap();
        let tenths = (value.parse::<f64>().unwrap() * 10.0).round() as i64;
        let e = expected.entry(name).or_insert((i64::MAX, i64::MIN, 0, 0));
        *e = (e.0.min(tenths), e.1.max(tenths), e.2 + tenths, e.3 + 1);
    }
    let fmt = |v: i64| format!("{}{}.{}", if v < 0 { "-" } else { "" }, v.abs() / 10, v.abs() % 10);
    let body: Vec<String> = expected
        .iter()
        .map(|(name, (min, max, sum, n))| {
            let mean = (2 * sum + n).div_euclid(2 * n);
            format!("{name}={}/{}/{}", fmt(*min), fmt(mean), fmt(*max))
        })
        .collect();
    assert_eq!(stdout(&streamproc(&["stats", p(&path)])).trim(), format!("{{{}}}", body.join(", ")));
    // Any worker count gives the same answer.
    let one = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--workers", "1", "stats", p(&path)])
        .output()
        .unwrap();
    assert_eq!(stdout(&one), stdout(&streamproc(&["stats", p(&path)])));
}

#[test]
fn lines_counts_like_wc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    let text: String = (0..20_000).map(|i| format!("word{i}  and\tmore {}\n", " x".repeat(i % 5))).collect();
    std::fs::write(&path, format!("{text}last line without newline")).unwrap();
    let data = std::fs::read(&path).unwrap();
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    let words = String::from_utf8_lossy(&data).split_ascii_whitespace().count();
    let got = stdout(&streamproc(&["lines", p(&path)]));
    assert_eq!(got.trim(), format!("{lines} {words} {} {}", data.len(), p(&path)));
    assert_eq!(stdout(&streamproc(&["lines", "-l", p(&path)])).trim(), format!("{lines} {}", p(&path)));
    if let Ok(wc) = Command::new("wc").arg(&path).output() {
        let wc = String::from_utf8(wc.stdout).unwrap();
        let wc: Vec<&str> = wc.split_whitespace().collect();
        assert_eq!(wc[..3], [lines.to_string(), words.to_string(), data.len().to_string()]);
    }
}

#[test]
fn grep_prints_matching_lines_in_order_and_counts_them() {
    let (_dir, path) = generated(100_000);
    let data = std::fs::read_to_string(&path).unwrap();
    let expected: Vec<&str> = data.lines().filter(|l| l.contains("Ka")).collect();
    assert!(!expected.is_empty());
    let got = stdout(&streamproc(&["grep", "Ka", p(&path)]));
    assert_eq!(got.lines().collect::<Vec<_>>(), expected);
    assert_eq!(stdout(&streamproc(&["grep", "-c", "Ka", p(&path)])).trim(), expected.len().to_string());
    assert_eq!(stdout(&streamproc(&["grep", "-c", "no such text", p(&path)])).trim(), "0");
}

#[test]
fn checksums_equal_one_thread_computations() {
    let (_dir, path) = generated(100_000);
    let data = std::fs::read(&path).unwrap();
    let xxh3 = stdout(&streamproc(&["checksum", p(&path)]));
    assert_eq!(
        xxh3.split_whitespace().next().unwrap(),
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data))
    );
    let crc = stdout(&streamproc(&["checksum", "--algo", "crc32", p(&path)]));
    assert_eq!(crc.split_whitespace().next().unwrap(), format!("{:08x}", crc32fast::hash(&data)));
}

#[test]
fn errors_are_clear_and_fail_the_command() {
    let out = streamproc(&["lines", "/nonexistent/input.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open /nonexistent/input.txt"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad");
    std::fs::write(&path, "a;1.0\nb;oops\n").unwrap();
    let out = streamproc(&["stats", p(&path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("offset 6"));

    let out = streamproc(&["--chunk-size", "lots", "lines", p(&path)]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--workers", "0", "lines", p(&path)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one worker"));
}
