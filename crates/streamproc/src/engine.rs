//! The pipeline: one reader thread, `workers` worker threads, and the caller's thread putting
//! results back in file order.
//!
//! # Implementation details
//!
//! ```text
//!            credits (bounded: workers + buffer)
//!   caller ─────────────────────────────────────────────► reader
//!     ▲                                                     │ chunks (bounded: buffer)
//!     │ results, any order                                  ▼
//!     └──────────────────────────────────────────────── workers
//! ```
//!
//! Before reading a chunk the reader deposits a credit in a bounded channel, blocking when it is
//! full; the caller withdraws one each time it hands out a result. So at most `workers + buffer`
//! chunks are read and not yet handed out, and chunk `k` is never read before chunk
//! `k - (workers + buffer)` has been handed out: the reorder window is a ring of that many slots and
//! memory does not depend on the file size or on how unevenly chunks take their time. The read
//! buffers come from an `objpool` buffer pool of the same size, so the steady state allocates no
//! buffer.
//!
//! A failure stops the run: the reader stops at once on a read error (reported after the chunks
//! before it), and a worker's error or panic is reported in its place in file order, after which the
//! iterator ends and the threads wind down. Dropping the iterator disconnects the channels: the
//! reader stops before its next read and the workers after their current chunk.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded};
use objpool::BufferPoolBuilder;

use crate::chunk::Chunk;
use crate::config::{Config, Progress};
use crate::error::{ConfigError, Error};
use crate::reader::Reader;

/// Processes files in chunks, in parallel, in bounded memory.
///
/// ```
/// use std::io::Write;
/// use streamproc::{Config, Processor};
///
/// let mut file = tempfile::NamedTempFile::new()?;
/// file.write_all(b"one\ntwo\nthree\n")?;
/// let processor = Processor::new(Config::new().chunk_size(8).workers(2).lines())?;
/// let lines = processor.fold(
///     file.path(),
///     |chunk| Ok::<_, std::convert::Infallible>(memchr::memchr_iter(b'\n', chunk.data()).count()),
///     0,
///     |total, n| total + n,
/// )?;
/// assert_eq!(lines, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Processor {
    config: Config,
}

/// One chunk's result, handed out in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed<R> {
    /// The chunk's index.
    pub index: u64,
    /// The chunk's offset in the file.
    pub offset: u64,
    /// The chunk's length.
    pub len: usize,
    /// What the function returned for it.
    pub value: R,
}

enum Failure<E> {
    Error(E),
    Panic(String),
}

/// A result waiting for its turn: offset, length and outcome.
type Arrived<R, E> = (u64, usize, Result<R, Failure<E>>);

enum Message<R, E> {
    Done {
        index: u64,
        offset: u64,
        len: usize,
        result: Result<R, Failure<E>>,
    },
    /// The reader failed before reading chunk `index`.
    Stopped {
        index: u64,
        error: Error<E>,
    },
    /// The reader read `chunks` chunks and the file did not change.
    End {
        chunks: u64,
    },
}

impl Processor {
    /// A processor with the given settings.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero chunk size or worker count, or a longest record below the chunk size.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts processing `path`: `f` runs on each chunk on the worker threads; the results come
    /// back through the returned iterator in file order. `path` may be a regular file, read with
    /// positional reads, or a stream (a pipe, a FIFO, `/dev/stdin`, a `/proc` file), read
    /// sequentially into the same bounded window.
    ///
    /// # Errors
    /// [`Error::Open`] if the file cannot be opened; [`Error::Spawn`] if a thread cannot start.
    /// Later failures come through the iterator.
    pub fn run<R, E, F>(&self, path: impl AsRef<Path>, f: F) -> Result<Results<R, E>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let window = self.config.max_chunks_in_memory();
        let pool = BufferPoolBuilder::new(self.config.max_chunk_bytes())
            .max_size(window)
            .build()
            .expect("a valid config gives a valid pool");
        let mut reader = Reader::open(path.as_ref(), &self.config, pool)?;
        let total = reader.len();
        let stop = Arc::new(AtomicBool::new(false));
        let (credit_tx, credit_rx) = bounded::<()>(window);
        let (chunk_tx, chunk_rx) = bounded::<Chunk>(self.config.buffer);
        let (result_tx, result_rx) = bounded::<Message<R, E>>(window + 1);
        let spawn_err = |source| Error::Spawn { source };

