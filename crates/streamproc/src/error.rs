//! Errors.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// An invalid [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `chunk_size` is 0.
    ZeroChunkSize,
    /// `workers` is 0.
    ZeroWorkers,
    /// A record-aligned split whose longest record is below the chunk size (records up to a chunk
    /// are always accepted).
    MaxRecordBelowChunkSize {
        /// The longest record configured.
        max_record: usize,
        /// The chunk size.
        chunk_size: usize,
    },
    /// A chunk buffer this large cannot be allocated.
    ChunkTooLarge(usize),
    /// `workers + buffer` is above [`MAX_WINDOW`](crate::MAX_WINDOW) (or overflows).
    WindowTooLarge {
        /// The workers configured.
        workers: usize,
        /// The buffer configured.
        buffer: usize,
        /// The most chunks in flight allowed.
        max: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroChunkSize => f.write_str("chunk size must be at least 1 byte"),
            ConfigError::ZeroWorkers => f.write_str("at least one worker is needed"),
            ConfigError::MaxRecordBelowChunkSize { max_record, chunk_size } => write!(
                f,
                "the longest record ({max_record} bytes) must be at least the chunk size ({chunk_size} bytes)"
            ),
            ConfigError::ChunkTooLarge(n) => write!(f, "a chunk buffer of {n} bytes cannot be allocated"),
            ConfigError::WindowTooLarge { workers, buffer, max } => {
                write!(
                    f,
                    "{workers} workers and a buffer of {buffer} chunks exceed the limit of {max} chunks in flight"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a run failed. `E` is the error type of the per-chunk function.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// The file could not be opened (or its length read).
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A read failed.
    Read {
        /// The file.
        path: PathBuf,
        /// Where the failed read started.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// A record is longer than the configured maximum.
    RecordTooLong {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The longest record allowed.
        max_record: usize,
    },
    /// A CSV input ends inside a quoted field.
    MalformedCsv {
        /// The file.
        path: PathBuf,
        /// Where the unterminated quoted field opens.
        offset: u64,
    },
    /// The file's length changed while it was being read.
    FileChanged {
        /// The file.
        path: PathBuf,
        /// The length when the run started.
        expected: u64,
        /// The length seen later (for a file that shrank, where a read came up short).
        actual: u64,
    },
    /// The per-chunk function returned an error.
    Worker {
        /// The chunk's index.
        index: u64,
        /// The chunk's offset in the file.
        offset: u64,
        /// The function's error.
        error: E,
    },
    /// The per-chunk function panicked.
    Panicked {
        /// The chunk's index.
        index: u64,
        /// The chunk's offset in the file.
        offset: u64,
        /// The panic message, if it was a string.
        message: String,
    },
    /// The pipeline's threads ended before chunk `index` was read or handed out, without saying
    /// why (a thread was killed or panicked outside the per-chunk function): the results are
    /// incomplete.
    Disconnected {
        /// The first chunk missing.
        index: u64,
    },
    /// Writing results to the output failed ([`Processor::write_ordered`](crate::Processor::write_ordered)).
    Write {
        /// The cause.
        source: io::Error,
    },
    /// A worker thread could not be started.
    Spawn {
        /// The cause.
        source: io::Error,
    },
}

/// This layer's message only: the cause (an I/O error, the function's error) is the
/// [`source`](std::error::Error::source), for a reporter to print once.
impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open { path, .. } => write!(f, "cannot open {}", path.display()),
            Error::Read { path, offset, .. } => {
                write!(f, "cannot read {} at offset {offset}", path.display())
            }
            Error::RecordTooLong { path, offset, max_record } => write!(
                f,
                "{}: the record at offset {offset} is longer than the maximum of {max_record} bytes",
                path.display()
            ),
            Error::MalformedCsv { path, offset } => {
                write!(f, "{}: the quoted field at offset {offset} is never closed", path.display())
            }
            Error::FileChanged { path, expected, actual } => write!(
                f,
                "{} changed while being read: it was {expected} bytes, then {actual}",
                path.display()
            ),
            Error::Worker { index, offset, .. } => {
                write!(f, "processing chunk {index} (offset {offset}) failed")
            }
            Error::Panicked { index, offset, message } => {
                write!(f, "processing chunk {index} (offset {offset}) panicked: {message}")
            }
            Error::Disconnected { index } => {
                write!(
                    f,
                    "the pipeline stopped before chunk {index} without an error: the results are incomplete"
                )
            }
            Error::Write { .. } => f.write_str("cannot write the output"),
            Error::Spawn { .. } => f.write_str("cannot start a worker thread"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source }
            | Error::Spawn { source } => Some(source),
            Error::Worker { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<E> Error<E> {
    /// The index of the chunk whose processing failed, for worker errors and panics.
    pub fn chunk_index(&self) -> Option<u64> {
        match self {
            Error::Worker { index, .. } | Error::Panicked { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// Converts an error of a run whose function cannot fail into any error type.
    pub fn map_worker<F>(self, map: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Open { path, source } => Error::Open { path, source },
            Error::Read { path, offset, source } => Error::Read { path, offset, source },
            Error::RecordTooLong { path, offset, max_record } => {
                Error::RecordTooLong { path, offset, max_record }
            }
            Error::FileChanged { path, expected, actual } => Error::FileChanged { path, expected, actual },
            Error::MalformedCsv { path, offset } => Error::MalformedCsv { path, offset },
            Error::Worker { index, offset, error } => Error::Worker { index, offset, error: map(error) },
            Error::Panicked { index, offset, message } => Error::Panicked { index, offset, message },
            Error::Disconnected { index } => Error::Disconnected { index },
            Error::Write { source } => Error::Write { source },
            Error::Spawn { source } => Error::Spawn { source },
        }
    }
}
