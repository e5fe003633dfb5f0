//! A simulated backend for tests, benchmarks and examples: configurable connect latency,
//! failures, outages, stalls and broken connections, with counters to check a pool against.
//!
//! It exists to test timing and faults that a real server cannot produce on demand; the
//! PostgreSQL, Redis and HTTP managers are tested against real servers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::manager::Manager;

/// The simulated backend's errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The backend refused the connection (it is down, or a random failure).
    Refused,
    /// The connection no longer works (the backend restarted since it was made).
    Unhealthy,
    /// A reply was read that belongs to an earlier request: a request/response connection was
    /// reused after a request on it was abandoned midway.
    Desynchronized,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refused => "connection refused by the simulated backend",
            Self::Unhealthy => "the simulated connection is dead",
            Self::Desynchronized => "read the reply to an abandoned request",
        })
    }
}

impl std::error::Error for SimError {}

/// Which manager method [`SimManager::panic_once`] makes panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimMethod {
    /// `Manager::connect`.
    Connect,
    /// `Manager::validate`.
    Validate,
    /// `Manager::is_broken`.
    IsBroken,
}

#[derive(Debug, Default)]
struct Shared {
    down: AtomicBool,
    stalled: AtomicBool,
    panic_connect: AtomicBool,
    panic_validate: AtomicBool,
    panic_is_broken: AtomicBool,
    /// Bumped by `restart`: connections of an older epoch are dead.
    epoch: AtomicU64,
    attempts: AtomicU64,
    connects: AtomicU64,
    failed_connects: AtomicU64,
    validations: AtomicU64,
    open: AtomicU64,
    next_id: AtomicU64,
}

/// The simulated backend: a [`Manager`] of [`SimConnection`]s.
#[derive(Debug, Clone)]
pub struct SimManager {
    connect_latency: Duration,
    validate_latency: Duration,
    failure_rate: f64,
    broken_rate: f64,
    multiplexed: bool,
    shared: Arc<Shared>,
}

impl Default for SimManager {
    fn default() -> Self {
        Self::new()
    }
}

impl SimManager {
    /// A backend that connects at once and never fails.
    pub fn new() -> Self {
        Self {
            connect_latency: Duration::ZERO,
            validate_latency: Duration::ZERO,
            failure_rate: 0.0,
            broken_rate: 0.0,
            multiplexed: false,
            shared: Arc::default(),
        }
    }

    /// Whether connections are multiplexed (each request tagged with its reply, like Redis's
    /// multiplexed client): a validation abandoned midway then leaves nothing behind, and the
    /// manager says so through [`Manager::cancel_safe`]. By default they are request/response
    /// connections, where it leaves an unread reply that the next request would read.
    pub fn multiplexed(mut self, multiplexed: bool) -> Self {
        self.multiplexed = multiplexed;
        self
    }

    /// Makes the next call of `method` panic (once).
    pub fn panic_once(&self, method: SimMethod) {
        let flag = match method {
            SimMethod::Connect => &self.shared.panic_connect,
            SimMethod::Validate => &self.shared.panic_validate,
            SimMethod::IsBroken => &self.shared.panic_is_broken,
        };
        flag.store(true, Ordering::SeqCst);
    }

    /// Connection attempts so far, successful or not (a panicking one included).
    pub fn attempts(&self) -> u64 {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// Each connection attempt takes this long.
    pub fn connect_latency(mut self, latency: Duration) -> Self {
        self.connect_latency = latency;
        self
    }

    /// Each validation takes this long.
    pub fn validate_latency(mut self, latency: Duration) -> Self {
        self.validate_latency = latency;
        self
    }

    /// The share of connection attempts that fail at random.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// The share of returned connections that report themselves broken.
    pub fn broken_rate(mut self, rate: f64) -> Self {
        self.broken_rate = rate;
        self
    }

    /// Takes the backend down (every connection attempt is refused) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Makes connection attempts and validations hang without answering (a stalled server), or
    /// answer again.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Restarts the backend: every existing connection dies (fails validation).
    pub fn restart(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Successful connects so far.
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::SeqCst)
    }

