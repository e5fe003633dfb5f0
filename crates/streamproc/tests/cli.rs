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
    // Newline and CRLF line ends: a CRLF is one line end, as for wc.
    for eol in ["\n", "\r\n"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text");
        let text: String =
            (0..20_000).map(|i| format!("word{i}  and\tmore {}{eol}", " x".repeat(i % 5))).collect();
        std::fs::write(&path, format!("{text}last line without newline")).unwrap();
        let data = std::fs::read(&path).unwrap();
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, 20_000);
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

/// Runs the tool with `input` on its standard input (a pipe).
fn streamproc_stdin(args: &[&str], input: Vec<u8>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--chunk-size", "4KiB", "--workers", "3", "--buffer", "2"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn standard_input_is_read_as_a_stream() {
    let input: Vec<u8> = (1..=100_000).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    assert_eq!(stdout(&streamproc_stdin(&["lines", "-l", "-"], input.clone())), "100000 -\n");
    let words = stdout(&streamproc_stdin(&["lines", "-"], input.clone()));
    assert_eq!(words, format!("100000 100000 {} -\n", input.len()));
    let count = stdout(&streamproc_stdin(&["grep", "-c", "99", "-"], input.clone()));
    let expected = input.split(|&b| b == b'\n').filter(|l| l.windows(2).any(|w| w == b"99")).count();
    assert_eq!(count.trim(), expected.to_string());
    let sum = stdout(&streamproc_stdin(&["checksum", "--algo", "crc32", "-"], input.clone()));
    assert!(sum.starts_with(&format!("{:08x}", crc32fast::hash(&input))), "{sum}");
}

#[test]
fn stats_sums_cannot_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    // 9e17 is 9e18 tenths: each fits in 64 bits, their sum does not.
    std::fs::write(
        &path,
        "a;900000000000000000\na;900000000000000000\nb;-900000000000000000\nb;-900000000000000000\n",
    )
    .unwrap();
    let out = stdout(&streamproc(&["stats", p(&path)]));
    assert_eq!(
        out.trim(),
        "{a=900000000000000000.0/900000000000000000.0/900000000000000000.0, \
         b=-900000000000000000.0/-900000000000000000.0/-900000000000000000.0}"
    );
    // A value that does not fit is an error naming its line, not a wrong answer.
    std::fs::write(&path, "a;1.0\na;99999999999999999999\n").unwrap();
    let out = streamproc(&["stats", p(&path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("offset 6"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--buffer", "100000000", "lines", p(&path)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "an absurd buffer is refused, not allocated");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chunks in flight"));
}