        let f = Arc::new(f);
        for w in 0..self.config.workers {
            let (chunk_rx, result_tx, f) = (chunk_rx.clone(), result_tx.clone(), Arc::clone(&f));
            thread::Builder::new()
                .name(format!("streamproc-worker-{w}"))
                .spawn(move || work(&chunk_rx, &result_tx, &*f))
                .map_err(spawn_err)?;
        }
        drop(chunk_rx);
        let reader_stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("streamproc-reader".into())
            .spawn(move || read(&mut reader, &credit_tx, &chunk_tx, &result_tx, &reader_stop))
            .map_err(spawn_err)?;

        Ok(Results {
            credits: credit_rx,
            results: result_rx,
            slots: (0..window).map(|_| None).collect(),
            next: 0,
            end: None,
            stopped: None,
            done_bytes: 0,
            total,
            progress: self.config.progress.clone(),
            stop,
            finished: false,
        })
    }

    /// Runs `map` on every chunk and folds the results in file order.
    ///
    /// # Errors
    /// The run's first failure.
    pub fn fold<R, E, A, F>(
        &self,
        path: impl AsRef<Path>,
        map: F,
        init: A,
        mut fold: impl FnMut(A, R) -> A,
    ) -> Result<A, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let mut acc = init;
        for item in self.run(path, map)? {
            acc = fold(acc, item?.value);
        }
        Ok(acc)
    }

    /// Runs `map` on every chunk and combines the results in file order with `reduce`; `None` for an
    /// empty file.
    ///
    /// # Errors
    /// The run's first failure.
    pub fn reduce<R, E, F>(
        &self,
        path: impl AsRef<Path>,
        map: F,
        mut reduce: impl FnMut(R, R) -> R,
    ) -> Result<Option<R>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        self.fold(path, map, None, |acc, r| {
            Some(match acc {
                None => r,
                Some(a) => reduce(a, r),
            })
        })
    }

    /// Transforms every chunk with `transform` and writes the outputs to `out` in file order;
    /// returns the bytes written.
    ///
    /// # Errors
    /// The run's first failure, or [`Error::Write`].
    pub fn write_ordered<T, E, F>(
        &self,
        path: impl AsRef<Path>,
        transform: F,
        mut out: impl std::io::Write,
    ) -> Result<u64, Error<E>>
    where
        F: Fn(&Chunk) -> Result<T, E> + Send + Sync + 'static,
        T: AsRef<[u8]> + Send + 'static,
        E: Send + 'static,
    {
        let mut written = 0u64;
        for item in self.run(path, transform)? {
            let bytes = item?.value;
            out.write_all(bytes.as_ref()).map_err(|source| Error::Write { source })?;
            written += bytes.as_ref().len() as u64;
        }
        out.flush().map_err(|source| Error::Write { source })?;
        Ok(written)
    }
}

fn read<R, E>(
    reader: &mut Reader,
    credits: &Sender<()>,
    chunks: &Sender<Chunk>,
    results: &Sender<Message<R, E>>,
    stop: &AtomicBool,
) {
    loop {
        // A credit per chunk: blocks while `workers + buffer` chunks are out.
        if credits.send(()).is_err() || stop.load(Ordering::Acquire) {
            return;
        }
        match reader.next_chunk::<E>() {
            Ok(Some(chunk)) => {
                if chunks.send(chunk).is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = results.send(Message::End { chunks: reader.chunks_read() });
                return;
            }
            Err(error) => {
                let _ = results.send(Message::Stopped { index: reader.chunks_read(), error });
                return;
            }
        }
    }
}

