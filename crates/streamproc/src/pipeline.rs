//! The pipeline under every run: one reader thread, the workers (threads of the run's own, scoped
//! threads, or jobs on a shared pool), and the caller's thread putting results back in order.
//!
//! # Implementation details
//!
//! ```text
//!            credits (bounded: workers + buffer)
//!   caller ─────────────────────────────────────────────► reader ──┐
//!     ▲  ▲                                                  │      │ marks: an input ended
//!     │  │ results, any order                               │      │ (maybe with its error),
//!     │  └───────────────────────────────── workers ◄───────┘      │ the run ended
//!     │                                          chunks (bounded)  │
//!     └────────────────────────────────────────────────────────────┘
//! ```
//!
//! Before reading a chunk the reader deposits a credit in a bounded channel, blocking when it is
//! full; the caller withdraws one each time it hands out a chunk's result (the reader withdraws
//! its own when the attempt found the input's end instead). So at most `workers + buffer` chunks
//! are read and not yet handed out, and chunk `k` is never read before chunk
//! `k - (workers + buffer)` has been handed out: the reorder window is a ring of that many slots
//! and memory does not depend on the input size or on how unevenly chunks take their time. Read
//! buffers come from an `objpool` buffer pool of the same size, so the steady state allocates no
//! buffer.
//!
//! Chunk indices run across the inputs of a run. The reader reports the end of each input as a
//! *mark* at the index of the next chunk, on a channel of its own (the reader's messages carry no
//! result type, so the reader thread needs nothing from the caller but the inputs). The caller
//! drains the marks before handing out the chunk at a mark's index: the reader sent the mark
//! before it read that chunk, so the mark is there by the time the chunk's result is.
//!
//! A failure to open or read an input ends that input, with its error in its place; the reader
//! goes on with the next input. A worker's error or panic stops the run, reported in its place in
//! order. Dropping the [`Results`] stops the run: the reader stops before its next read, and the
//! workers, which wait on the chunk channel and on a channel that `Results` holds the only sender
//! of, stop at once, even while the reader is blocked in a read (a scoped run returns then).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded, select};
use objpool::{BufferPool, BufferPoolBuilder};

use crate::chunk::Chunk;
use crate::config::{Config, Progress};
use crate::engine::Processed;
use crate::error::Error;
use crate::input::Input;
use crate::reader::Reader;

/// An input of a run: opened already (a run over one input opens it on the caller's thread, so
/// that its open error is the run's), or to be opened by the reader when its turn comes.
pub(crate) enum Pending {
    Open(Reader),
    Closed(Input),
}

/// What the reader tells the caller besides the chunks.
enum Mark {
    /// Input `input` ended before chunk `index`, maybe with an error.
    InputEnd { index: u64, input: usize, error: Option<Error<Infallible>> },
    /// The reader read `chunks` chunks in all and is done.
    End { chunks: u64 },
}

enum Failure<E> {
    Error(E),
    Panic(String),
}

/// A worker's result for one chunk.
struct Done<R, E> {
    index: u64,
    input: usize,
    offset: u64,
    len: usize,
    result: Result<R, Failure<E>>,
}

/// What a worker needs: the chunks to process, where results go, and the signal that the
/// caller is gone (the channel's disconnection; nothing is ever sent on it).
pub(crate) struct WorkerEnds<R, E> {
    chunks: Receiver<Chunk>,
    results: Sender<Done<R, E>>,
    gone: Receiver<Infallible>,
}

impl<R, E> Clone for WorkerEnds<R, E> {
    fn clone(&self) -> Self {
        Self { chunks: self.chunks.clone(), results: self.results.clone(), gone: self.gone.clone() }
    }
}

/// The run's buffer pool: one buffer per chunk in flight.
pub(crate) fn buffer_pool(config: &Config) -> BufferPool {
    BufferPoolBuilder::new(config.max_chunk_bytes())
        .max_size(config.max_chunks_in_memory())
        .build()
        .expect("a valid config gives a valid pool")
}

/// A started run: the caller's end and the workers' end.
pub(crate) type Started<R, E> = (Results<R, E>, WorkerEnds<R, E>);

