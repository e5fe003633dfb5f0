//! The public face of a run: [`Processor`] and its ways to consume results. The pipeline itself
//! (threads, channels, the reorder window) is in [`pipeline`](crate::pipeline).
//!
//! # Where the work runs
//!
//! [`Processor::run`] and [`Processor::run_many`] return an iterator that outlives the call, so
//! their function is `'static` and their workers are threads of their own (or jobs on the
//! [`Config::thread_pool`] pool). The methods that consume the results before returning
//! ([`fold`](Processor::fold), [`fold_each`](Processor::fold_each), [`reduce`](Processor::reduce),
//! [`write_ordered`](Processor::write_ordered), [`scope`](Processor::scope)) take a function that
//! may borrow from the caller: their workers are scoped threads (or scoped jobs on the pool) that
//! end before the method returns. The reader is always a thread of the run's own: a reader queued
//! on a busy pool behind workers that wait for it would never run.

use std::convert::Infallible;
use std::sync::Arc;
use std::thread;

use crate::chunk::Chunk;
use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::input::Input;
use crate::pipeline::{self, Event, Pending, Results, WorkerEnds};
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

/// One chunk's result, handed out in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed<R> {
    /// The chunk's index (counted across the inputs of a run over several).
    pub index: u64,
    /// Which input the chunk comes from (its position in the inputs; 0 for a run over one).
    pub input: usize,
    /// The chunk's offset in its input.
    pub offset: u64,
    /// The chunk's length.
    pub len: usize,
    /// What the function returned for it.
    pub value: R,
}

fn never<E>(error: Error<Infallible>) -> Error<E> {
    error.map_worker(|never| match never {})
}

impl Processor {
    /// A processor with the given settings.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero chunk size or worker count, a longest record below the chunk
    /// size, or a window or chunk too large to allocate.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Opens one input on the caller's thread, so that its open error is the call's.
    fn open_one<E>(&self, input: impl Into<Input>) -> Result<(Vec<Pending>, Option<u64>), Error<E>> {
        let pool = pipeline::buffer_pool(&self.config);
        let reader = Reader::open(input.into(), 0, &self.config, pool, 0).map_err(never)?;
        let total = reader.len();
        Ok((vec![Pending::Open(reader)], total))
    }

    /// Several inputs, opened by the reader in turn.
    fn pending(inputs: impl IntoIterator<Item = impl Into<Input>>) -> (Vec<Pending>, Option<u64>) {
        let inputs: Vec<Input> = inputs.into_iter().map(Into::into).collect();
        let total = inputs.iter().map(Input::len_hint).sum::<Option<u64>>();
        (inputs.into_iter().map(Pending::Closed).collect(), total)
    }

