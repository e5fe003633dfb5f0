//! Cutting an input into chunks.
//!
//! A regular file of known length is read with positional reads (`pread` at explicit offsets: no
//! shared cursor, no mmap, since a file truncated under a mapping kills the process with SIGBUS
//! while a short read is an error we can report). A record-aligned chunk that ends before the
//! bytes read re-reads the rest as the start of the next chunk, so no bytes are copied between
//! buffers, and the length is checked again at the end: a file that changed is an error.
//!
//! Anything else is a **stream**: a pipe, a FIFO, a socket, a terminal, standard input, or a file
//! whose size the system reports as 0 although it has content (`/proc` files). It is read
//! sequentially until the end; the bytes read past a record-aligned chunk's end are copied into
//! the next chunk's buffer (less than one chunk, the only copy). Its size is not known in advance,
//! so progress reports none; it is never mistaken for an empty file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use objpool::BufferPool;

use crate::chunk::Chunk;
use crate::config::{Config, Split};
use crate::error::Error;
use crate::split::{Csv, Cut, cut, cut_csv};

pub(crate) struct Reader {
    file: File,
    path: PathBuf,
    /// The file's length, for a file read with positional reads; `None` for a stream.
    len: Option<u64>,
    offset: u64,
    index: u64,
    chunk_size: usize,
    split: Split,
    pool: BufferPool,
    /// A stream's bytes read past the last chunk's end: the start of the next chunk.
    carry: Vec<u8>,
    /// The stream has ended.
    eof: bool,
}

impl Reader {
    pub(crate) fn open<E>(path: &Path, config: &Config, pool: BufferPool) -> Result<Self, Error<E>> {
        let open_err = |source| Error::Open { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")));
        }
        // A regular file that reports no length may still have content (`/proc`): a stream.
        let len = (meta.is_file() && meta.len() > 0).then_some(meta.len());
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
            offset: 0,
            index: 0,
            chunk_size: config.chunk_size,
            split: config.split,
            pool,
            carry: Vec::new(),
            eof: false,
        })
    }

    /// The input's length, if it is known before reading it (not for a stream).
    pub(crate) fn len(&self) -> Option<u64> {
        self.len
    }

    /// Chunks read so far (the index of the next one).
    pub(crate) fn chunks_read(&self) -> u64 {
        self.index
    }

    /// The next chunk, or `None` at the end of the input (for a file, after checking that its
    /// length did not change).
    pub(crate) fn next_chunk<E>(&mut self) -> Result<Option<Chunk>, Error<E>> {
        match self.len {
            Some(len) if self.offset >= len => {
                let now = self.file.metadata().map_err(|source| self.read_err(self.offset, source))?.len();
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
        let end = match self.split {
            Split::Fixed => buf.len().min(want),
            Split::Records { max_record, .. } | Split::Csv { max_record, .. } => loop {
                let at_eof = self.at_eof(&buf);
                let decision = match self.split {
                    Split::Csv { delimiter, quote, .. } => {
                        cut_csv(&buf, at_eof, self.chunk_size, max_record, Csv { delimiter, quote })
                    }
                    Split::Records { delimiter, .. } => {
                        cut(&buf, at_eof, delimiter, self.chunk_size, max_record)
                    }
                    Split::Fixed => unreachable!("matched above"),
                };
                match decision {
                    Cut::At(n) => break n,
                    Cut::TooLong => {
                        return Err(Error::RecordTooLong {
                            path: self.path.clone(),
                            offset: self.offset,
                            max_record,
                        });
                    }
                    Cut::Unterminated(at) => {
                        return Err(Error::MalformedCsv {
                            path: self.path.clone(),
                            offset: self.offset + at as u64,
                        });
                    }
                    Cut::NeedMore => {
                        // Grow the window, doubling, up to the longest record plus its delimiter.
                        let limit = (max_record + 1).min(remaining.min(usize::MAX as u64) as usize);
                        want = (want.max(buf.len()) * 2).min(limit);
                        self.fill(&mut buf, want)?;
                    }
                }
            },
        };
        let data = buf.split_to(end).freeze();
        if self.len.is_none() {
            // A stream cannot be read again: what follows the chunk moves to the next one.
            self.carry.extend_from_slice(&buf);
            buf.clear();
        }
        let chunk = Chunk::new(data, self.index, self.offset, buf);
        self.offset += end as u64;
        self.index += 1;
        Ok(Some(chunk))
    }

    /// Whether `buf`, the bytes from the chunk's start, reaches the end of the input.
    fn at_eof(&self, buf: &BytesMut) -> bool {
        match self.len {
            Some(len) => self.offset + buf.len() as u64 >= len,
            None => self.eof,
        }
    }

    /// Reads until `buf` holds `want` bytes from the chunk's start, or a stream ends.
    fn fill<E>(&mut self, buf: &mut BytesMut, want: usize) -> Result<(), Error<E>> {
        if buf.capacity() < want {
            buf.reserve(want - buf.len());
        }
        while buf.len() < want && !self.eof {
            let at = self.offset + buf.len() as u64;
            let read = match self.len {
                Some(_) => read_at(&self.file, buf, want - buf.len(), at),
                None => read_next(&self.file, buf, want - buf.len()),
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
fn read_next(file: &File, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    use std::io::Read;
    let start = buf.len();
    buf.resize(start + max, 0);
    let mut reader = file;
    let n = loop {
        match reader.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    let n = n.inspect_err(|_| buf.truncate(start))?;
    buf.truncate(start + n);
    Ok(n)
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
        let mut reader = Reader::open::<()>(&path, &config, pool).unwrap();
        assert!(reader.next_chunk::<()>().unwrap().is_some());
        reader.file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
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