/// Starts the reader thread over `inputs`; returns the caller's end and the workers' end, for
/// the caller to start the workers on.
pub(crate) fn start<R, E>(
    config: &Config,
    pool: BufferPool,
    inputs: Vec<Pending>,
    total: Option<u64>,
) -> Result<Started<R, E>, Error<E>> {
    let window = config.max_chunks_in_memory();
    let stop = Arc::new(AtomicBool::new(false));
    let (credit_tx, credit_rx) = bounded::<()>(window);
    let (chunk_tx, chunk_rx) = bounded::<Chunk>(config.buffer);
    let (result_tx, result_rx) = bounded::<Done<R, E>>(window);
    let (mark_tx, mark_rx) = bounded::<Mark>(window);
    // Capacity 1, not 0: blocking on a zero-capacity channel in a `select!` allocates.
    let (gone_tx, gone_rx) = bounded::<Infallible>(1);
    let reader = ReaderEnds {
        credits: credit_tx,
        own_credits: credit_rx.clone(),
        chunks: chunk_tx,
        marks: mark_tx,
        stop: Arc::clone(&stop),
    };
    let progress = config.progress.clone();
    let config = config.clone();
    thread::Builder::new()
        .name("streamproc-reader".into())
        .spawn(move || reader.read(inputs, &config, &pool))
        .map_err(|source| Error::Spawn { source })?;
    let results = Results {
        credits: credit_rx,
        results: result_rx,
        results_open: true,
        marks_rx: mark_rx,
        marks_open: true,
        marks: VecDeque::new(),
        slots: (0..window).map(|_| None).collect(),
        next: 0,
        end: None,
        done_bytes: 0,
        total,
        progress,
        stop,
        _gone: gone_tx,
        finished: false,
    };
    Ok((results, WorkerEnds { chunks: chunk_rx, results: result_tx, gone: gone_rx }))
}

struct ReaderEnds {
    credits: Sender<()>,
    /// To take back the credit of an attempt that found the end of an input.
    own_credits: Receiver<()>,
    chunks: Sender<Chunk>,
    marks: Sender<Mark>,
    stop: Arc<AtomicBool>,
}

impl ReaderEnds {
    fn read(self, inputs: Vec<Pending>, config: &Config, pool: &BufferPool) {
        let mut next_index = 0;
        for (number, input) in inputs.into_iter().enumerate() {
            let opened = match input {
                Pending::Open(reader) => Ok(reader),
                Pending::Closed(input) => Reader::open(input, number, config, pool.clone(), next_index),
            };
            let (index, error) = match opened {
                Ok(mut reader) => match self.read_input(&mut reader) {
                    Some(error) => (reader.next_index(), error),
                    None => return,
                },
                Err(error) => (next_index, Some(error)),
            };
            next_index = index;
            if self.marks.send(Mark::InputEnd { index, input: number, error }).is_err() {
                return;
            }
        }
        let _ = self.marks.send(Mark::End { chunks: next_index });
    }

    /// Sends the chunks of one input. `Some(error)` when the input ended (with an error or
    /// not); `None` when the run stopped.
    fn read_input(&self, reader: &mut Reader) -> Option<Option<Error<Infallible>>> {
        loop {
            // A credit per chunk: blocks while `workers + buffer` chunks are out.
            if self.credits.send(()).is_err() || self.stop.load(Ordering::Acquire) {
                return None;
            }
            let ended = match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    if self.chunks.send(chunk).is_err() {
                        return None;
                    }
                    continue;
                }
                Ok(None) => None,
                Err(error) => Some(error),
            };
            // No chunk came of this credit: take it back (it is there, as nobody withdraws
            // more credits than chunks handed out).
            let _ = self.own_credits.try_recv();
            return Some(ended);
        }
    }
}

