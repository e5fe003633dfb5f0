//! `streamproc grep`: the lines containing a literal pattern, in file order, or their count.

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;

use memchr::memmem::Finder;
use streamproc::split::RecordEnds;

use crate::lines::CSV;
use crate::{Run, Status, report, report_message};

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

/// Calls `record(start, record)` with each CSV record of `data` (a chunk of whole records) that
/// contains the pattern, without its final newline.
fn matching_records<'a>(finder: &Finder<'_>, data: &'a [u8], mut record: impl FnMut(usize, &'a [u8])) {
    let mut start = 0;
    let ends = RecordEnds::new(data, CSV);
    for end in ends.chain((start_of_tail(data) < data.len()).then_some(data.len() + 1)) {
        let text = &data[start..end.min(data.len() + 1) - 1];
        if finder.find(text).is_some() {
            record(start, text);
        }
        start = end;
    }
}

/// Where the bytes after the last newline start (a last record without one).
fn start_of_tail(data: &[u8]) -> usize {
    memchr::memrchr(b'\n', data).map_or(0, |i| i + 1)
}

pub(crate) fn run(run: &Run, pattern: &str, files: &[PathBuf], count: bool) -> Status {
    let finder = Finder::new(pattern.as_bytes());
    let csv = run.csv;
    let each = |data: &[u8], on: &mut dyn FnMut(usize, &[u8])| {
        if csv {
            matching_records(&finder, data, on)
        } else {
            matching_lines(&finder, data, |l| on(offset_in(data, l), l))
        }
    };
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if count {
        return count_matches(run, files, &names, each);
    }
    let prefix = files.len() > 1;
    let json = run.json;
    let mut matched = false;
    let mut failed = false;
    let outcome = run.processor.scope_many(
        run.inputs(files),
        |chunk| {
            let mut out = Vec::new();
            let name = &names[chunk.input()];
            each(chunk.data(), &mut |start, line| {
                if json {
                    let offset = chunk.offset() + start as u64;
                    let text = String::from_utf8_lossy(line);
                    let _ = serde_json::to_writer(
                        &mut out,
                        &serde_json::json!({ "name": name, "offset": offset, "line": text }),
                    );
                } else {
                    if prefix {
                        out.extend_from_slice(name.as_bytes());
                        out.push(b':');
                    }
                    out.extend_from_slice(line);
                }
                out.push(b'\n');
            });
            Ok::<_, Infallible>(out)
        },
        |results| {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            for item in results {
                match item {
                    Ok(processed) => {
                        matched |= !processed.value.is_empty();
                        out.write_all(&processed.value)?;
                    }
                    Err(error) => {
                        out.flush()?;
                        report(&error);
                        failed = true;
                    }
                }
            }
            out.flush()
        },
    );
    match outcome {
        // A closed pipe (`| head`) ends the output quietly.
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Ok(Err(error)) => {
            report_message(format!("cannot write the output: {error}"));
            failed = true;
        }
        Ok(Ok(())) => {}
        Err(error) => {
            report(&error);
            failed = true;
        }
    }
    match (failed, matched) {
        (true, _) => Status::Failed,
        (false, true) => Status::Ok,
        (false, false) => Status::NoMatch,
    }
}

/// Where `line`, a slice of `data`, starts in it.
fn offset_in(data: &[u8], line: &[u8]) -> usize {
    line.as_ptr() as usize - data.as_ptr() as usize
}

/// `grep -c`: the matching lines of each file.
fn count_matches(
    run: &Run,
    files: &[PathBuf],
    names: &[String],
    each: impl Fn(&[u8], &mut dyn FnMut(usize, &[u8])) + Sync,
) -> Status {
    let outcomes = run.processor.fold_each(
        run.inputs(files),
        |chunk| {
            let mut n = 0u64;
            each(chunk.data(), &mut |_, _| n += 1);
            Ok::<_, Infallible>(n)
        },
        || 0,
        |a, n| a + n,
    );
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            report(&error);
            return Status::Failed;
        }
    };
    let (mut total, mut failed, mut json) = (0, false, Vec::new());
    for (name, outcome) in names.iter().zip(outcomes) {
        match outcome {
            Ok(n) => {
                total += n;
                if run.json {
                    json.push(serde_json::json!({ "name": name, "count": n }));
                } else if names.len() > 1 {
                    println!("{name}:{n}");
                } else {
                    println!("{n}");
                }
            }
            Err(error) => {
                report(&error);
                failed = true;
                json.push(serde_json::json!({ "name": name, "error": error.to_string() }));
            }
        }
    }
    if run.json {
        println!("{}", serde_json::json!({ "inputs": json, "total": total }));
    }
    match (failed, total) {
        (true, _) => Status::Failed,
        (false, 0) => Status::NoMatch,
        (false, _) => Status::Ok,
    }
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

    #[test]
    fn finds_whole_csv_records() {
        let finder = Finder::new("ab");
        let mut records = Vec::new();
        matching_records(&finder, b"1,\"x\nab\"\n2,no\n3,ab", |at, r| records.push((at, r.to_vec())));
        assert_eq!(records, vec![(0, b"1,\"x\nab\"".to_vec()), (14, b"3,ab".to_vec())]);
    }
}
