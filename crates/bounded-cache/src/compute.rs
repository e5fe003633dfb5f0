//! Read-modify-write of one key: [`Cache::compute`] and the shapes built on it.
//!
//! # Implementation details
//!
//! A compute is a load that may also remove or keep: it registers a flight for its key, in the
//! same critical section as it reads the current value (`Inner::lead_compute`), runs the user's
//! function with no lock held, and ends the flight by storing, removing or leaving the entry
//! (`Lead::put`, `Lead::remove`, `Lead::end`). So, per key:
//!
//! - Computes exclude each other, and loaders: a caller that finds a flight waits for it, then
//!   starts over on what is there. A loader waiting on a compute that put a value takes that
//!   value as its own; after a compute that removed or kept, it loads.
//! - An invalidation wins, as over a load (`load.rs`): an `insert`, `remove`, `invalidate_if`,
//!   `clear` or shrinking `set_budget` detaches the flight, the compute's result is not stored,
//!   and the function runs again on the value the invalidation left. A compute therefore never
//!   overwrites a write it did not see, and the function may run more than once.
//! - A function that panics abandons the flight (the waiters start over) and changes nothing.
//! - Plain `get`s do not wait: they see the value before the compute until it is stored.

use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hash};
use std::pin::pin;

use crate::cache::Cache;
use crate::error::InsertError;
use crate::load::{Lead, Loading, Put};
use crate::weigh::Weigher;

const RECURSIVE: &str = "bounded-cache: a compute or loader asked for the key it is computing";

/// What [`Cache::compute`]'s function decides for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute<V> {
    /// Store this value (inserting, or replacing the current one).
    Put(V),
    /// Remove the key's entry, if any.
    Remove,
    /// Leave the entry (or its absence) as it is.
    Keep,
}

/// What [`Cache::compute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Computed<V> {
    /// The key had no live entry; this value is stored now.
    Inserted(V),
    /// The key's value `old` was replaced by `new`.
    Replaced {
        /// The value the function saw.
        old: V,
        /// The value stored.
        new: V,
    },
    /// The key's entry, holding this value, was removed.
    Removed(V),
    /// The entry was kept; it holds this value.
    Unchanged(V),
    /// The key had no entry and still has none.
    Absent,
}

impl<V> Computed<V> {
    /// The key's value after the compute, if it has one.
    pub fn value(&self) -> Option<&V> {
        match self {
            Computed::Inserted(v) | Computed::Unchanged(v) | Computed::Replaced { new: v, .. } => Some(v),
            Computed::Removed(_) | Computed::Absent => None,
        }
    }

