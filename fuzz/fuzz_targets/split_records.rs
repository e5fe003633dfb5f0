//! The record splitters driven the way the reader drives them, over any input, chunk size and
//! record limit.
//!
//! - `cut`, against the obvious model: chunks concatenate to the input, each ends just after a
//!   delimiter (but the last), none is longer than allowed, and "too long" is reported exactly
//!   when a record longer than the limit starts there.
//! - `cut_csv`, against a sequential CSV parser (the `csv` crate): chunks concatenate to the
//!   input, each but the last ends on a newline, and parsing each chunk on its own gives exactly
//!   the records the parser reads from the whole input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use streamproc::split::{Csv, Cut, cut, cut_csv};

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    chunk_size: u8,
    extra: u8,
    delimiter_is_zero: bool,
    csv: bool,
}

/// The records of `data` as the `csv` crate reads them (no header, any field count).
fn csv_records(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
        .byte_records()
        .map(|r| r.expect("reading from memory").iter().map(<[u8]>::to_vec).collect())
        .collect()
}

fn fuzz_csv(data: &[u8], chunk_size: usize, max_record: usize) {
    let dialect = Csv { delimiter: b',', quote: b'"' };
    let mut offset = 0;
    let mut records = Vec::new();
    while offset < data.len() {
        let remaining = data.len() - offset;
        let mut want = remaining.min(chunk_size);
        let end = loop {
            let window = &data[offset..offset + want];
            match cut_csv(window, offset + want == data.len(), chunk_size, max_record, dialect) {
                Cut::At(n) => break n,
                // Errors end the run; what came before was checked.
                Cut::TooLong | Cut::Unterminated(_) => return,
                Cut::NeedMore => {
                    let next = (want.max(window.len()) * 2).min((max_record + 1).min(remaining));
                    assert!(next > want, "NeedMore must be able to grow the window");
                    want = next;
                }
            }
        };
        assert!(end > 0 && end <= remaining);
        let piece = &data[offset..offset + end];
        if offset + end < data.len() {
            assert_eq!(piece.last(), Some(&b'\n'), "a chunk but the last ends on a newline");
        }
        records.extend(csv_records(piece));
        offset += end;
    }
    assert_eq!(records, csv_records(data), "the chunks' records are the whole input's");
}

fuzz_target!(|input: Input| {
    if input.csv {
        let chunk_size = usize::from(input.chunk_size.max(1));
        fuzz_csv(&input.data, chunk_size, chunk_size + usize::from(input.extra));
        return;
    }
    let delimiter = if input.delimiter_is_zero { 0 } else { b'\n' };
    let chunk_size = usize::from(input.chunk_size.max(1));
    let max_record = chunk_size + usize::from(input.extra);
    let data = &input.data;
    let mut offset = 0;
    let mut out = Vec::new();
    while offset < data.len() {
        let remaining = data.len() - offset;
        let mut want = remaining.min(chunk_size);
        let end = loop {
            let window = &data[offset..offset + want];
            match cut(window, offset + want == data.len(), delimiter, chunk_size, max_record) {
                Cut::At(n) => break Some(n),
                Cut::TooLong => break None,
                Cut::Unterminated(_) => unreachable!("only CSV cuts report quotes"),
                Cut::NeedMore => {
                    let next = (want * 2).min((max_record + 1).min(remaining));
                    assert!(next > want, "NeedMore must be able to grow the window");
                    want = next;
                }
            }
        };
        let record_len = data[offset..].iter().position(|&b| b == delimiter).unwrap_or(remaining);
        match end {
            None => {
                assert!(record_len > max_record, "TooLong for a record of {record_len} <= {max_record}");
                return;
            }
            Some(n) => {
                assert!(n > 0 && n <= remaining);
                assert!(n <= chunk_size.max(max_record + 1));
                let piece = &data[offset..offset + n];
                if offset + n < data.len() {
                    assert_eq!(piece.last(), Some(&delimiter), "a chunk but the last ends on the delimiter");
                }
                assert!(record_len <= max_record || offset + n == data.len() && record_len == remaining);
                out.extend_from_slice(piece);
                offset += n;
            }
        }
    }
    assert_eq!(&out, data);
});
