//! Where a record-aligned chunk ends: a pure function over the bytes read, shared by the reader,
//! the property tests and the fuzz target.

/// Where the chunk that starts with `window` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The chunk is `window[..n]` (it ends just after a delimiter, or at the end of the file).
    At(usize),
    /// No delimiter in `window`: read more (up to the longest record) and ask again.
    NeedMore,
    /// No delimiter within the longest record allowed.
    TooLong,
}

/// Chooses the end of a record-aligned chunk.
///
/// `window` holds the bytes read from the chunk's start; `at_eof` says whether they reach the end
/// of the file; `chunk_size` is the target size and `max_record` the longest record allowed
/// (delimiter excluded). The chunk ends after the last delimiter within the first `chunk_size`
/// bytes; if there is none, after the first delimiter beyond them, if it comes within
/// `max_record + 1` bytes of the start.
pub fn cut(window: &[u8], at_eof: bool, delimiter: u8, chunk_size: usize, max_record: usize) -> Cut {
    debug_assert!(max_record >= chunk_size, "checked by Config::validate");
    let head = &window[..window.len().min(chunk_size)];
    if at_eof && window.len() <= chunk_size {
        return Cut::At(window.len());
    }
    if let Some(i) = memchr::memrchr(delimiter, head) {
        return Cut::At(i + 1);
    }
    let limit = max_record.saturating_add(1);
    let beyond = &window[head.len()..window.len().min(limit)];
    if let Some(i) = memchr::memchr(delimiter, beyond) {
        return Cut::At(head.len() + i + 1);
    }
    if window.len() >= limit {
        Cut::TooLong
    } else if at_eof {
        // The file ends inside a record that fits.
        Cut::At(window.len())
    } else {
        Cut::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts() {
        assert_eq!(cut(b"ab\ncd\nef", false, b'\n', 8, 8), Cut::At(6));
        assert_eq!(cut(b"ab\ncd\nef", true, b'\n', 8, 8), Cut::At(8));
        assert_eq!(cut(b"abcdefgh", false, b'\n', 4, 8), Cut::NeedMore);
        assert_eq!(cut(b"abcdef\nxy", false, b'\n', 4, 8), Cut::At(7));
        assert_eq!(cut(b"abcdefghi", false, b'\n', 4, 8), Cut::TooLong);
        assert_eq!(cut(b"abcdefgh", true, b'\n', 4, 8), Cut::At(8));
    }
}