    /// The value after the compute, if any, by value.
    pub fn into_value(self) -> Option<V> {
        match self {
            Computed::Inserted(v) | Computed::Unchanged(v) | Computed::Replaced { new: v, .. } => Some(v),
            Computed::Removed(_) | Computed::Absent => None,
        }
    }
}

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Reads, changes and writes the entry of `key` atomically: `f` sees the current live value
    /// (if any) and decides to [`Put`](Compute::Put) a value, [`Remove`](Compute::Remove) the
    /// entry or [`Keep`](Compute::Keep) it. Computes and loads of one key run one at a time, and
    /// a write to the key that lands while `f` runs makes `f` run again on the new value, so
    /// that no update is lost. `f` runs with no lock held and may call the cache for other keys
    /// (not write its own key: each write would make it run again).
    /// The value stored gets the cache's default time to live (and the [`Expiry`](crate::Expiry)
    /// hook's say).
    ///
    /// ```
    /// use bounded_cache::{Cache, Compute, Computed};
    ///
    /// let hits: Cache<String, u64> = Cache::new(1 << 20);
    /// for _ in 0..3 {
    ///     hits.compute("/home".into(), |n| Compute::Put(n.map_or(1, |n| n + 1))).unwrap();
    /// }
    /// assert_eq!(hits.get("/home"), Some(3));
    /// // Remove when a condition holds, atomically.
    /// let done = hits.compute("/home".into(), |n| if n == Some(&3) { Compute::Remove } else { Compute::Keep });
    /// assert_eq!(done.unwrap(), Computed::Removed(3));
    /// ```
    ///
    /// # Errors
    /// [`InsertError`] (with the key and the value `f` put) if the value is heavier than the
    /// budget, or starved of it; the key's previous entry is removed then, as by
    /// [`insert`](Self::insert).
    ///
    /// # Panics
    /// If `f` panics (nothing changes), or if `f` computes or loads the same key (which would
    /// otherwise deadlock).
    pub fn compute(
        &self,
        key: K,
        mut f: impl FnMut(Option<&V>) -> Compute<V>,
    ) -> Result<Computed<V>, InsertError<K, V>> {
        let hash = self.inner().hash(&key);
        loop {
            let (lead, current) = self.lead_compute(hash, &key);
            let decision = {
                let _computing = Loading::enter(lead.flight());
                f(current.as_ref())
            };
            if let Some(done) = self.apply(lead, &key, current, decision) {
                return done;
            }
        }
    }

    /// The async [`compute`](Self::compute): `f` is given a clone of the current value and
    /// returns a future of the decision. Dropping the returned future while `f`'s future runs
    /// changes nothing and hands the key to the next compute or loader waiting for it.
    ///
    /// # Errors
    /// As [`compute`](Self::compute).
    ///
    /// # Panics
    /// As [`compute`](Self::compute), for a compute or load of the same key from within `f`'s
    /// future (from the same task).
    pub async fn compute_async<F, Fut>(&self, key: K, mut f: F) -> Result<Computed<V>, InsertError<K, V>>
    where
        F: FnMut(Option<V>) -> Fut,
        Fut: Future<Output = Compute<V>>,
    {
        let inner = self.inner();
        let hash = inner.hash(&key);
        loop {
            let (flight, current) = match inner.lead_compute(hash, &key) {
                Ok(lead) => lead,
                Err(flight) => {
                    assert!(!Loading::is_active(&flight), "{RECURSIVE}");
                    let _ = flight.wait_async().await;
                    continue;
                }
            };
            let lead = Lead::new(inner, hash, flight);
            let mut decide = pin!(f(current.clone()));
            let decision = poll_fn(|cx| {
                let _computing = Loading::enter(lead.flight());
                decide.as_mut().poll(cx)
            })
            .await;
            if let Some(done) = self.apply(lead, &key, current, decision) {
                return done;
            }
        }
    }

    /// Carries out a compute's decision; `None` if an invalidation came first and the function
    /// must run again.
    fn apply(
        &self,
        lead: Lead<'_, K, V, W, S>,
        key: &K,
        current: Option<V>,
        decision: Compute<V>,
    ) -> Option<Result<Computed<V>, InsertError<K, V>>> {
        match decision {
            Compute::Put(value) => match lead.put(key.clone(), value) {
                Put::Stored(new) => Some(Ok(match current {
                    Some(old) => Computed::Replaced { old, new },
                    None => Computed::Inserted(new),
                })),
                Put::Detached(_) => None,
                Put::Rejected { key, value, weight, kind } => {
                    Some(Err(self.refused(key, value, weight, kind)))
                }
            },
            Compute::Remove => {
                lead.remove(key).map(|removed| Ok(removed.map_or(Computed::Absent, Computed::Removed)))
            }
            Compute::Keep => {
                lead.end();
                Some(Ok(current.map_or(Computed::Absent, Computed::Unchanged)))
            }
        }
    }

    /// Inserts `value` unless `key` has a live entry; returns the value the key has afterwards
    /// (`Ok(value)` if this one went in). Atomic, as [`compute`](Self::compute).
    ///
    /// # Errors
    /// As [`compute`](Self::compute).
    pub fn insert_if_absent(&self, key: K, value: V) -> Result<V, InsertError<K, V>> {
        let hash = self.inner().hash(&key);
        let mut value = value;
        loop {
            let (lead, current) = self.lead_compute(hash, &key);
            if let Some(current) = current {
                lead.end();
                return Ok(current);
            }
            match lead.put(key.clone(), value) {
                Put::Stored(value) => return Ok(value),
                // An insert came first: look again (it is there now, unless removed already).
                Put::Detached(back) => value = back,
                Put::Rejected { key, value, weight, kind } => {
                    return Err(self.refused(key, value, weight, kind));
                }
            }
        }
    }

    /// Leads a compute of `key`, after waiting out any load or compute of it in flight; with a
    /// clone of the live value.
    fn lead_compute(&self, hash: u64, key: &K) -> (Lead<'_, K, V, W, S>, Option<V>) {
        let inner = self.inner();
        loop {
            match inner.lead_compute(hash, key) {
                Ok((flight, current)) => return (Lead::new(inner, hash, flight), current),
                Err(flight) => {
                    assert!(!Loading::is_active(&flight), "{RECURSIVE}");
                    // Whatever it ended with, compute again on what is there now.
                    let _ = flight.wait();
                }
            }
        }
    }

    /// The error of a put that did not fit (the key's older entry is gone: `Lead::put`).
    fn refused(&self, key: K, value: V, weight: u64, kind: crate::InsertErrorKind) -> InsertError<K, V> {
        InsertError::new(key, value, weight, self.budget(), kind)
    }

    /// Removes `key`'s entry if its live value satisfies `predicate`; returns the value removed.
    /// Atomic, as [`compute`](Self::compute): no write to the key lands between the check and the
    /// removal.
    pub fn remove_if(&self, key: K, mut predicate: impl FnMut(&V) -> bool) -> Option<V> {
        let computed = self.compute(key, |current| {
            if current.is_some_and(&mut predicate) { Compute::Remove } else { Compute::Keep }
        });
        match computed {
            Ok(Computed::Removed(value)) => Some(value),
            _ => None,
        }
    }
}
