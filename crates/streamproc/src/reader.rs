//! Cutting an input into chunks.
//!
//! A regular file of known length is read with positional reads (`pread` at explicit offsets: no
//! shared cursor, no mmap, since a file truncated under a mapping kills the process with SIGBUS
//! while a short read is an error we can report). A record-aligned chunk that ends before the
//! bytes read re-reads the rest as the start of the next chunk, so no bytes are copied between
//! buffers, and the length is checked again at the end: a file that changed is an error.
//!
//! Anything else is a **stream**: a pipe, a FIFO, a socket, a terminal, standard input, a file
//! whose size the system reports as 0 although it has content (`/proc` files), any `Read`, or the
//! decoder of a compressed input. It is read sequentially until the end; the bytes read past a record-aligned chunk's end are copied into
//! the next chunk's buffer (less than one chunk, the only copy). Its size is not known in advance,
//! so progress reports none; it is never mistaken for an empty file.
//!
//! Bytes already in memory are not read at all: each chunk is a slice of them, cut by the same
//! rules.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use objpool::BufferPool;

use crate::chunk::Chunk;
use crate::config::{Config, Split};
use crate::error::Error;
use crate::input::{Input, Source};
use crate::split::{Csv, Cut, cut, cut_csv};

/// Where the bytes come from, once the input is open.
enum Src {
    /// A regular file of known length: positional reads.
    Pread(File),
    /// A descriptor read sequentially (a pipe, FIFO, socket, `/proc` file).
    Fd(File),
    /// Any reader (a decoder among them), read sequentially.
    Read(Box<dyn Read + Send>),
    /// Bytes in memory: chunks are slices of them.
    Memory(Bytes),
}

pub(crate) struct Reader {
    src: Src,
    path: PathBuf,
    /// The input's length, for a file read with positional reads or bytes in memory; `None` for
    /// a stream.
    len: Option<u64>,
    offset: u64,
    index: u64,
    /// The input's position among the run's inputs.
    input: usize,
    chunk_size: usize,
    split: Split,
    pool: BufferPool,
    /// A stream's bytes read past the last chunk's end: the start of the next chunk.
    carry: Vec<u8>,
    /// The stream has ended.
    eof: bool,
}

impl Reader {
    /// Opens `input`, the run's input number `number`; its first chunk gets index `first_index`
    /// (the chunks of the run's earlier inputs come before it).
    pub(crate) fn open<E>(
        input: Input,
        number: usize,
        config: &Config,
        pool: BufferPool,
        first_index: u64,
    ) -> Result<Self, Error<E>> {
        let Input { source, name: path } = input;
        let open_err = |source| Error::Open { path: path.clone(), source };
        let (src, len) = match source {
            Source::Path(file_path) => {
                classify(File::open(&file_path).map_err(open_err)?).map_err(open_err)?
            }
            Source::File(file) => classify(file).map_err(open_err)?,
            Source::Reader(reader) => (Src::Read(reader), None),
            Source::Bytes(bytes) => {
                let len = bytes.len() as u64;
                (Src::Memory(bytes), Some(len))
            }
        };
        let mut reader = Self {
            src,
            path: path.clone(),
            len,
            offset: 0,
            index: first_index,
            input: number,
            chunk_size: config.chunk_size,
            split: config.split,
            pool,
            carry: Vec::new(),
            eof: false,
        };
        #[cfg(feature = "compression")]
        if config.decompress {
            reader.detect_compression().map_err(open_err)?;
        }
        if matches!(reader.src, Src::Memory(_)) && reader.len == Some(0) {
            reader.eof = true;
        }
        Ok(reader)
    }

