//! A shard cell: one [`Shard`] behind its reader-writer lock, the hit buffer of its read path,
//! the copy of its weight that other threads read without the lock, and its read counters; on
//! cache lines of their own.
//!
//! # Implementation details
//!
//! Lookups take the read lock, so hits on one shard run in parallel. A hit that changes the
//! policy's order (LRU) cannot reorder the queue under a read lock. It is recorded instead, as a
//! [`HitRecord`] in the cell's buffer, and replayed in order by the next thread that takes the
//! write lock, before that thread does anything else. Every write lock goes through
//! [`ShardCell::write`] or [`ShardCell::try_write`], which replay first, so an eviction decision
//! always sees every recorded hit.
//!
//! Why a record is always valid when replayed from the buffer: a record is stored while its
//! writer holds the read lock, so no node can be freed or reused between the lookup and the store;
//! the next write lock replays it before it can change anything. The read lock's release happens
//! before the write lock's acquisition, so the replaying thread sees the stores (the buffer's
//! atomics can be relaxed).
//!
//! When the buffer is full, the hit's thread releases its read lock and takes the write lock if it
//! is free, replaying the buffer and then its own hit; if the lock is busy, that hit is dropped, so
//! under contention LRU is approximate (as in Caffeine). This overflow record is the one that
//! crosses an unlocked gap, in which other writers may free its node or give it to another entry:
//! the record carries the node's version, bumped whenever the node takes a new entry or value,
//! and a record whose version no longer matches is skipped. On one thread nothing is ever dropped
//! and the order is exact (the fuzz target checks it).
//!
//! Locks are held for tens of nanoseconds (a replay at most a few microseconds), so both lock
//! kinds spin a little before parking, which costs system calls.
//!
//! The write guard publishes the shard's weight when it is dropped, whatever the writer did, so
//! the published weights that cross-shard eviction reads (`budget.rs`) never need a hand-written
//! store and are never left stale by an early return or a panic.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;

use crate::policy::Policy;
use crate::shard::{Layout, Shard};
use crate::sync::{
    AtomicU64, AtomicUsize, READ_BUFFER, RwLock, RwLockReadGuard, RwLockWriteGuard, SPIN, spin_loop,
};

/// An LRU hit to replay: a node index and the node's version when it was hit, packed in a `u64`
/// (never 0: versions start at 1, and 0 marks an empty buffer slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HitRecord(u64);

impl HitRecord {
    pub(crate) fn new(idx: u32, version: u16) -> Self {
        debug_assert!(version != 0, "occupied nodes have a version of at least 1");
        Self(u64::from(version) << 32 | u64::from(idx))
    }

    pub(crate) fn idx(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn version(self) -> u16 {
        (self.0 >> 32) as u16
    }

    fn from_bits(bits: u64) -> Option<Self> {
        (bits != 0).then_some(Self(bits))
    }
}

/// LRU hits recorded under the read lock, replayed under the next write lock.
struct ReadBuffer {
    records: [AtomicU64; READ_BUFFER],
    /// Slots claimed since the last replay (may run past the end: those hits overflowed).
    next: AtomicUsize,
}

impl ReadBuffer {
    fn new() -> Self {
        Self { records: std::array::from_fn(|_| AtomicU64::new(0)), next: AtomicUsize::new(0) }
    }

    /// Records a hit; false if the buffer is full.
    #[inline]
    fn push(&self, record: HitRecord) -> bool {
        let i = self.next.fetch_add(1, Relaxed);
        if i < READ_BUFFER {
            self.records[i].store(record.0, Relaxed);
            true
        } else {
            false
        }
    }

    /// Replays and empties the buffer; only under the write lock.
    fn drain_into<K, V>(&self, shard: &mut Shard<K, V>) {
        // The records were stored under read locks released before this write lock was taken,
        // so every claimed slot's store is visible here.
        let n = self.next.load(Relaxed).min(READ_BUFFER);
        for slot in &self.records[..n] {
            if let Some(record) = HitRecord::from_bits(slot.swap(0, Relaxed)) {
                shard.replay_hit(record);
            }
        }
        self.next.store(0, Relaxed);
    }
}

/// One shard and its lock-free companions; see the module docs.
#[repr(align(128))]
pub(crate) struct ShardCell<K, V> {
    lock: RwLock<Shard<K, V>>,
    /// The shard's weight as of the last write guard's drop.
    weight: AtomicU64,
    /// Hits and misses counted on the read path (the write path counts in the shard's counters).
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    reads: ReadBuffer,
}

/// The shard's write lock; publishes the shard's weight when dropped.
pub(crate) struct WriteGuard<'a, K, V> {
    cell: &'a ShardCell<K, V>,
    shard: RwLockWriteGuard<'a, Shard<K, V>>,
}

/// The shard's read lock.
pub(crate) type ReadGuard<'a, K, V> = RwLockReadGuard<'a, Shard<K, V>>;

impl<K, V> Deref for WriteGuard<'_, K, V> {
    type Target = Shard<K, V>;

    fn deref(&self) -> &Shard<K, V> {
        &self.shard
    }
}

impl<K, V> DerefMut for WriteGuard<'_, K, V> {
    fn deref_mut(&mut self) -> &mut Shard<K, V> {
        &mut self.shard
    }
}

impl<K, V> Drop for WriteGuard<'_, K, V> {
    fn drop(&mut self) {
        self.cell.weight.store(self.shard.weight, Relaxed);
    }
}

impl<K, V> ShardCell<K, V> {
    pub(crate) fn new(policy: Policy, layout: Layout) -> Self {
        Self {
            lock: RwLock::new(Shard::new(policy, layout)),
            weight: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            reads: ReadBuffer::new(),
        }
    }

    /// The shard's weight as last published; read without the lock, to choose a victim shard.
    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Relaxed)
    }

    /// The write lock, spinning a little before blocking, with the recorded hits replayed.
    pub(crate) fn write(&self) -> WriteGuard<'_, K, V> {
        for _ in 0..SPIN {
            if let Some(guard) = self.try_write() {
                return guard;
            }
            spin_loop();
        }
        self.replayed(self.lock.write())
    }

    /// The write lock if it is free, with the recorded hits replayed.
    pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, K, V>> {
        self.lock.try_write().map(|shard| self.replayed(shard))
    }

    fn replayed<'a>(&'a self, mut shard: RwLockWriteGuard<'a, Shard<K, V>>) -> WriteGuard<'a, K, V> {
        self.reads.drain_into(&mut shard);
        WriteGuard { cell: self, shard }
    }

    /// The read lock, spinning a little before blocking.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, K, V> {
        if let Some(shard) = self.lock.try_read() {
            return shard;
        }
        for _ in 0..SPIN {
            spin_loop();
            if let Some(shard) = self.lock.try_read() {
                return shard;
            }
        }
        self.lock.read()
    }

    /// Records an LRU hit seen under the read lock `shard`. Returns the record if the buffer was
    /// full: the caller passes it to [`replay_overflow`](Self::replay_overflow) once it has
    /// released the read lock.
    #[inline]
    pub(crate) fn record_hit(&self, shard: &Shard<K, V>, idx: u32) -> Option<HitRecord> {
        if shard.is_most_recent(idx) {
            return None;
        }
        let record = HitRecord::new(idx, shard.slab.node(idx).version);
        (!self.reads.push(record)).then_some(record)
    }

    /// Replays a hit that did not fit in the buffer, if the write lock is free.
    #[cold]
    pub(crate) fn replay_overflow(&self, record: HitRecord) {
        if let Some(mut shard) = self.try_write() {
            shard.replay_hit(record);
        }
    }
}