    /// Starts processing `input` (a path, or any [`Input`]): `f` runs on each chunk on the
    /// worker threads; the results come back through the returned iterator in order. A regular
    /// file is read with positional reads; a pipe, a FIFO, standard input, a `/proc` file or a
    /// reader is read sequentially into the same bounded window.
    ///
    /// # Errors
    /// [`Error::Open`] if the input cannot be opened; [`Error::Spawn`] if a thread cannot start.
    /// Later failures come through the iterator.
    pub fn run<R, E, F>(&self, input: impl Into<Input>, f: F) -> Result<Results<R, E>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let (inputs, total) = self.open_one(input)?;
        self.detached(inputs, total, f)
    }

    /// Like [`run`](Self::run) over several inputs in one pipeline, one after another, as `wc`
    /// and `rg` read their files: results in order (each [`Processed::input`] says whose), the
    /// workers kept busy across the boundaries. An input that cannot be opened or read yields its
    /// error in its place and the run goes on with the next one; a worker's error or panic stops
    /// the run. Inputs are opened when their turn comes.
    ///
    /// # Errors
    /// [`Error::Spawn`] if a thread cannot start.
    pub fn run_many<R, E, F>(
        &self,
        inputs: impl IntoIterator<Item = impl Into<Input>>,
        f: F,
    ) -> Result<Results<R, E>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let (inputs, total) = Self::pending(inputs);
        self.detached(inputs, total, f)
    }

    /// A run whose workers outlive the call: threads of their own, or jobs on the shared pool.
    fn detached<R, E, F>(
        &self,
        inputs: Vec<Pending>,
        total: Option<u64>,
        f: F,
    ) -> Result<Results<R, E>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let (results, ends) =
            pipeline::start(&self.config, pipeline::buffer_pool(&self.config), inputs, total)?;
        let f = Arc::new(f);
        for w in 0..self.config.workers {
            let (ends, f) = (ends.clone(), Arc::clone(&f));
            let job = move || pipeline::work(&ends, &*f);
            #[cfg(feature = "rayon")]
            if let Some(pool) = &self.config.thread_pool {
                pool.spawn(job);
                continue;
            }
            thread::Builder::new()
                .name(format!("streamproc-worker-{w}"))
                .spawn(job)
                .map_err(|source| Error::Spawn { source })?;
        }
        Ok(results)
    }

    /// Runs `f` on every chunk of `input` and hands the results, in order, to `consume`, which
    /// returns when it has seen enough; the run stops then. Unlike [`run`](Self::run), `f`
    /// may borrow from the caller: the workers are scoped and have ended when this returns.
    ///
    /// ```
    /// use streamproc::{Config, Input, Processor};
    ///
    /// let needle = String::from("b"); // borrowed by the workers, not moved
    /// let processor = Processor::new(Config::new().chunk_size(2).workers(2).lines())?;
    /// let first = processor.scope(
    ///     Input::bytes(&b"a\nb\nc\nb\n"[..]),
    ///     |chunk| Ok::<_, std::convert::Infallible>(chunk.data().starts_with(needle.as_bytes())),
    ///     |results| results.map(|r| r.map(|p| p.value)).position(|hit| hit.unwrap_or(false)),
    /// )?;
    /// assert_eq!(first, Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`] if the input cannot be opened; [`Error::Spawn`] if a thread cannot start.
    pub fn scope<R, E, F, T>(
        &self,
        input: impl Into<Input>,
        f: F,
        consume: impl FnOnce(&mut Results<R, E>) -> T,
    ) -> Result<T, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        let (inputs, total) = self.open_one(input)?;
        self.scoped(inputs, total, &f, consume)
    }

    /// Like [`scope`](Self::scope) over several inputs in one pipeline, as
    /// [`run_many`](Self::run_many) reads them: an input that cannot be opened or read yields its
    /// error in its place and the run goes on.
    ///
    /// # Errors
    /// [`Error::Spawn`] if a thread cannot start.
    pub fn scope_many<R, E, F, T>(
        &self,
        inputs: impl IntoIterator<Item = impl Into<Input>>,
        f: F,
        consume: impl FnOnce(&mut Results<R, E>) -> T,
    ) -> Result<T, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        let (inputs, total) = Self::pending(inputs);
        self.scoped(inputs, total, &f, consume)
    }

    /// A run whose workers borrow `f` and end before this returns.
    fn scoped<R, E, F, T>(
        &self,
        inputs: Vec<Pending>,
        total: Option<u64>,
        f: &F,
        consume: impl FnOnce(&mut Results<R, E>) -> T,
    ) -> Result<T, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        let (mut results, ends) =
            pipeline::start(&self.config, pipeline::buffer_pool(&self.config), inputs, total)?;
        let workers = self.config.workers;
        // `results` is dropped (stopping the workers) before the scope waits for them, also when
        // `consume` panics or a worker cannot start.
        #[cfg(feature = "rayon")]
        if let Some(pool) = &self.config.thread_pool {
            return pool.in_place_scope(move |s| {
                for _ in 0..workers {
                    let ends = ends.clone();
                    s.spawn(move |_| pipeline::work(&ends, f));
                }
                drop(ends);
                Ok(consume(&mut results))
            });
        }
        thread::scope(move |s| {
            spawn_scoped(s, workers, &ends, f).map_err(|source| Error::Spawn { source })?;
            drop(ends);
            Ok(consume(&mut results))
        })
    }

    /// Runs `map` on every chunk and folds the results in order. `map` may borrow from the
    /// caller.
    ///
    /// # Errors
    /// The run's first failure.
    pub fn fold<R, E, A, F>(
        &self,
        input: impl Into<Input>,
        map: F,
        init: A,
        mut fold: impl FnMut(A, R) -> A,
    ) -> Result<A, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        self.scope(input, map, |results| {
            let mut acc = init;
            for item in results {
                acc = fold(acc, item?.value);
            }
            Ok(acc)
        })?
    }

    /// Folds each of several inputs on its own, in one pipeline (see
    /// [`run_many`](Self::run_many)): one result per input, in order, as `wc` prints one line
    /// per file. An input that cannot be opened or read gets its error and the others their
    /// folds; `map` may borrow from the caller.
    ///
    /// ```
    /// use streamproc::{Config, Input, Processor};
    ///
    /// let processor = Processor::new(Config::new().chunk_size(4).workers(2).lines())?;
    /// let lines = processor.fold_each(
    ///     [Input::bytes(&b"a\nb\n"[..]), Input::path("/no/such/file"), Input::bytes(&b"c\n"[..])],
    ///     |chunk| Ok::<_, std::convert::Infallible>(chunk.data().iter().filter(|&&b| b == b'\n').count()),
    ///     || 0,
    ///     |total, n| total + n,
    /// )?;
    /// assert_eq!(lines[0].as_ref().ok(), Some(&2));
    /// assert!(lines[1].is_err());
    /// assert_eq!(lines[2].as_ref().ok(), Some(&1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A failure that stops the whole run: a worker's error or panic, or a thread that cannot
    /// start.
    #[allow(clippy::type_complexity)]
    pub fn fold_each<R, E, A, F>(
        &self,
        inputs: impl IntoIterator<Item = impl Into<Input>>,
        map: F,
        mut init: impl FnMut() -> A,
        mut fold: impl FnMut(A, R) -> A,
    ) -> Result<Vec<Result<A, Error<E>>>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        let (inputs, total) = Self::pending(inputs);
        let mut outcomes: Vec<Result<A, Error<E>>> = (0..inputs.len()).map(|_| Ok(init())).collect();
        self.scoped(inputs, total, &map, |results| {
            while let Some(event) = results.next_event() {
                match event {
                    Event::Chunk(processed) => {
                        let outcome = &mut outcomes[processed.input];
                        if let Ok(acc) = std::mem::replace(outcome, Ok(init())) {
                            *outcome = Ok(fold(acc, processed.value));
                        }
                    }
                    Event::InputEnd { input, error: Some(error) } => outcomes[input] = Err(error),
                    Event::InputEnd { error: None, .. } => {}
                    Event::Failed(error) => return Err(error),
                }
            }
            Ok(())
        })??;
        Ok(outcomes)
    }

    /// Runs `map` on every chunk and combines the results in order with `reduce`; `None` for an
    /// empty input. `map` may borrow from the caller.
    ///
    /// # Errors
    /// The run's first failure.
    pub fn reduce<R, E, F>(
        &self,
        input: impl Into<Input>,
        map: F,
        mut reduce: impl FnMut(R, R) -> R,
    ) -> Result<Option<R>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Sync,
        R: Send,
        E: Send,
    {
        self.fold(input, map, None, |acc, r| {
            Some(match acc {
                None => r,
                Some(a) => reduce(a, r),
            })
        })
    }

    /// Transforms every chunk with `transform` and writes the outputs to `out` in order;
    /// returns the bytes written. `transform` may borrow from the caller.
    ///
    /// # Errors
    /// The run's first failure, or [`Error::Write`].
    pub fn write_ordered<T, E, F>(
        &self,
        input: impl Into<Input>,
        transform: F,
        mut out: impl std::io::Write,
    ) -> Result<u64, Error<E>>
    where
        F: Fn(&Chunk) -> Result<T, E> + Sync,
        T: AsRef<[u8]> + Send,
        E: Send,
    {
        self.scope(input, transform, |results| {
            let mut written = 0u64;
            for item in results {
                let bytes = item?.value;
                out.write_all(bytes.as_ref()).map_err(|source| Error::Write { source })?;
                written += bytes.as_ref().len() as u64;
            }
            out.flush().map_err(|source| Error::Write { source })?;
            Ok(written)
        })?
    }
}

/// Starts `workers` scoped worker threads.
fn spawn_scoped<'scope, R, E, F>(
    s: &'scope thread::Scope<'scope, '_>,
    workers: usize,
    ends: &WorkerEnds<R, E>,
    f: &'scope F,
) -> std::io::Result<()>
where
    F: Fn(&Chunk) -> Result<R, E> + Sync,
    R: Send + 'scope,
    E: Send + 'scope,
{
    for w in 0..workers {
        let ends = ends.clone();
        thread::Builder::new()
            .name(format!("streamproc-worker-{w}"))
            .spawn_scoped(s, move || pipeline::work(&ends, f))?;
    }
    Ok(())
}