    /// Replaces a compressed source by its decoder, read as a stream.
    #[cfg(feature = "compression")]
    fn detect_compression(&mut self) -> io::Result<()> {
        let mut head = [0u8; crate::decode::MAGIC_LEN];
        let n = match &mut self.src {
            Src::Pread(file) => pread_full(file, &mut head)?,
            Src::Memory(bytes) => {
                let n = bytes.len().min(head.len());
                head[..n].copy_from_slice(&bytes[..n]);
                n
            }
            Src::Fd(file) => {
                let n = read_full(file, &mut head)?;
                self.carry.extend_from_slice(&head[..n]);
                n
            }
            Src::Read(reader) => {
                let n = read_full(reader, &mut head)?;
                self.carry.extend_from_slice(&head[..n]);
                n
            }
        };
        let Some(format) = crate::decode::detect(&head[..n]) else { return Ok(()) };
        let carried = io::Cursor::new(std::mem::take(&mut self.carry));
        let raw: Box<dyn Read + Send> = match std::mem::replace(&mut self.src, Src::Memory(Bytes::new())) {
            // Positional reads never moved the cursor: it is at the start.
            Src::Pread(file) => Box::new(file),
            Src::Memory(bytes) => Box::new(io::Cursor::new(bytes)),
            Src::Fd(file) => Box::new(carried.chain(file)),
            Src::Read(reader) => Box::new(carried.chain(reader)),
        };
        self.src = Src::Read(crate::decode::decoder(format, raw)?);
        self.len = None;
        Ok(())
    }

    /// The input's length, if it is known before reading it (not for a stream).
    pub(crate) fn len(&self) -> Option<u64> {
        self.len
    }

    /// The index of the next chunk (the chunks read so far, with those of earlier inputs).
    pub(crate) fn next_index(&self) -> u64 {
        self.index
    }

    /// The next chunk, or `None` at the end of the input (for a file, after checking that its
    /// length did not change).
    pub(crate) fn next_chunk<E>(&mut self) -> Result<Option<Chunk>, Error<E>> {
        if let Src::Memory(bytes) = &self.src {
            return self.next_slice(&bytes.clone());
        }
        match self.len {
            Some(len) if self.offset >= len => {
                let now = match &self.src {
                    Src::Pread(file) => {
                        file.metadata().map_err(|source| self.read_err(self.offset, source))?.len()
                    }
                    _ => len,
                };
                if now != len {
                    return Err(Error::FileChanged { path: self.path.clone(), expected: len, actual: now });
                }
                return Ok(None);
            }
            None if self.eof && self.carry.is_empty() => return Ok(None),
            _ => {}
        }
        let mut buf = self
            .pool
            .get()
            .map_err(|e| self.read_err(self.offset, io::Error::other(e.to_string())))?
            .into_owned();
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let remaining = self.len.map_or(u64::MAX, |len| len - self.offset);
        let mut want = remaining.min(self.chunk_size as u64) as usize;
        self.fill(&mut buf, want)?;
        if buf.is_empty() {
            // A stream that ended on a chunk boundary.
            return Ok(None);
        }
        let end = loop {
            let at_eof = match self.len {
                Some(len) => self.offset + buf.len() as u64 >= len,
                None => self.eof,
            };
            match self.decide(&buf, at_eof, want)? {
                Some(end) => break end,
                None => {
                    want = self.grow(want.max(buf.len()), remaining);
                    self.fill(&mut buf, want)?;
                }
            }
        };
        let data = buf.split_to(end).freeze();
        if self.len.is_none() {
            // A stream cannot be read again: what follows the chunk moves to the next one.
            self.carry.extend_from_slice(&buf);
            buf.clear();
        }
        let chunk = Chunk::new(data, self.index, self.input, self.offset, Some(buf));
        self.offset += end as u64;
        self.index += 1;
        Ok(Some(chunk))
    }

