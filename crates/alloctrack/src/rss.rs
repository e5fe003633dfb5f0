//! The process's resident set size, from `/proc` on Linux.

/// The resident set size of this process in bytes, or `None` where it cannot be read (other
/// systems than Linux, or `/proc` not mounted).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`), or `None` where it cannot be
/// read.
pub(crate) fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_kb_line(&meminfo, "MemTotal:")
}

/// Reads the `VmRSS:  1234 kB` line of `/proc/self/status`.
fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_kb_line(status, "VmRSS:")
}

/// Reads a `Name:  1234 kB` line of a `/proc` file, in bytes.
fn parse_kb_line(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let mut fields = line[name.len()..].split_whitespace();
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

    #[test]
    fn parses_mem_total() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_kb_line(meminfo, "MemTotal:"), Some(24_576_000 * 1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let rss = rss_bytes().expect("/proc/self/status has VmRSS on Linux");
        assert!(rss > 1024 * 1024, "a test process uses more than 1 MiB: {rss}");
    }
}
