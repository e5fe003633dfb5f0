//! The async reset: run on an object that came back, by the next caller that gets it.
//!
//! A reset that needs I/O (`ROLLBACK`, `DISCARD ALL`, draining a socket) cannot run when a
//! guard is dropped, since `Drop` cannot await. So a returned object is only marked *dirty*
//! (a flag in its slot, which only the slot's owner touches), and whoever gets it next runs the
//! reset before seeing it: `get_async` polls the reset future in the caller's own task, the
//! blocking gets drive it on their own thread. No pool lock is held meanwhile, and the object's
//! slot stays owned by that caller, so nobody else can get the object half reset. A reset that
//! refuses the object (`false`), panics, or is cancelled with its `get_async` future drops the
//! object; the caller then creates a new one in its slot.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of an async reset ([`Builder::reset_async`](crate::Builder::reset_async)): it
/// borrows the object and resolves to whether the object is fit for reuse.
pub type ResetFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// The async reset of a pool.
pub(crate) type AsyncReset<T> = Box<dyn for<'a> Fn(&'a mut T) -> ResetFuture<'a> + Send + Sync>;

/// How a reset ended.
pub(crate) enum Outcome {
    /// The object is fit for reuse.
    Keep,
    /// The reset refused the object.
    Refused,
    /// The reset panicked.
    Panicked,
}

/// An async reset in progress, borrowing an object in a slot its caller owns.
pub(crate) struct Resetting<'a>(ResetFuture<'a>);

// SAFETY: the future is only reached through `&mut self` (`poll`), so a shared `&Resetting`
// gives access to nothing; sharing it between threads is sound whatever the future is.
unsafe impl Sync for Resetting<'_> {}

impl<'a> Resetting<'a> {
    /// Calls the reset (a panic there is caught and ends the reset at once).
    pub(crate) fn start<T>(reset: &'a AsyncReset<T>, object: &'a mut T) -> Result<Self, Outcome> {
        // The object is moved out of an `Option` rather than reborrowed inside the closure, so
        // that the future may borrow it for all of `'a`.
        let mut object = Some(object);
        let start = || reset(object.take().expect("called once"));
        panic::catch_unwind(AssertUnwindSafe(start)).map(Self).map_err(|_| Outcome::Panicked)
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        match panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(true)) => Poll::Ready(Outcome::Keep),
            Ok(Poll::Ready(false)) => Poll::Ready(Outcome::Refused),
            Err(_) => Poll::Ready(Outcome::Panicked),
        }
    }
}
