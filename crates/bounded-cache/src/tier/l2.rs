//! Redis calls: each under the circuit breaker and the L2 timeout, counted, never an error to
//! the caller.
//!
//! Reads ask for at most `max_value` plus the envelope's overhead (`GETRANGE`), so a value
//! larger than the limit costs no more than the limit to refuse. A loaded value is written with
//! `SET ... NX` (another instance may have written a newer one while this one loaded), and only
//! if the key's invalidation epochs did not move while it loaded (an invalidation, local or
//! announced, means the loader may have read what was being replaced).

use std::sync::atomic::Ordering;

use super::codec::{self, OVERHEAD};
use super::{Codec, Inner};

/// How a value is written to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Over whatever is there (an insert).
    Always,
    /// Only where nothing is (a loaded value).
    IfAbsent,
}

impl<V, C> Inner<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// One Redis call under the breaker and the timeout; `None` if skipped or failed (counted).
    /// Cancelled midway, its breaker permit counts as a failure if it was the probe.
    pub(super) async fn l2_call<T: redis::FromRedisValue, R>(
        &self,
        cmd: &redis::Cmd,
        then: impl FnOnce(T) -> R,
    ) -> Option<R> {
        let Some(permit) = self.breaker.allow() else {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let start = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.l2_timeout, async {
            let mut conn = self.pool.get_timeout(self.l2_timeout).await.map_err(drop)?;
            cmd.query_async::<T>(&mut *conn).await.map_err(drop)
        })
        .await;
        self.counters.latency(start.elapsed());
        match result {
            Ok(Ok(value)) => {
                permit.success();
                Some(then(value))
            }
            Ok(Err(())) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                permit.failure();
                None
            }
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                permit.failure();
                None
            }
        }
    }

    /// The value for `key` in Redis, decoded.
    pub(super) async fn l2_get(&self, key: &str) -> Option<V> {
        let redis_key = self.redis_key(key);
        let limit = self.max_value.saturating_add(OVERHEAD);
        // One byte past what a legitimate value can take, to tell "too large" from "at the limit".
        let cmd = redis::cmd("GETRANGE").arg(&redis_key).arg(0).arg(limit).clone();
        let bytes = self.l2_call(&cmd, |b: Vec<u8>| b).await?;
        if bytes.is_empty() {
            // Absent (GETRANGE answers "" for a missing key; an envelope is never empty).
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let decoded = if bytes.len() > limit {
            Err(codec::CodecError::TooLarge { size: bytes.len(), limit: self.max_value })
        } else {
            codec::open(C::ID, &bytes, self.max_value, self.mac.as_ref())
                .and_then(|payload| self.codec.decode(&payload))
        };
        match decoded {
            Ok(value) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            Err(_) => {
                self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn encode(&self, value: &V) -> Option<Vec<u8>> {
        match self.codec.encode(value) {
            Ok(payload) => Some(codec::seal(C::ID, payload, self.compress_above, self.mac.as_ref())),
            Err(_) => {
                self.counters.encode_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Writes an inserted value to Redis; whether it landed.
    pub(super) async fn write_l2(&self, key: &str, value: &V) -> bool {
        match self.encode(value) {
            Some(bytes) => self.l2_set(key, bytes, Write::Always).await,
            None => false,
        }
    }

    /// Writes a loaded value to Redis, unless the key was invalidated since `epochs` were noted.
    pub(super) async fn write_loaded(&self, key: &str, value: &V, epochs: (u64, u64)) {
        let Some(bytes) = self.encode(value) else { return };
        if self.epochs.note(key) != epochs {
            self.counters.stale_writes_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.l2_set(key, bytes, Write::IfAbsent).await;
    }

    async fn l2_set(&self, key: &str, bytes: Vec<u8>, how: Write) -> bool {
        let ttl_ms = self.l2_ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(key)).arg(bytes).arg("PX").arg(ttl_ms);
        if how == Write::IfAbsent {
            cmd.arg("NX");
        }
        // `SET ... NX` answers nil when the key exists: not a failure.
        match self.l2_call(&cmd, |reply: Option<String>| reply.is_some()).await {
            Some(written) => {
                if written {
                    self.counters.writes.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Removes `key` from Redis; whether the removal landed.
    pub(super) async fn l2_del(&self, key: &str) -> bool {
        self.l2_call(redis::cmd("DEL").arg(self.redis_key(key)), |_: i64| ()).await.is_some()
    }

    /// Publishes `message` on the invalidation channel; whether it went out.
    pub(super) async fn publish(&self, message: &str) -> bool {
        self.l2_call(redis::cmd("PUBLISH").arg(&self.channel).arg(message), |_: i64| ()).await.is_some()
    }
}
