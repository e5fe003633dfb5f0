//! The process's resident set size, from `/proc` on Linux.

/// The resident set size of this process in bytes, or `None` where it cannot be read (other
/// systems than Linux, or `/proc` not mounted).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// Reads the `VmRSS:  1234 kB` line of `/proc/self/status`.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tcat\nVmPeak:\t  9000 kB\nVmRSS:\t    1880 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1880 * 1024));
        assert_eq!(parse_vm_rss("Name:\tcat\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let rss = rss_bytes().expect("/proc/self/status has VmRSS on Linux");
        assert!(rss > 1024 * 1024, "a test process uses more than 1 MiB: {rss}");
    }
}
