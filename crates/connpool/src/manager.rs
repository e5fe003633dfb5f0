//! The trait a user implements to plug a client into the pool, and the pool's only way of
//! calling it: every call is panic-contained here (`catch_unwind` for the synchronous one, the
//! future's equivalent for the async ones), so that a panicking manager costs one connection at
//! most and never the pool's accounting or its maintenance task.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures_util::FutureExt;

/// Makes and checks connections of one kind for a [`Pool`](crate::Pool).
///
/// ```
/// use std::convert::Infallible;
///
/// struct Numbers;
///
/// impl connpool::Manager for Numbers {
///     type Connection = u64;
///     type Error = Infallible;
///
///     async fn connect(&self) -> Result<u64, Infallible> {
///         Ok(42)
///     }
///
///     async fn validate(&self, _conn: &mut u64) -> Result<(), Infallible> {
///         Ok(())
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The connection type.
    type Connection: Send + 'static;
    /// The error of connecting and validating.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Checks that a connection still works (a ping, `SELECT 1`). Run by health checks and
    /// pre-ping; a connection that fails it is closed.
    fn validate(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A cheap, synchronous check when a connection comes back: `true` closes it instead of
    /// returning it to the pool (for a connection the client knows is closed or poisoned).
    fn is_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Whether a connection stays usable when a call on it was abandoned midway (a checkout
    /// cancelled during its pre-ping). `false` (the default) suits request/response protocols,
    /// where the abandoned request's reply would reach the next user: the pool closes such a
    /// connection. A multiplexed client, which matches each reply to its request, returns `true`
    /// and keeps it.
    fn cancel_safe(&self) -> bool {
        false
    }
}

/// A manager call that did not return normally.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The call returned this error.
    Error(E),
    /// The call panicked, with this message.
    Panicked(String),
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_string(),
        (None, Some(message)) => message.clone(),
        (None, None) => "a panic without a message".to_string(),
    }
}

/// `manager.connect()`, contained.
pub(crate) async fn connect<M: Manager>(manager: &M) -> Result<M::Connection, Failure<M::Error>> {
    match AssertUnwindSafe(manager.connect()).catch_unwind().await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(Failure::Error(error)),
        Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
    }
}

/// `manager.validate(conn)`, contained.
pub(crate) async fn validate<M: Manager>(
    manager: &M,
    conn: &mut M::Connection,
) -> Result<(), Failure<M::Error>> {
    match AssertUnwindSafe(manager.validate(conn)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::Error(error)),
        Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
    }
}

/// `manager.is_broken(conn)`, contained: `Err` with the panic's message.
pub(crate) fn is_broken<M: Manager>(manager: &M, conn: &mut M::Connection) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| manager.is_broken(conn))).map_err(|payload| panic_message(&*payload))
}
