//! The `hitratio` tool's command line: a shard count it cannot use is refused with a clear
//! message and the usage exit code, before any trace is replayed; one it can use is taken.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A LIRS-format trace (one key a line) of a few requests, in a file of this test's own.
fn trace(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("hitratio-cli-{}-{name}.trace", std::process::id()));
    std::fs::write(&path, "1\n2\n1\n3\n1\n2\n").expect("write the trace");
    path
}

fn hitratio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hitratio")).args(args).output().expect("run hitratio")
}

#[test]
fn refuses_a_shard_count_that_is_not_a_power_of_two() {
    let path = trace("refuses");
    for bad in [&["--shards", "3"][..], &["--shards", "0"], &["--shards", "many"], &["--shards"]] {
        let mut args = vec![path.to_str().unwrap(), "2", "--only", "ours"];
        args.extend_from_slice(bad);
        let out = hitratio(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "--shards takes a power of two", "{bad:?}");
        assert!(out.stdout.is_empty(), "{bad:?}: nothing replayed");
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn replays_our_cache_with_the_shards_asked_for() {
    let path = trace("replays");
    // Exact LRU with room for two keys: 1, 2, 1 (hit), 3 (evicts 2), 1 (hit), 2: 2 hits in 6.
    // This checks that the option is taken and the replay runs with it; at this size the
    // default is one shard too, so it does not tell whether the count reached the cache.
    let out = hitratio(&[path.to_str().unwrap(), "2", "--only", "ours-lru", "--shards", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| ours-lru | 2 | 33.33% |"), "{stdout}");
    std::fs::remove_file(path).unwrap();
}
