//! The trait a user implements to plug a client into the pool.

use std::future::Future;

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
}
