//! `streamproc lines`: lines, words and bytes, counted as `wc` counts them (a word is a maximal run
//! of bytes that are not ASCII whitespace; chunks end on a newline, so no word spans two chunks).

use std::convert::Infallible;
use std::path::PathBuf;

use streamproc::split::{Csv, RecordEnds};

use crate::{Run, Status, report};

#[derive(Default, Clone, Copy)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn count_words(data: &[u8]) -> u64 {
    let mut words = 0;
    let mut in_word = false;
    for &b in data {
        let space = is_space(b);
        words += u64::from(in_word && space);
        in_word = !space;
    }
    words + u64::from(in_word)
}

/// The records in `data`, a chunk of whole CSV records: their ends, plus a last one without a
/// newline.
pub(crate) fn csv_records(data: &[u8]) -> u64 {
    let ends = RecordEnds::new(data, CSV).count() as u64;
    ends + u64::from(!data.is_empty() && !data.ends_with(b"\n"))
}

/// The dialect of `--csv`.
pub(crate) const CSV: Csv = Csv { delimiter: b',', quote: b'"' };

pub(crate) fn run(run: &Run, files: &[PathBuf], lines_only: bool) -> Status {
    let csv = run.csv;
    let outcomes = run.processor.fold_each(
        run.inputs(files),
        |chunk| {
            let data = chunk.data();
            Ok::<_, Infallible>(Counts {
                lines: if csv { csv_records(data) } else { memchr::memchr_iter(b'\n', data).count() as u64 },
                words: if lines_only { 0 } else { count_words(data) },
                bytes: data.len() as u64,
            })
        },
        Counts::default,
        Counts::add,
    );
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            report(&error);
            return Status::Failed;
        }
    };
    let mut total = Counts::default();
    let mut status = Status::Ok;
    let mut json = Vec::new();
    for (file, outcome) in files.iter().zip(outcomes) {
        let name = file.display().to_string();
        match outcome {
            Ok(counts) => {
                total = total.add(counts);
                if run.json {
                    json.push(counts.json(&name, lines_only));
                } else {
                    println!("{}", counts.line(&name, lines_only));
                }
            }
            Err(error) => {
                status = Status::Failed;
                report(&error);
                json.push(serde_json::json!({ "name": name, "error": error.to_string() }));
            }
        }
    }
    if run.json {
        let total = (files.len() > 1).then(|| total.json("total", lines_only));
        println!("{}", serde_json::json!({ "inputs": json, "total": total }));
    } else if files.len() > 1 {
        println!("{}", total.line("total", lines_only));
    }
    status
}

impl Counts {
    fn add(self, other: Counts) -> Counts {
        Counts {
            lines: self.lines + other.lines,
            words: self.words + other.words,
            bytes: self.bytes + other.bytes,
        }
    }

    /// `wc`'s line: the counts, then the name.
    fn line(&self, name: &str, lines_only: bool) -> String {
        if lines_only {
            format!("{} {name}", self.lines)
        } else {
            format!("{} {} {} {name}", self.lines, self.words, self.bytes)
        }
    }

    fn json(&self, name: &str, lines_only: bool) -> serde_json::Value {
        if lines_only {
            serde_json::json!({ "name": name, "lines": self.lines })
        } else {
            serde_json::json!({ "name": name, "lines": self.lines, "words": self.words, "bytes": self.bytes })
        }
    }
}
