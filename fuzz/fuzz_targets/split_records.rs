//! The record splitter (`streamproc::split::cut`) driven the way the reader drives it, over any
//! input, chunk size and record limit, against the obvious model: chunks concatenate to the input,
//! each ends just after a delimiter (but the last), none is longer than allowed, and "too long" is
//! reported exactly when a record longer than the limit starts there.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use streamproc::split::{Cut, cut};

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    chunk_size: u8,
    extra: u8,
    delimiter_is_zero: bool,
}

fuzz_target!(|input: Input| {
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
