//! What a run reads: a path, standard input, any reader, or bytes already in memory.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// An input to a run: the source of the bytes and the name that errors give it.
///
/// Made from a path (`&Path`, `PathBuf`, `&str`, `String`: every `run`-like method takes
/// `impl Into<Input>`), or with [`Input::stdin`], [`Input::file`], [`Input::reader`] or
/// [`Input::bytes`].
///
/// | source | how it is read | length known |
/// |---|---|---|
/// | a regular file | positional reads (`pread`) at explicit offsets, in parallel with the work | yes |
/// | a pipe, FIFO, socket, terminal, `/proc` file | sequential reads into the same bounded window | no |
/// | [`Input::stdin`], [`Input::file`] | as the file or stream it is (`< file` gets positional reads) | if a file |
/// | [`Input::reader`] | sequential reads through [`Read`] | no |
/// | [`Input::bytes`] | not read at all: chunks are slices of the buffer (no copy) | yes |
///
/// With `Config::decompress` (feature `compression`), a gzip or zstd input (recognised by
/// its magic bytes, whatever its name) is decoded on the way in and read as a stream.
pub struct Input {
    pub(crate) source: Source,
    pub(crate) name: PathBuf,
}

pub(crate) enum Source {
    Path(PathBuf),
    /// An open file (standard input): a regular file or a stream, decided when opening.
    File(File),
    Reader(Box<dyn Read + Send>),
    Bytes(Bytes),
}

impl Input {
    /// The file at `path` (a regular file, a FIFO, a device, a `/proc` file...).
    pub fn path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self { name: path.clone(), source: Source::Path(path) }
    }

    /// The process's standard input, named `-` in errors. On Unix the descriptor is duplicated,
    /// so a redirected regular file (`< file`) gets positional reads like a path.
    ///
    /// # Errors
    /// The `dup` failed (no descriptor left).
    pub fn stdin() -> io::Result<Self> {
        #[cfg(unix)]
        let source = {
            use std::os::fd::AsFd;
            Source::File(File::from(io::stdin().as_fd().try_clone_to_owned()?))
        };
        #[cfg(not(unix))]
        let source = Source::Reader(Box::new(io::stdin()));
        Ok(Self { name: PathBuf::from("-"), source })
    }

    /// An open file: a regular file (positional reads, which leave its cursor alone) or a
    /// stream (a pipe's or a socket's descriptor, read sequentially); `name` is what errors
    /// call it.
    pub fn file(name: impl Into<PathBuf>, file: File) -> Self {
        Self { name: name.into(), source: Source::File(file) }
    }

    /// Any reader, read sequentially; `name` is what errors call it.
    pub fn reader(name: impl Into<PathBuf>, reader: impl Read + Send + 'static) -> Self {
        Self { name: name.into(), source: Source::Reader(Box::new(reader)) }
    }

    /// Bytes already in memory (a `Vec<u8>`, a `&'static [u8]`, a `Bytes`...), named `<memory>`.
    /// Chunks are slices of them: nothing is read or copied.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self { name: PathBuf::from("<memory>"), source: Source::Bytes(bytes.into()) }
    }

    /// The name errors give the input: its path, `-` for standard input.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Renames the input, for errors.
    pub fn named(mut self, name: impl Into<PathBuf>) -> Self {
        self.name = name.into();
        self
    }

    /// The length, if known without reading: bytes in memory, or a regular file's size.
    pub(crate) fn len_hint(&self) -> Option<u64> {
        match &self.source {
            Source::Path(path) => {
                std::fs::metadata(path).ok().filter(|m| m.is_file() && m.len() > 0).map(|m| m.len())
            }
            Source::File(file) => {
                file.metadata().ok().filter(|m| m.is_file() && m.len() > 0).map(|m| m.len())
            }
            Source::Reader(_) => None,
            Source::Bytes(bytes) => Some(bytes.len() as u64),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::Path(_) => "path",
            Source::File(_) => "file",
            Source::Reader(_) => "reader",
            Source::Bytes(_) => "bytes",
        };
        f.debug_struct("Input").field("name", &self.name).field("source", &kind).finish()
    }
}

macro_rules! from_path {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Input {
            fn from(path: $ty) -> Self {
                Input::path(path)
            }
        }
    )*};
}

from_path!(PathBuf, &PathBuf, &Path, &str, String, &String);