    /// The next chunk of bytes in memory: a slice, cut as a file's would be.
    fn next_slice<E>(&mut self, bytes: &Bytes) -> Result<Option<Chunk>, Error<E>> {
        let start = self.offset as usize;
        let rest = &bytes[start..];
        if rest.is_empty() {
            return Ok(None);
        }
        let remaining = rest.len() as u64;
        let mut want = rest.len().min(self.chunk_size);
        let end = loop {
            if let Some(end) = self.decide(&rest[..want], want == rest.len(), want)? {
                break end;
            }
            want = self.grow(want, remaining);
        };
        let chunk = Chunk::new(bytes.slice(start..start + end), self.index, self.input, self.offset, None);
        self.offset += end as u64;
        self.index += 1;
        Ok(Some(chunk))
    }

    /// Where the chunk that starts with `window` ends (`None`: read more). `want` is how much was
    /// asked for: a fixed-size chunk ends there.
    fn decide<E>(&self, window: &[u8], at_eof: bool, want: usize) -> Result<Option<usize>, Error<E>> {
        let decision = match self.split {
            Split::Fixed => return Ok(Some(window.len().min(want))),
            Split::Csv { delimiter, quote, max_record } => {
                cut_csv(window, at_eof, self.chunk_size, max_record, Csv { delimiter, quote })
            }
            Split::Records { delimiter, max_record } => {
                cut(window, at_eof, delimiter, self.chunk_size, max_record)
            }
        };
        match decision {
            Cut::At(n) => Ok(Some(n)),
            Cut::NeedMore => Ok(None),
            Cut::TooLong => Err(Error::RecordTooLong {
                path: self.path.clone(),
                offset: self.offset,
                max_record: self.max_record(),
            }),
            Cut::Unterminated(at) => {
                Err(Error::MalformedCsv { path: self.path.clone(), offset: self.offset + at as u64 })
            }
        }
    }

    fn max_record(&self) -> usize {
        match self.split {
            Split::Records { max_record, .. } | Split::Csv { max_record, .. } => max_record,
            Split::Fixed => self.chunk_size,
        }
    }

    /// The next window size after `have` bytes held no cut: doubling, up to the longest record
    /// plus its delimiter, and never past the `remaining` bytes of the input.
    fn grow(&self, have: usize, remaining: u64) -> usize {
        let limit = self.max_record().saturating_add(1).min(remaining.min(usize::MAX as u64) as usize);
        have.saturating_mul(2).min(limit).max(have.min(limit))
    }

    /// Reads until `buf` holds `want` bytes from the chunk's start, or a stream ends.
    fn fill<E>(&mut self, buf: &mut BytesMut, want: usize) -> Result<(), Error<E>> {
        if buf.capacity() < want {
            buf.reserve(want - buf.len());
        }
        while buf.len() < want && !self.eof {
            let at = self.offset + buf.len() as u64;
            let max = want - buf.len();
            let read = match &mut self.src {
                Src::Pread(file) => read_at(file, buf, max, at),
                Src::Fd(file) => read_next(file, buf, max),
                Src::Read(reader) => read_from(reader, buf, max),
                Src::Memory(_) => unreachable!("bytes in memory are sliced, not read"),
            };
            let n = read.map_err(|source| self.read_err(at, source))?;
            match (n, self.len) {
                (0, Some(len)) => {
                    // The file is shorter than it was at the start.
                    return Err(Error::FileChanged { path: self.path.clone(), expected: len, actual: at });
                }
                (0, None) => self.eof = true,
                _ => {}
            }
        }
        Ok(())
    }

    fn read_err<E>(&self, offset: u64, source: io::Error) -> Error<E> {
        Error::Read { path: self.path.clone(), offset, source }
    }
}