fn work<R, E, F>(chunks: &Receiver<Chunk>, results: &Sender<Message<R, E>>, f: &F)
where
    F: Fn(&Chunk) -> Result<R, E>,
{
    while let Ok(chunk) = chunks.recv() {
        let result = match catch_unwind(AssertUnwindSafe(|| f(&chunk))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(panic) => Err(Failure::Panic(panic_message(&*panic))),
        };
        let message =
            Message::Done { index: chunk.index(), offset: chunk.offset(), len: chunk.len(), result };
        // The chunk (and its buffer) goes back before the result is sent.
        drop(chunk);
        if results.send(message).is_err() {
            return;
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string())
}

/// The results of a run, in file order; from [`Processor::run`].
///
/// Dropping it stops the run: no chunk is read after that, and the workers stop after the chunk they
/// are on.
pub struct Results<R, E> {
    credits: Receiver<()>,
    results: Receiver<Message<R, E>>,
    /// Results that arrived ahead of their turn, at `index % window`.
    slots: Box<[Option<Arrived<R, E>>]>,
    next: u64,
    /// The chunk count, once the reader has finished.
    end: Option<u64>,
    /// A reader failure, to report once every chunk before it is out.
    stopped: Option<(u64, Error<E>)>,
    done_bytes: u64,
    total: Option<u64>,
    progress: Option<Progress>,
    stop: Arc<AtomicBool>,
    finished: bool,
}

impl<R, E> std::fmt::Debug for Results<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("next", &self.next)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<R, E> Results<R, E> {
    /// The input's length, if it was known before reading it (not for a pipe or another stream).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    fn finish(&mut self) {
        self.finished = true;
        self.stop.store(true, Ordering::Release);
    }
}

impl<R, E> Iterator for Results<R, E> {
    type Item = Result<Processed<R>, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let window = self.slots.len() as u64;
        loop {
            let slot = (self.next % window) as usize;
            if let Some((offset, len, result)) = self.slots[slot].take() {
                let index = self.next;
                self.next += 1;
                // Hand the credit back: the reader may read one chunk more.
                let _ = self.credits.try_recv();
                self.done_bytes = offset + len as u64;
                if let Some(progress) = &self.progress {
                    progress(self.done_bytes, self.total);
                }
                return Some(match result {
                    Ok(value) => Ok(Processed { index, offset, len, value }),
                    Err(failure) => {
                        self.finish();
                        Err(match failure {
                            Failure::Error(error) => Error::Worker { index, offset, error },
                            Failure::Panic(message) => Error::Panicked { index, offset, message },
                        })
                    }
                });
            }
            if self.end == Some(self.next) {
                self.finish();
                return None;
            }
            if self.stopped.as_ref().is_some_and(|(at, _)| *at == self.next) {
                self.finish();
                return self.stopped.take().map(|(_, e)| Err(e));
            }
            match self.results.recv() {
                Ok(Message::Done { index, offset, len, result }) => {
                    debug_assert!(index >= self.next && index < self.next + window);
                    self.slots[(index % window) as usize] = Some((offset, len, result));
                }
                Ok(Message::End { chunks }) => self.end = Some(chunks),
                Ok(Message::Stopped { index, error }) => self.stopped = Some((index, error)),
                Err(_) => {
                    // Every thread is gone without an end message (a thread was killed, or
                    // panicked outside the per-chunk function): the results are incomplete, and
                    // ending quietly would pass them off as whole.
                    self.finish();
                    return Some(Err(Error::Disconnected { index: self.next }));
                }
            }
        }
    }
}

impl<R, E> std::iter::FusedIterator for Results<R, E> {}

impl<R, E> Drop for Results<R, E> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread gone without an end message: the iterator reports the missing chunk instead
    /// of ending as if the input were complete.
    #[test]
    fn a_pipeline_that_vanishes_is_an_error_not_an_end() {
        let (_credits_tx, credits) = bounded::<()>(2);
        let (result_tx, results) = bounded::<Message<u32, ()>>(3);
        result_tx.send(Message::Done { index: 0, offset: 0, len: 1, result: Ok(7) }).unwrap();
        drop(result_tx);
        let mut results = Results {
            credits,
            results,
            slots: (0..2).map(|_| None).collect(),
            next: 0,
            end: None,
            stopped: None,
            done_bytes: 0,
            total: None,
            progress: None,
            stop: Arc::new(AtomicBool::new(false)),
            finished: false,
        };
        assert_eq!(results.next().unwrap().unwrap().value, 7);
        assert!(matches!(results.next(), Some(Err(Error::Disconnected { index: 1 }))));
        assert!(results.next().is_none());
    }
}
