//! The async face: results as a `Stream`, for tokio services.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::chunk::Chunk;
use crate::engine::{Processed, Processor};
use crate::error::Error;
use crate::input::Input;

/// The results of a run as a [`Stream`], in file order; from [`Processor::stream`].
///
/// Dropping the stream stops the run as dropping [`Results`](crate::Results) does.
pub struct ChunkStream<R, E> {
    rx: mpsc::Receiver<Result<Processed<R>, Error<E>>>,
}

impl<R, E> std::fmt::Debug for ChunkStream<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream").finish_non_exhaustive()
    }
}

impl<R, E> Stream for ChunkStream<R, E> {
    type Item = Result<Processed<R>, Error<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Processor {
    /// Like [`run`](Processor::run), with the results delivered as a [`Stream`]. The reading and the
    /// work happen on the processor's own threads, never on the async runtime's.
    ///
    /// # Errors
    /// As [`run`](Processor::run).
    pub fn stream<R, E, F>(&self, input: impl Into<Input>, f: F) -> Result<ChunkStream<R, E>, Error<E>>
    where
        F: Fn(&Chunk) -> Result<R, E> + Send + Sync + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let results = self.run(input, f)?;
        let (tx, rx) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("streamproc-stream".into())
            .spawn(move || {
                for item in results {
                    if tx.blocking_send(item).is_err() {
                        // The stream was dropped: dropping `results` stops the run.
                        return;
                    }
                }
            })
            .map_err(|source| Error::Spawn { source })?;
        Ok(ChunkStream { rx })
    }
}