/// Sorts an open file into a regular file of known length (positional reads) or a stream.
fn classify(file: File) -> io::Result<(Src, Option<u64>)> {
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    // A regular file that reports no length may still have content (`/proc`): a stream.
    Ok(if meta.is_file() && meta.len() > 0 {
        (Src::Pread(file), Some(meta.len()))
    } else {
        (Src::Fd(file), None)
    })
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
#[cfg(feature = "compression")]
fn read_full(mut reader: impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the start of a file into `buf` without moving its cursor; returns the bytes read.
#[cfg(feature = "compression")]
fn pread_full(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut tmp = BytesMut::with_capacity(buf.len());
    while tmp.len() < buf.len() {
        let at = tmp.len() as u64;
        if read_at(file, &mut tmp, buf.len() - at as usize, at)? == 0 {
            break;
        }
    }
    buf[..tmp.len()].copy_from_slice(&tmp);
    Ok(tmp.len())
}

/// Appends up to `max` bytes from `reader` to `buf`; returns how many (0 at the end). The spare
/// capacity is zeroed first, since `Read` may look at the buffer it is given.
fn read_from(reader: &mut dyn Read, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + max, 0);
    let n = loop {
        match reader.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    let n = n.inspect_err(|_| buf.truncate(start))?;
    buf.truncate(start + n.min(max));
    Ok(n.min(max))
}

/// Appends up to `max` bytes read from `file`'s cursor to `buf`, which has the spare capacity;
/// returns how many were read (0 at the end). Retries on `Interrupted`.
#[cfg(unix)]
fn read_next(file: &File, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: read writes at most `len` bytes at `ptr` and nothing else.
    read_into(buf, max, |ptr, len| unsafe { libc::read(fd, ptr, len) })
}

/// Appends to `buf`, which has `max` bytes of spare capacity, what `read(ptr, len)` (a `read`
/// or `pread` of at most `len` bytes into `ptr`, returning the count or -1 with `errno` set)
/// puts there; returns the count. Retries on `Interrupted`.
#[cfg(unix)]
fn read_into(
    buf: &mut BytesMut,
    max: usize,
    mut read: impl FnMut(*mut libc::c_void, usize) -> libc::ssize_t,
) -> io::Result<usize> {
    debug_assert!(buf.capacity() - buf.len() >= max);
    let spare = buf.spare_capacity_mut();
    loop {
        // `spare` is valid for writes of `max` bytes (it has at least that capacity), and the
        // call only writes into it; no reference to uninitialised memory is created.
        let n = read(spare.as_mut_ptr().cast(), max);
        if n >= 0 {
            // SAFETY: the call initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(not(unix))]
fn read_next(mut file: &File, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    read_from(&mut file, buf, max)
}

/// Appends up to `max` bytes read at `offset` to `buf`, which has the spare capacity; returns how
/// many were read (0 at the end of the file). Retries on `Interrupted`.
#[cfg(unix)]
fn read_at(file: &File, buf: &mut BytesMut, max: usize, offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: pread writes at most `len` bytes at `ptr` and nothing else.
    read_into(buf, max, |ptr, len| unsafe { libc::pread(fd, ptr, len, offset as libc::off_t) })
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut BytesMut, max: usize, offset: u64) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + max, 0);
    #[cfg(windows)]
    let n = std::os::windows::fs::FileExt::seek_read(file, &mut buf[start..], offset);
    let n = n.inspect_err(|_| buf.truncate(start))?;
    buf.truncate(start + n);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real read error (`EBADF`: the descriptor is not open for reading) carries the path and the
    /// offset of the failed read.
    #[test]
    fn read_errors_carry_path_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        let config = Config::new().chunk_size(40).workers(1);
        let pool = objpool::BufferPoolBuilder::new(40).max_size(2).build().unwrap();
        let mut reader = Reader::open::<()>(Input::path(&path), 0, &config, pool, 0).unwrap();
        assert!(reader.next_chunk::<()>().unwrap().is_some());
        reader.src = Src::Pread(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
        match reader.next_chunk::<()>() {
            Err(Error::Read { path: p, offset, source }) => {
                assert_eq!(p, path);
                assert_eq!(offset, 40);
                assert_eq!(source.raw_os_error(), Some(libc::EBADF));
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }
}
