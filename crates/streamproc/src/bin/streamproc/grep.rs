//! `streamproc grep`: the lines containing a literal pattern, in file order, or their count.

use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use memchr::memmem::Finder;

use crate::Run;

/// Calls `line` with each line of `data` that contains the pattern (without its newline).
fn matching_lines<'a>(finder: &Finder<'_>, data: &'a [u8], mut line: impl FnMut(&'a [u8])) {
    let mut from = 0;
    while let Some(at) = finder.find(&data[from..]) {
        let at = from + at;
        let start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
        line(&data[start..end]);
        from = (end + 1).min(data.len());
        if from >= data.len() {
            break;
        }
    }
}

pub(crate) fn run(run: &Run, pattern: &str, file: &Path, count: bool) -> Result<(), String> {
    let finder = Arc::new(Finder::new(pattern.as_bytes()).into_owned());
    if count {
        let finder = Arc::clone(&finder);
        let n = run
            .processor
            .fold(
                run.input(file),
                move |chunk| {
                    let mut n = 0u64;
                    matching_lines(&finder, chunk.data(), |_| n += 1);
                    Ok::<_, Infallible>(n)
                },
                0,
                |a, n| a + n,
            )
            .map_err(|e| e.to_string())?;
        println!("{n}");
        return Ok(());
    }
    let stdout = std::io::stdout().lock();
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    run.processor
        .write_ordered(
            run.input(file),
            move |chunk| {
                let mut out = Vec::new();
                matching_lines(&finder, chunk.data(), |line| {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                });
                Ok::<_, Infallible>(out)
            },
            out,
        )
        .map(|_| ())
        .or_else(|e| match e {
            // A closed pipe (`| head`) ends the output quietly.
            streamproc::Error::Write { source } if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            e => Err(e.to_string()),
        })?;
    std::io::stdout().flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_matching_line_once() {
        let finder = Finder::new("ab");
        let mut lines = Vec::new();
        matching_lines(&finder, b"xab ab\nno\nab\nzzab", |l| lines.push(l.to_vec()));
        assert_eq!(lines, vec![b"xab ab".to_vec(), b"ab".to_vec(), b"zzab".to_vec()]);
    }
}
