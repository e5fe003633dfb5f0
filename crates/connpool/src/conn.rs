//! A checked-out connection.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::Pooled;
use crate::engine::Inner;
use crate::manager::Manager;
use crate::metrics::Reason;

/// A connection checked out of a [`Pool`](crate::Pool). Dereferences to the connection;
/// dropping it returns the connection to the pool (or closes it if it is broken or expired).
#[must_use = "dropping the connection returns it to the pool at once"]
pub struct Conn<M: Manager> {
    inner: Arc<Inner<M>>,
    pooled: Option<Pooled<M::Connection>>,
    /// When it was checked out, kept for leak detection only.
    checked_out: Option<Instant>,
    /// Set when the connection must be closed instead of returned.
    close: Option<Reason>,
}

impl<M: Manager> Conn<M> {
    pub(crate) fn new(inner: Arc<Inner<M>>, pooled: Pooled<M::Connection>) -> Self {
        let checked_out = inner.leaks.checked_out(pooled.id);
        Self { inner, pooled: Some(pooled), checked_out, close: None }
    }

    fn pooled(&self) -> &Pooled<M::Connection> {
        self.pooled.as_ref().expect("present until dropped")
    }

    pub(crate) fn pooled_mut(&mut self) -> &mut Pooled<M::Connection> {
        self.pooled.as_mut().expect("present until dropped")
    }

    /// Closes the connection when dropped, counted under `reason`.
    pub(crate) fn close_on_drop(&mut self, reason: Reason) {
        self.close = Some(reason);
    }

    /// Undoes [`close_on_drop`](Self::close_on_drop): returns the connection when dropped.
    pub(crate) fn keep_on_drop(&mut self) {
        self.close = None;
    }

    /// Marks the connection broken: it is closed instead of returned.
    pub fn mark_broken(&mut self) {
        self.close = Some(Reason::Broken);
    }

    /// Takes the connection out of the pool for good; the pool may open another in its place
    /// (unless it is closed: then a waiting `close` counts it as ended).
    pub fn detach(mut self) -> M::Connection {
        let pooled = self.pooled.take().expect("present until dropped");
        self.inner.leaks.returned(pooled.id, self.checked_out);
        self.inner.detached();
        pooled.conn
    }

    /// When the connection was last returned or validated.
    pub(crate) fn last_active(&self) -> Instant {
        let pooled = self.pooled();
        pooled.last_used.max(pooled.last_checked)
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.pooled().created.elapsed()
    }

    /// The connection's number within its pool.
    pub fn id(&self) -> u64 {
        self.pooled().id
    }
}

impl<M: Manager> Deref for Conn<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.pooled().conn
    }
}

impl<M: Manager> DerefMut for Conn<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.pooled.as_mut().expect("present until dropped").conn
    }
}

impl<M: Manager> Drop for Conn<M> {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            self.inner.leaks.returned(pooled.id, self.checked_out);
            self.inner.give_back(pooled, self.close);
        }
    }
}

impl<M: Manager> fmt::Debug for Conn<M>
where
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("id", &self.pooled().id).field("conn", &self.pooled().conn).finish()
    }
}