/// A worker: processes chunks until the reader is done or the caller is gone.
pub(crate) fn work<R, E, F>(ends: &WorkerEnds<R, E>, f: &F)
where
    F: Fn(&Chunk) -> Result<R, E> + ?Sized,
{
    loop {
        let chunk = select! {
            recv(ends.chunks) -> chunk => match chunk {
                Ok(chunk) => chunk,
                Err(_) => return,
            },
            recv(ends.gone) -> _ => return,
        };
        let result = match catch_unwind(AssertUnwindSafe(|| f(&chunk))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(panic) => Err(Failure::Panic(panic_message(&*panic))),
        };
        let done = Done {
            index: chunk.index(),
            input: chunk.input(),
            offset: chunk.offset(),
            len: chunk.len(),
            result,
        };
        // The chunk (and its buffer) goes back before the result is sent.
        drop(chunk);
        if ends.results.send(done).is_err() {
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

/// What the caller gets next, in order.
pub(crate) enum Event<R, E> {
    Chunk(Processed<R>),
    /// An input ended, with its error if it failed (the run goes on).
    InputEnd {
        input: usize,
        error: Option<Error<E>>,
    },
    /// The run stopped: a worker failed or panicked, or the pipeline vanished.
    Failed(Error<E>),
}

/// A result waiting for its turn: offset, input, length and outcome.
type Arrived<R, E> = (u64, usize, usize, Result<R, Failure<E>>);

/// The results of a run, in input order; from [`Processor::run`](crate::Processor::run) and
/// [`Processor::run_many`](crate::Processor::run_many).
///
/// Each item is a chunk's result, or the error of an input that could not be opened or read
/// (which ends that input; the run goes on with the next one), or the error that stopped the run
/// (a worker's error or panic, after which the iterator ends). Dropping it stops the run: no
/// chunk is read after that, and the workers stop after the chunk they are on.
pub struct Results<R, E> {
    credits: Receiver<()>,
    results: Receiver<Done<R, E>>,
    results_open: bool,
    marks_rx: Receiver<Mark>,
    marks_open: bool,
    /// Input ends received, in order: (index of the next chunk, input, error).
    marks: VecDeque<(u64, usize, Option<Error<Infallible>>)>,
    /// Results that arrived ahead of their turn, at `index % window`.
    slots: Box<[Option<Arrived<R, E>>]>,
    next: u64,
    /// The chunk count, once the reader has finished.
    end: Option<u64>,
    done_bytes: u64,
    total: Option<u64>,
    progress: Option<Progress>,
    stop: Arc<AtomicBool>,
    /// Dropped with `self`: its disconnection tells the workers to stop.
    _gone: Sender<Infallible>,
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
    /// The inputs' length, if it was known before reading them (not for a pipe or another
    /// stream, nor a compressed input).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    fn finish(&mut self) {
        self.finished = true;
        self.stop.store(true, Ordering::Release);
    }

    fn record(&mut self, mark: Mark) {
        match mark {
            Mark::InputEnd { index, input, error } => self.marks.push_back((index, input, error)),
            Mark::End { chunks } => self.end = Some(chunks),
        }
    }

    fn drain_marks(&mut self) {
        while self.marks_open {
            match self.marks_rx.try_recv() {
                Ok(mark) => self.record(mark),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => self.marks_open = false,
            }
        }
    }

    /// The next event in order, `None` once the run is over.
    pub(crate) fn next_event(&mut self) -> Option<Event<R, E>> {
        if self.finished {
            return None;
        }
        let window = self.slots.len() as u64;
        loop {
            // The reader sent the mark at `next` before it read chunk `next`: drained now, it is
            // here if chunk `next`'s result is.
            self.drain_marks();
            if self.marks.front().is_some_and(|(at, ..)| *at == self.next) {
                let (_, input, error) = self.marks.pop_front().expect("checked above");
                return Some(Event::InputEnd {
                    input,
                    error: error.map(|e| e.map_worker(|never| match never {})),
                });
            }
            let slot = (self.next % window) as usize;
            if let Some((offset, input, len, result)) = self.slots[slot].take() {
                let index = self.next;
                self.next += 1;
                // Hand the credit back: the reader may read one chunk more.
                let _ = self.credits.try_recv();
                self.done_bytes += len as u64;
                if let Some(progress) = &self.progress {
                    progress(self.done_bytes, self.total);
                }
                return Some(match result {
                    Ok(value) => Event::Chunk(Processed { index, input, offset, len, value }),
                    Err(failure) => {
                        self.finish();
                        Event::Failed(match failure {
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
            let received = match (self.results_open, self.marks_open) {
                (true, true) => select! {
                    recv(self.results) -> done => Some(done),
                    recv(self.marks_rx) -> mark => {
                        match mark {
                            Ok(mark) => self.record(mark),
                            Err(_) => self.marks_open = false,
                        }
                        None
                    }
                },
                (true, false) => Some(self.results.recv()),
                (false, true) => {
                    match self.marks_rx.recv() {
                        Ok(mark) => self.record(mark),
                        Err(_) => self.marks_open = false,
                    }
                    None
                }
                (false, false) => {
                    // Every thread is gone without an end message (a thread was killed, or
                    // panicked outside the per-chunk function): the results are incomplete, and
                    // ending quietly would pass them off as whole.
                    self.finish();
                    return Some(Event::Failed(Error::Disconnected { index: self.next }));
                }
            };
            match received {
                Some(Ok(Done { index, input, offset, len, result })) => {
                    debug_assert!(index >= self.next && index < self.next + window);
                    self.slots[(index % window) as usize] = Some((offset, input, len, result));
                }
                Some(Err(_)) => self.results_open = false,
                None => {}
            }
        }
    }
}

impl<R, E> Iterator for Results<R, E> {
    type Item = Result<Processed<R>, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            return match self.next_event()? {
                Event::Chunk(processed) => Some(Ok(processed)),
                Event::InputEnd { error: None, .. } => continue,
                Event::InputEnd { error: Some(error), .. } | Event::Failed(error) => Some(Err(error)),
            };
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
        let config = Config::new().chunk_size(8).workers(1).buffer(1);
        let (mut results, ends) = start::<u32, ()>(&config, buffer_pool(&config), Vec::new(), None).unwrap();
        // A reader with no inputs ends at once; replace its channel by one that vanishes.
        let (mark_tx, mark_rx) = bounded(1);
        results.marks_rx = mark_rx;
        drop(mark_tx);
        ends.results.send(Done { index: 0, input: 0, offset: 0, len: 1, result: Ok(7) }).unwrap();
        drop(ends);
        assert_eq!(results.next().unwrap().unwrap().value, 7);
        assert!(matches!(results.next(), Some(Err(Error::Disconnected { index: 1 }))));
        assert!(results.next().is_none());
    }
}
