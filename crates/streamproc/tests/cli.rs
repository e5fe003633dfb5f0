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
    // No match: grep's exit status 1, and the count still printed.
    let none = streamproc(&["grep", "-c", "no such text", p(&path)]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "0");
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
    // Invalid settings are usage errors, as clap's own: exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--workers", "0", "lines", p(&path)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one worker"));
    let out = Command::new(env!("CARGO_BIN_EXE_streamproc"))
        .args(["--buffer", "100000000", "lines", p(&path)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an absurd buffer is refused, not allocated");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chunks in flight"));
}

/// Several files, one missing: one line per file and a total, as `wc` prints them (compared with
/// GNU `wc` itself), the missing file reported, exit status 1.
#[test]
fn several_files_are_reported_one_by_one_with_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, empty) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("empty"));
    std::fs::write(&a, "one two\nthree\n").unwrap();
    std::fs::write(&b, (0..5000).map(|i| format!("w{i} x\r\n")).collect::<String>()).unwrap();
    std::fs::write(&empty, "").unwrap();
    let files = [p(&a), p(&b), p(&empty)];
    let ours = stdout(&streamproc(&[&["lines"][..], &files[..]].concat()));
    let wc = Command::new("wc").args(files).output().unwrap();
    assert!(wc.status.success());
    let fields = |text: &str| -> Vec<Vec<String>> {
        text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
    };
    assert_eq!(fields(&ours), fields(&String::from_utf8(wc.stdout).unwrap()));

    let out = streamproc(&["lines", "-l", p(&a), "/no/such/file", p(&b)]);
    assert_eq!(out.status.code(), Some(1), "wc's status when a file is missing");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("2 {}\n5000 {}\n5002 total\n", p(&a), p(&b)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /no/such/file"));
}

#[test]
fn grep_exit_status_and_file_names_follow_grep() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "alpha\nbeta\n").unwrap();
    std::fs::write(&b, "gamma\nalphabet\n").unwrap();
    let out = streamproc(&["grep", "alpha", p(&a), p(&b)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}:alpha\n{}:alphabet\n", p(&a), p(&b)));
    let out = streamproc(&["grep", "-c", "alpha", p(&a), p(&b)]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}:1\n{}:1\n", p(&a), p(&b)));
    assert_eq!(streamproc(&["grep", "delta", p(&a), p(&b)]).status.code(), Some(1), "no match");
    // A missing file is an error (2) even when another file matches, as for GNU grep.
    let out = streamproc(&["grep", "alpha", p(&a), "/no/such/file"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alpha"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file"));
}

#[test]
fn json_output_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "one two\nthree\n").unwrap();
    std::fs::write(&b, "x;1.5\ny;-2\nx;2.5\n").unwrap();
    let parse = |out: Output| -> serde_json::Value { serde_json::from_str(&stdout(&out)).unwrap() };
    let lines = parse(streamproc(&["--json", "lines", p(&a), p(&b)]));
    assert_eq!(lines["inputs"][0], serde_json::json!({ "name": p(&a), "lines": 2, "words": 3, "bytes": 14 }));
    assert_eq!(lines["total"]["lines"], 5);
    let stats = parse(streamproc(&["--json", "stats", p(&b)]));
    assert_eq!(stats["x"], serde_json::json!({ "min": 1.5, "mean": 2.0, "max": 2.5, "count": 2 }));
    let sums = parse(streamproc(&["--json", "checksum", "--algo", "crc32", p(&a)]));
    assert_eq!(sums["inputs"][0]["checksum"], format!("{:08x}", crc32fast::hash(b"one two\nthree\n")));
    // grep: one JSON object per matching line, with the line's byte offset.
    let out = stdout(&streamproc(&["--json", "grep", "thr", p(&a)]));
    let matches: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(matches, [serde_json::json!({ "name": p(&a), "offset": 8, "line": "three" })]);
    let count = parse(streamproc(&["--json", "grep", "-c", "o", p(&a), "/no/such/file"]).clone_ok());
    assert_eq!(count["total"], 1);
    assert!(count["inputs"][1]["error"].as_str().unwrap().contains("/no/such/file"));
}

trait CloneOk {
    /// The output with a success status, for parsing the stdout of a run that failed on purpose.
    fn clone_ok(self) -> Output;
}

impl CloneOk for Output {
    fn clone_ok(mut self) -> Output {
        use std::os::unix::process::ExitStatusExt;
        self.status = std::process::ExitStatus::from_raw(0);
        self
    }
}

/// gzip and zstd files give what the plain file gives (the files made by the system's `gzip`
/// and `zstd` where installed, else by the libraries); `checksum` sums the stored bytes.
#[test]
fn compressed_files_give_the_plain_results() {
    use std::io::Write;
    let (_dir, path) = generated(50_000);
    let data = std::fs::read(&path).unwrap();
    let gz = path.with_extension("gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    let zst = path.with_extension("zst");
    std::fs::write(&zst, zstd::encode_all(&data[..], 3).unwrap()).unwrap();
    let plain = stdout(&streamproc(&["lines", p(&path)]));
    let plain_counts = plain.split_whitespace().take(3).collect::<Vec<_>>();
    for file in [&gz, &zst] {
        let ours = stdout(&streamproc(&["lines", p(file)]));
        assert_eq!(ours.split_whitespace().take(3).collect::<Vec<_>>(), plain_counts, "{}", p(file));
        assert_eq!(stdout(&streamproc(&["stats", p(file)])), stdout(&streamproc(&["stats", p(&path)])));
    }
    // Compressed standard input too.
    let piped = stdout(&streamproc_stdin(&["lines", "-"], std::fs::read(&gz).unwrap()));
    assert_eq!(piped.split_whitespace().take(3).collect::<Vec<_>>(), plain_counts);
    let sum = stdout(&streamproc(&["checksum", "--algo", "crc32", p(&gz)]));
    assert!(sum.starts_with(&format!("{:08x}", crc32fast::hash(&std::fs::read(&gz).unwrap()))));
}

/// `--csv`: records, not lines: a quoted newline neither ends a record nor a chunk.
#[test]
fn csv_mode_counts_and_prints_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    let text: String =
        (0..3000).map(|i| format!("{i},\"note {i}\nsecond line, with comma\",end\n")).collect();
    std::fs::write(&path, &text).unwrap();
    let records = csv::ReaderBuilder::new().has_headers(false).from_path(&path).unwrap().records().count();
    assert_eq!(records, 3000);
    assert_eq!(stdout(&streamproc(&["--csv", "lines", "-l", p(&path)])).trim(), format!("3000 {}", p(&path)));
    let out = stdout(&streamproc(&["--csv", "grep", "note 2999", p(&path)]));
    assert_eq!(out, "2999,\"note 2999\nsecond line, with comma\",end\n");
}
