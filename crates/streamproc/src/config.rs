//! How a file is cut and processed.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;

/// The most chunks a run may have in flight (`workers + buffer`): its reorder ring and channels
/// are allocated up front, so an absurd setting is refused rather than allocating gigabytes.
pub const MAX_WINDOW: usize = 1 << 16;

/// How chunk boundaries are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Chunks of exactly `chunk_size` bytes (the last one shorter).
    Fixed,
    /// Chunks that end just after a delimiter, so that no record is cut: each chunk holds whole
    /// records (the last chunk of a file may end without a delimiter).
    Records {
        /// The byte that ends a record (`b'\n'` for lines).
        delimiter: u8,
        /// The longest record allowed, delimiter excluded; at least `chunk_size`. A chunk grows
        /// beyond `chunk_size` to hold a record up to this length; a longer record is
        /// [`Error::RecordTooLong`](crate::Error::RecordTooLong).
        max_record: usize,
    },
    /// Chunks of whole CSV records (RFC 4180): like `Records` with the newline as delimiter, but
    /// a newline inside a quoted field does not end a record, so a chunk never ends inside a
    /// quoted field. The reader scans every chunk for quotes (on its one thread). A quoted field
    /// left open at the end of the input is [`Error::MalformedCsv`](crate::Error::MalformedCsv).
    Csv {
        /// The field separator (`b','`).
        delimiter: u8,
        /// The quote character (`b'"'`).
        quote: u8,
        /// The longest record allowed, as for `Records`.
        max_record: usize,
    },
}

/// A progress callback: bytes done (in file order) and the input's length, if known (`None` for
/// a pipe or another stream).
pub type Progress = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// The settings of a [`Processor`](crate::Processor).
///
/// ```
/// let config = streamproc::Config::new().chunk_size(1 << 20).workers(4).buffer(10).lines();
/// assert_eq!(config.max_chunks_in_memory(), 14);
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) chunk_size: usize,
    pub(crate) workers: usize,
    pub(crate) buffer: usize,
    pub(crate) split: Split,
    pub(crate) progress: Option<Progress>,
    #[cfg(feature = "compression")]
    pub(crate) decompress: bool,
    #[cfg(feature = "rayon")]
    pub(crate) thread_pool: Option<Arc<rayon::ThreadPool>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("chunk_size", &self.chunk_size)
            .field("workers", &self.workers)
            .field("buffer", &self.buffer)
            .field("split", &self.split)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// 1 MiB chunks, 4 workers, a buffer of 10 chunks, fixed-size split.
    pub fn new() -> Self {
        Self {
            chunk_size: 1 << 20,
            workers: 4,
            buffer: 10,
            split: Split::Fixed,
            progress: None,
            #[cfg(feature = "compression")]
            decompress: false,
            #[cfg(feature = "rayon")]
            thread_pool: None,
        }
    }

    /// Bytes per chunk (record-aligned chunks may be shorter, or longer up to the longest record).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Worker threads.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Chunks that may wait, read but not yet processed or processed but not yet consumed,
    /// beyond one per worker.
    pub fn buffer(mut self, chunks: usize) -> Self {
        self.buffer = chunks;
        self
    }

    /// The split mode.
    pub fn split(mut self, split: Split) -> Self {
        self.split = split;
        self
    }

    /// Chunks of whole CSV records (`,` and `"`), a record at most `chunk_size` long.
    pub fn csv(self) -> Self {
        let max_record = self.chunk_size;
        self.split(Split::Csv { delimiter: b',', quote: b'"', max_record })
    }

    /// Record-aligned chunks of newline-terminated lines, a line at most `chunk_size` long.
    pub fn lines(self) -> Self {
        let max_record = self.chunk_size;
        self.split(Split::Records { delimiter: b'\n', max_record })
    }

    /// Calls `progress(bytes_done, total)` each time a chunk's result is handed out.
    pub fn on_progress(mut self, progress: impl Fn(u64, Option<u64>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// Decodes gzip and zstd inputs (feature `compression`), recognised by their magic bytes
    /// whatever their name: a compressed input is read as a stream of its decoded bytes, so
    /// offsets, chunks and records are those of the decoded text. Default off: a run sees the
    /// bytes as stored (a checksum of a `.gz` file is the file's).
    #[cfg(feature = "compression")]
    pub fn decompress(mut self, decompress: bool) -> Self {
        self.decompress = decompress;
        self
    }

    /// Runs the workers as jobs on `pool` (feature `rayon`) instead of threads of their own, so
    /// that a service running many jobs does not start threads for each. `workers` jobs are
    /// queued per run; each holds a pool thread until its run ends (it blocks waiting for
    /// chunks), so size the pool for the runs that go on at once. The reader stays a thread of
    /// the run's own. Do not consume a run's results from a thread of the same pool while every
    /// other thread of it is busy: its workers would wait for a free thread forever.
    #[cfg(feature = "rayon")]
    pub fn thread_pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.thread_pool = Some(pool);
        self
    }

    /// The most chunks that exist at once: `workers + buffer` (at most [`MAX_WINDOW`]). Each holds at most
    /// [`max_chunk_bytes`](Self::max_chunk_bytes), so a run's chunk memory is bounded by
    /// `(workers + buffer) x max_chunk_bytes`, whatever the file size.
    pub fn max_chunks_in_memory(&self) -> usize {
        self.workers.saturating_add(self.buffer)
    }

    /// The largest chunk buffer: `chunk_size`, or `max_record + 1` for record-aligned chunks if larger.
    pub fn max_chunk_bytes(&self) -> usize {
        match self.split {
            Split::Fixed => self.chunk_size,
            Split::Records { max_record, .. } | Split::Csv { max_record, .. } => {
                self.chunk_size.max(max_record.saturating_add(1))
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.chunk_size == 0 {
            return Err(ConfigError::ZeroChunkSize);
        }
        if self.workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        if let Split::Records { max_record, .. } | Split::Csv { max_record, .. } = self.split {
            if max_record < self.chunk_size {
                return Err(ConfigError::MaxRecordBelowChunkSize { max_record, chunk_size: self.chunk_size });
            }
        }
        if self.max_chunk_bytes() > isize::MAX as usize / 2 {
            return Err(ConfigError::ChunkTooLarge(self.max_chunk_bytes()));
        }
        // The reorder ring and the channels are sized by the window when a run starts.
        if self.workers.checked_add(self.buffer).is_none_or(|window| window > MAX_WINDOW) {
            return Err(ConfigError::WindowTooLarge {
                workers: self.workers,
                buffer: self.buffer,
                max: MAX_WINDOW,
            });
        }
        Ok(())
    }
}
