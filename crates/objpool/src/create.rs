//! The creator of new objects (a function, an async function, or none for an unmanaged pool),
//! and how its failures and panics reach the caller.
//!
//! A creator runs on the thread or in the task of the caller that needs the object, never
//! under a pool lock. An async creator's future is polled by the caller's own `get_async`
//! future (see [`Acquire`](crate::Acquire)), so it shares the caller's task and never runs
//! inside another caller's poll; a blocking get drives it to completion on the calling thread.
//! A panic in the creator or its future is caught and becomes a typed error; the caller frees
//! the slot.

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::error::{BoxError, GetError};

/// The future of an async creator.
pub(crate) type CreateFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// The creator of new objects.
pub(crate) enum Create<T> {
    /// A function run on the caller's thread.
    Sync(Box<dyn Fn() -> Result<T, BoxError> + Send + Sync>),
    /// An async function whose future the caller polls.
    Async(Box<dyn Fn() -> CreateFuture<T> + Send + Sync>),
    /// None: objects come only from seeding and [`Pool::add`](crate::Pool::add).
    Unmanaged,
}

/// Why a creation produced no object.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(BoxError),
    Panicked(String),
}

impl From<Failure> for GetError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Error(source) => GetError::Create(source),
            Failure::Panicked(message) => GetError::CreatorPanicked { message },
        }
    }
}

/// The message of a panic payload, when it is a string (as `panic!` with a message makes).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (None, Some(message)) => message.clone(),
        (None, None) => "a panic with a non-string payload".to_owned(),
    }
}

fn catch<R>(f: impl FnOnce() -> Result<R, BoxError>) -> Result<R, Failure> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(Failure::Error),
        Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
    }
}

impl<T> Create<T> {
    /// Whether the pool may create objects in its empty slots.
    pub(crate) fn creates(&self) -> bool {
        !matches!(self, Self::Unmanaged)
    }

    /// Whether creation is async, so that `get_async` should poll it rather than block on it.
    pub(crate) fn is_async(&self) -> bool {
        matches!(self, Self::Async(_))
    }

    /// Creates an object on this thread, driving an async creator to completion.
    pub(crate) fn run_blocking(&self) -> Result<T, Failure> {
        match self {
            Self::Sync(create) => catch(create),
            Self::Async(_) => {
                let mut creating = self.start()?;
                block_on(|cx| creating.poll(cx))
            }
            Self::Unmanaged => unreachable!("an unmanaged pool never claims an empty slot to create in"),
        }
    }

    /// Starts an async creation, whose future the caller then polls.
    pub(crate) fn start(&self) -> Result<Creating<T>, Failure> {
        match self {
            Self::Async(create) => catch(|| Ok(Creating(create()))),
            _ => unreachable!("only an async creator is started"),
        }
    }
}

/// An async creation in progress.
pub(crate) struct Creating<T>(CreateFuture<T>);

// SAFETY: the future is only reached through `&mut self` (`poll`), so a shared `&Creating`
// gives access to nothing; sharing it between threads is sound whatever the future is.
unsafe impl<T> Sync for Creating<T> {}

impl<T> Creating<T> {
    /// Polls the creation; a panic in the future is caught and reported as a failure.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Failure>> {
        match panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(Failure::Error)),
            Err(payload) => Poll::Ready(Err(Failure::Panicked(panic_message(&*payload)))),
        }
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls until ready, parking the thread in between. A spurious unpark only costs a poll.
pub(crate) fn block_on<R>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>) -> R {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(result) = poll(&mut cx) {
            return result;
        }
        std::thread::park();
    }
}
