//! Where a record-aligned chunk ends: pure functions over the bytes read, shared by the reader,
//! the property tests and the fuzz target. [`cut`] ends records at a delimiter byte; [`cut_csv`]
//! at a newline outside quoted fields.

/// Where the chunk that starts with `window` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The chunk is `window[..n]` (it ends just after a delimiter, or at the end of the file).
    At(usize),
    /// No delimiter in `window`: read more (up to the longest record) and ask again.
    NeedMore,
    /// No delimiter within the longest record allowed.
    TooLong,
    /// CSV only: the input ends inside the quoted field that opens at this position.
    Unterminated(usize),
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

/// The CSV dialect of [`cut_csv`]: the field separator and the quote character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csv {
    /// Separates fields (`b','`).
    pub delimiter: u8,
    /// Opens and closes a quoted field; doubled inside one (`b'"'`).
    pub quote: u8,
}

/// Where a CSV record-scanning state machine stands, as RFC 4180 readers (and the `csv` crate)
/// see it: a quote opens a quoted field only at a field's start, a doubled quote inside one is a
/// literal quote, and a newline ends a record only outside quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after a quote inside a quoted field: the field's end, or the first of a doubled quote.
    QuoteInQuoted,
}

/// Chooses the end of a CSV chunk that starts at a record boundary: like [`cut`], with the
/// newline as the delimiter, but a newline inside a quoted field does not end a record. The
/// window is scanned from its start (the state at a record boundary is known), so the cut is
/// exact whatever the chunking. A quoted field still open at the end of the input is
/// [`Cut::Unterminated`] with its position.
pub fn cut_csv(window: &[u8], at_eof: bool, chunk_size: usize, max_record: usize, dialect: Csv) -> Cut {
    debug_assert!(max_record >= chunk_size, "checked by Config::validate");
    let limit = max_record.saturating_add(1);
    let whole = at_eof && window.len() <= chunk_size;
    let scan_to = if whole { window.len() } else { window.len().min(limit) };
    let mut ends = RecordEnds::new(&window[..scan_to], dialect);
    let mut last_end = None;
    for end in ends.by_ref() {
        if whole || end <= chunk_size {
            last_end = Some(end);
        } else {
            // The last record end within the target size, or else the first one beyond it.
            return Cut::At(last_end.unwrap_or(end));
        }
    }
    let open_quote = ends.open_quote();
    if whole {
        // The input ends in this chunk.
        return match open_quote {
            Some(opened) => Cut::Unterminated(opened),
            None => Cut::At(window.len()),
        };
    }
    if let Some(end) = last_end {
        return Cut::At(end);
    }
    if window.len() >= limit {
        Cut::TooLong
    } else if at_eof {
        // The input ends inside a record that fits.
        match open_quote {
            Some(opened) => Cut::Unterminated(opened),
            None => Cut::At(window.len()),
        }
    } else {
        Cut::NeedMore
    }
}

/// The ends of the CSV records in `data`, which starts at a record boundary (a chunk of a
/// [`Split::Csv`](crate::Split::Csv) run does): the position just after each newline that is not
/// inside a quoted field. A last record without a newline has no end here. A lone CR outside
/// quotes also ends a record (as the csv crate reads it) but is no place to cut.
///
/// ```
/// use streamproc::split::{Csv, RecordEnds};
///
/// let data = b"id,text\n1,\"two\nlines\"\n2,x";
/// let ends: Vec<usize> = RecordEnds::new(data, Csv { delimiter: b',', quote: b'"' }).collect();
/// assert_eq!(ends, [8, 22]);
/// ```
#[derive(Debug, Clone)]
pub struct RecordEnds<'a> {
    data: &'a [u8],
    dialect: Csv,
    state: State,
    /// Where the last quoted field opened.
    opened: usize,
    at: usize,
}

impl<'a> RecordEnds<'a> {
    /// Scans `data` from its start, a record boundary.
    pub fn new(data: &'a [u8], dialect: Csv) -> Self {
        Self { data, dialect, state: State::FieldStart, opened: 0, at: 0 }
    }

    /// Once the scan is over: where the quoted field that is still open starts, if the data ends
    /// inside one.
    pub fn open_quote(&self) -> Option<usize> {
        (self.state == State::Quoted).then_some(self.opened)
    }
}

impl Iterator for RecordEnds<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let (data, dialect) = (self.data, self.dialect);
        while self.at < data.len() {
            let i = self.at;
            if self.state == State::Quoted {
                // Nothing but a quote matters inside a quoted field.
                match memchr::memchr(dialect.quote, &data[i..]) {
                    Some(at) => {
                        self.at = i + at + 1;
                        self.state = State::QuoteInQuoted;
                        continue;
                    }
                    None => {
                        self.at = data.len();
                        return None;
                    }
                }
            }
            let b = data[i];
            self.at = i + 1;
            if b == b'\n' {
                self.state = State::FieldStart;
                return Some(i + 1);
            } else if b == b'\r' {
                // A lone CR ends a record for CSV readers (CR line endings), so what follows
                // starts a field; chunks are still cut after newlines only.
                self.state = State::FieldStart;
            } else if b == dialect.quote && self.state == State::FieldStart {
                self.state = State::Quoted;
                self.opened = i;
            } else if b == dialect.quote && self.state == State::QuoteInQuoted {
                self.state = State::Quoted;
            } else if b == dialect.delimiter {
                self.state = State::FieldStart;
            } else if self.state != State::Unquoted {
                // Text at a field's start, or after a closing quote (kept, as lenient readers do).
                self.state = State::Unquoted;
            }
        }
        None
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

    #[test]
    fn csv_cuts_skip_newlines_in_quotes() {
        let d = Csv { delimiter: b',', quote: b'"' };
        assert_eq!(cut_csv(b"a,b\nc,d\ne", false, 8, 8, d), Cut::At(8));
        // The newline inside quotes is not a record end: the chunk grows to the next one.
        assert_eq!(cut_csv(b"a,\"x\ny\"\nz", false, 4, 16, d), Cut::At(8));
        assert_eq!(cut_csv(b"a,\"x\ny", false, 4, 16, d), Cut::NeedMore);
        // A doubled quote is a literal quote: the field stays open across it.
        assert_eq!(cut_csv(b"\"a\"\"\nb\"\nc", false, 4, 16, d), Cut::At(8));
        // A quote inside an unquoted field is a literal.
        assert_eq!(cut_csv(b"ab\"c\nd", false, 8, 8, d), Cut::At(5));
        assert_eq!(cut_csv(b"a,\"open\n", true, 16, 16, d), Cut::Unterminated(2));
        assert_eq!(cut_csv(b"a,\"0123456789", false, 4, 8, d), Cut::TooLong);
        assert_eq!(cut_csv(b"a,b", true, 8, 8, d), Cut::At(3));
        // A lone CR ends a record as readers take it (the csv crate does), so the quote after
        // it opens a field and the newline inside that field is no record end.
        assert_eq!(cut_csv(b"a\r\"x\ny\"\nz", false, 4, 16, d), Cut::At(8));
    }
}