    /// Failed connects so far.
    pub fn failed_connects(&self) -> u64 {
        self.shared.failed_connects.load(Ordering::SeqCst)
    }

    /// Validations so far.
    pub fn validations(&self) -> u64 {
        self.shared.validations.load(Ordering::SeqCst)
    }

    /// Connections open now (made and not yet dropped).
    pub fn open(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }
}

/// A simulated connection.
#[derive(Debug)]
pub struct SimConnection {
    id: u64,
    epoch: u64,
    shared: Arc<Shared>,
    broken_rate: f64,
    queries: u64,
    /// Replies sent by the backend and not read yet (request/response connections only).
    unread: u64,
}

impl SimConnection {
    /// The connection's number, in order of creation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs a simulated query taking `latency`.
    ///
    /// # Errors
    /// [`SimError::Unhealthy`] if the backend restarted since the connection was made.
    ///
    /// [`SimError::Desynchronized`] if an earlier request's reply is still unread.
    pub async fn query(&mut self, latency: Duration) -> Result<u64, SimError> {
        if self.unread > 0 {
            return Err(SimError::Desynchronized);
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.epoch != self.shared.epoch.load(Ordering::SeqCst) {
            return Err(SimError::Unhealthy);
        }
        self.queries += 1;
        Ok(self.queries)
    }
}

impl Drop for SimConnection {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Manager for SimManager {
    type Connection = SimConnection;
    type Error = SimError;

    async fn connect(&self) -> Result<SimConnection, SimError> {
        self.shared.attempts.fetch_add(1, Ordering::SeqCst);
        if self.shared.panic_connect.swap(false, Ordering::SeqCst) {
            panic!("simulated panic in connect");
        }
        if self.shared.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if !self.connect_latency.is_zero() {
            tokio::time::sleep(self.connect_latency).await;
        }
        let refused = self.shared.down.load(Ordering::SeqCst)
            || (self.failure_rate > 0.0 && fastrand::f64() < self.failure_rate);
        if refused {
            self.shared.failed_connects.fetch_add(1, Ordering::SeqCst);
            return Err(SimError::Refused);
        }
        self.shared.connects.fetch_add(1, Ordering::SeqCst);
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        Ok(SimConnection {
            id: self.shared.next_id.fetch_add(1, Ordering::SeqCst),
            epoch: self.shared.epoch.load(Ordering::SeqCst),
            shared: self.shared.clone(),
            broken_rate: self.broken_rate,
            queries: 0,
            unread: 0,
        })
    }

    async fn validate(&self, conn: &mut SimConnection) -> Result<(), SimError> {
        self.shared.validations.fetch_add(1, Ordering::SeqCst);
        if self.shared.panic_validate.swap(false, Ordering::SeqCst) {
            panic!("simulated panic in validate");
        }
        // The ping is sent; a reply arrives after the latency and is read then: the oldest unread
        // one, which is this ping's only if no earlier request was abandoned. Abandoned in
        // between, a request/response connection keeps a reply unread, and the next request
        // reads it instead of its own (a ping cannot tell: any reply looks like its own).
        if !self.multiplexed {
            conn.unread += 1;
        }
        if self.shared.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if !self.validate_latency.is_zero() {
            tokio::time::sleep(self.validate_latency).await;
        }
        if !self.multiplexed {
            conn.unread -= 1;
        }
        if self.shared.down.load(Ordering::SeqCst) || conn.epoch != self.shared.epoch.load(Ordering::SeqCst) {
            return Err(SimError::Unhealthy);
        }
        Ok(())
    }

    fn is_broken(&self, conn: &mut SimConnection) -> bool {
        if self.shared.panic_is_broken.swap(false, Ordering::SeqCst) {
            panic!("simulated panic in is_broken");
        }
        conn.broken_rate > 0.0 && fastrand::f64() < conn.broken_rate
    }

    fn cancel_safe(&self) -> bool {
        self.multiplexed
    }
}
