//! A shard cell: one [`Shard`] behind its lock, the per-thread slots of its read path (each with
//! its readers, its hit and miss tallies and its buffer of LRU hits), and the copy of its weight
//! that other threads read without the lock.
//!
//! # Implementation details
//!
//! **The lock.** A reader announces itself in its thread's slot instead of in a shared lock word:
//! a hit writes only its own slot's cache line, so readers on different threads share no
//! written line and scale with the cores (up to [`MAX_SLOTS`] slots; more threads share them).
//! A writer takes `lock` (a plain reader-writer lock) for writing, which excludes other writers,
//! then sets `writing` and waits until every slot's reader count is zero. A reader:
//!
//! 1. adds one to its slot's reader count (an `Acquire` read-modify-write),
//! 2. reads `writing`; if it is clear, reads the shard, then subtracts one (`Release`);
//! 3. if it is set, subtracts one at once and takes `lock` for reading instead (the slow path),
//!    which waits for the writer to leave.
//!
//! Why a reader and a writer never overlap, with no sequentially consistent operation: the
//! writer reads each count with a read-modify-write (`fetch_add(0)`), which reads the latest
//! value. If the reader's increment comes first in the count's modification order, the writer
//! sees it and waits for the decrement, whose `Release` makes the reader's reads happen before
//! the writer's writes. If the writer's read-modify-write comes first, the reader's increment
//! reads from it (or from a later one of the same release sequence), so the writer's earlier
//! store of `writing` happens before the reader's load, which then sees it set (or a later
//! clear, by a writer that has finished). A writer clears `writing` with `Release` before it
//! unlocks, so a fast reader that sees it clear also sees that writer's writes.
//!
//! The price is on the write side: a writer touches every slot's line once. Writes already take
//! an exclusive lock and move entries between queues, and the slots are few (the next power of
//! two of the CPU count, at most [`MAX_SLOTS`]), so this is the side that can afford it.
//!
//! **How the read path scales past two threads.** A hit reads shared lines (the `writing` flag,
//! the index's bucket, the entry's node) and writes only its thread slot's two lines: the state
//! word twice (in and out) and, for LRU, one hit record. Lines that are only read
//! stay in every core's cache at once; nothing a hit writes is written by another thread's hit,
//! as long as each thread has a slot of its own (up to [`MAX_SLOTS`] threads; past that, threads
//! share slots two or more to one, which costs cache-line transfers between those threads only).
//! An S3-FIFO or W-TinyLFU hit bumps the entry's 2-bit counter instead, a store that stops once
//! the counter is at 3, so a hot entry's node is not written on every hit. What does not scale is writing: a write
//! takes the shard alone and touches every slot: a reader that arrives meanwhile takes the slow
//! path, and the next hit of each reader on that shard misses its own slot's line in cache. Reads on a shard therefore scale
//! with the cores while writes to it stay rare, which is what a cache with a high hit ratio sees.
//!
//! **Tallies.** The upper bits of a slot's state word count the hits and misses of its readers,
//! so that the decrement that ends a read also counts it: one read-modify-write. A tally that
//! reaches half its width is moved to the cell's totals by whichever reader sees it there. A
//! writer reads every slot's state word anyway to exclude the readers, so it also adds up the hit
//! tallies (the totals first) and gives the sum to the policy: W-TinyLFU's climber and sketch
//! count every hit without a hit doing more than this. A fold moves a tally with a `Release` add
//! to the totals, after emptying the slot; a writer that reads the totals (`Acquire`) with the
//! fold's add in them then sees the slot emptied, so no tally is counted twice, and one that
//! reads them before the add misses that tally only until the next write.
//!
//! **Hit records.** A hit that changes the policy's order (LRU's) cannot
//! change the shard under a shared access. It is recorded instead, as a [`HitRecord`] in the
//! reader's slot, and replayed by the next writer once it has excluded the readers, before it does
//! anything else. Every exclusive access goes through [`ShardCell::write`] or
//! [`ShardCell::try_write`], which replay first, so an eviction decision always sees every
//! recorded hit. A record is valid when replayed: it was stored while its reader was counted (or
//! held `lock` for reading), so no node could be freed or reused between the lookup and the store,
//! and the writer that replays it excluded that reader first. The reader's `Release` (or its
//! unlock) makes the store visible to the writer, so the buffer's own atomics are relaxed. Hits
//! of one slot replay in their order; on one thread nothing is dropped and the order is exact (the
//! fuzz target checks it). A hit that repeats the slot's last record (or, with none pending, hits
//! the queue's head) is not recorded: replayed, it would change nothing. The head alone would not
//! do: while the slot's records wait, they may have made another node the most recent.
//!
//! When a slot's buffer is full, the hit's thread ends its read and takes the write lock if it is
//! free, replaying every buffer and then its own hit; if the lock is busy, that hit is dropped,
//! so under contention LRU is approximate (as in Caffeine). This overflow record is the one that
//! crosses an unlocked gap, in which other writers may free its node or give it to another entry:
//! the record carries the node's version, bumped whenever the node takes a new entry or value,
//! and a record whose version no longer matches is skipped.
//!
//! Locks are held for tens of nanoseconds (a replay at most a few microseconds), so both the
//! lock and a writer's wait for readers spin a little before parking or yielding.
//!
//! The write guard publishes the shard's weight when it is dropped, whatever the writer did, so
//! the published weights that cross-shard eviction reads (`budget.rs`) never need a hand-written
//! store and are never left stale by an early return or a panic.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::climber::SharedClimber;
use crate::policy::Policy;
use crate::shard::{Layout, Shard};
use crate::sync::{
    AtomicBool, AtomicU64, AtomicUsize, ConstPtr, MAX_SLOTS, MutPtr, READ_BUFFER, RwLock, RwLockReadGuard,
    RwLockWriteGuard, SPIN, UnsafeCell, spin_loop, thread_index, yield_now,
};

/// An LRU hit to replay: a node index and the node's version when it was hit, packed in a `u64`
/// (never 0: versions start at 1).
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

    /// A record read back from a buffer slot below the cursor, which this round stored.
    fn from_bits(bits: u64) -> Self {
        debug_assert!(bits != 0, "a slot below the cursor holds a record of this round");
        Self(bits)
    }
}

// A slot's state word: readers inside (the low 16 bits), then a hit tally and a miss tally of 24
// bits each.
const READER: u64 = 1;
const READERS: u64 = (1 << 16) - 1;
const HIT_SHIFT: u32 = 16;
const MISS_SHIFT: u32 = 40;
const TALLY: u64 = (1 << 24) - 1;
/// A tally at least this high is moved to the cell's totals (half the width: the other half
/// absorbs what the slot's other threads add before the move).
#[cfg(not(bounded_cache_loom))]
const FOLD: u64 = 1 << 23;
/// Under loom, low enough for a model's reads to reach.
#[cfg(bounded_cache_loom)]
const FOLD: u64 = 2;

/// One thread slot of a shard cell: its readers and tallies, and the LRU hits they recorded;
/// on cache lines no other slot shares.
#[repr(align(128))]
struct Slot {
    state: AtomicU64,
    /// Records claimed since the last replay (may run past the end: those hits overflowed).
    next: AtomicUsize,
    records: [AtomicU64; READ_BUFFER],
}

impl Slot {
    fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            records: std::array::from_fn(|_| AtomicU64::new(0)),
        }
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

    /// Whether `idx` is the node this slot's readers hit last: the last record since the last
    /// replay, or with none, the queue's head as `at_head` reads it. A hit on it again changes
    /// no order, so it need not be recorded. The head alone does not say it: hits recorded and
    /// not yet replayed may have made another node the most recent. Exact for a slot of one
    /// thread; threads sharing a slot may read a record another is about to overwrite, and then
    /// leave a hit out, which is the approximation under contention of the module docs.
    #[inline]
    fn hit_last(&self, idx: u32, at_head: impl FnOnce() -> bool) -> bool {
        match self.next.load(Relaxed) {
            0 => at_head(),
            n => HitRecord(self.records[n.min(READ_BUFFER) - 1].load(Relaxed)).idx() == idx,
        }
    }

    /// Replays and empties the buffer; only by a writer that has excluded the readers.
    fn drain_into<K, V>(&self, shard: &mut Shard<K, V>) {
        // The records were stored by readers whose release this writer has acquired (module
        // docs), so every claimed record's store is visible here; and no reader stores one until
        // this writer has gone, so plain loads read them (a swap would add a locked instruction
        // per hit) and nothing needs clearing: the cursor alone says which records are current.
        let n = self.next.load(Relaxed).min(READ_BUFFER);
        for record in &self.records[..n] {
            shard.replay_hit(HitRecord::from_bits(record.load(Relaxed)));
        }
        self.next.store(0, Relaxed);
    }

    /// Waits until no fast reader is inside; only by the writer that has set `writing`. Returns
    /// the slot's hit tally as it was then.
    #[inline]
    fn wait_for_readers(&self) -> u64 {
        let mut spins = 0;
        // The read-modify-write reads the latest count: a reader it does not see has entered
        // after it, and sees `writing` set (module docs).
        loop {
            let state = self.state.fetch_add(0, AcqRel);
            if state & READERS == 0 {
                return state >> HIT_SHIFT & TALLY;
            }
            while self.state.load(Relaxed) & READERS != 0 {
                if spins < SPIN {
                    spins += 1;
                    spin_loop();
                } else {
                    yield_now();
                }
            }
        }
    }
}

/// One shard and its lock-free companions; see the module docs.
#[repr(align(128))]
pub(crate) struct ShardCell<K, V> {
    /// Held for writing by the writer; held for reading by readers on the slow path only.
    lock: RwLock<()>,
    /// Set by the writer holding `lock` while it excludes or has excluded the fast readers.
    writing: AtomicBool,
    shard: UnsafeCell<Shard<K, V>>,
    /// The shard's weight as of the last write guard's drop.
    weight: AtomicU64,
    /// Hits and misses moved here from the slots' tallies (the write path counts in the shard's
    /// counters).
    hits: AtomicU64,
    misses: AtomicU64,
    slots: Box<[Slot]>,
}

// SAFETY: the shard is reached only through the guards: shared by readers, which the protocol in
// the module docs keeps apart from the one writer, which has it exclusively. So the cell may be
// shared between threads when the shard may be shared (readers on several threads) and sent (a
// writer on any thread).
unsafe impl<K, V> Sync for ShardCell<K, V> where Shard<K, V>: Send + Sync {}

/// The shard's exclusive access; publishes the shard's weight when dropped.
pub(crate) struct WriteGuard<'a, K, V> {
    cell: &'a ShardCell<K, V>,
    shard: ManuallyDrop<MutPtr<Shard<K, V>>>,
    _lock: RwLockWriteGuard<'a, ()>,
}

/// A shared access to the shard, counted in this thread's slot (or holding the lock for reading,
/// if a writer was in).
pub(crate) struct ReadGuard<'a, K, V> {
    cell: &'a ShardCell<K, V>,
    slot: &'a Slot,
    shard: ManuallyDrop<ConstPtr<Shard<K, V>>>,
    /// The lock, if this read took the slow path; dropped by hand (in `leave_slow`), so that the
    /// guard's drop glue is its `Drop` alone, small enough to inline into every lookup.
    slow: ManuallyDrop<Option<RwLockReadGuard<'a, ()>>>,
    /// The tallies this read adds to its slot when it ends.
    tally: u64,
}

impl<K, V> Deref for WriteGuard<'_, K, V> {
    type Target = Shard<K, V>;

    fn deref(&self) -> &Shard<K, V> {
        // SAFETY: this guard holds `lock` for writing and has excluded the fast readers
        // (`ShardCell::exclusive`), so no other access overlaps its life.
        unsafe { MutPtr::deref(&self.shard) }
    }
}

impl<K, V> DerefMut for WriteGuard<'_, K, V> {
    fn deref_mut(&mut self) -> &mut Shard<K, V> {
        // SAFETY: as in `deref`; `&mut self` keeps this the only borrow made through the guard.
        unsafe { MutPtr::deref(&self.shard) }
    }
}

impl<K, V> Drop for WriteGuard<'_, K, V> {
    fn drop(&mut self) {
        let weight = self.weight; // the shard's, through `Deref`
        self.cell.weight.store(weight, Relaxed);
        // SAFETY: not used again. The access ends before the readers are let in (under loom,
        // its tracking ends here too).
        unsafe { ManuallyDrop::drop(&mut self.shard) };
        // Before `lock` is released (next, as a field): only the writer holding it clears this.
        self.cell.writing.store(false, Release);
    }
}

impl<K, V> Deref for ReadGuard<'_, K, V> {
    type Target = Shard<K, V>;

    #[inline]
    fn deref(&self) -> &Shard<K, V> {
        // SAFETY: this read is counted in its slot with `writing` seen clear, or holds `lock` for
        // reading; either way no writer overlaps it (module docs).
        unsafe { ConstPtr::deref(&self.shard) }
    }
}

impl<K, V> ReadGuard<'_, K, V> {
    /// Counts this read as a hit when it ends.
    #[inline]
    pub(crate) fn count_hit(&mut self) {
        self.tally = 1 << HIT_SHIFT;
    }

    /// Counts this read as a miss when it ends.
    #[inline]
    pub(crate) fn count_miss(&mut self) {
        self.tally = 1 << MISS_SHIFT;
    }

    /// Records an LRU hit seen under this guard. Returns the record if the slot's buffer was
    /// full: the caller passes it to [`ShardCell::replay_overflow`] once the guard is dropped.
    #[inline]
    pub(crate) fn record_hit(&self, idx: u32) -> Option<HitRecord> {
        if self.slot.hit_last(idx, || self.heads_lru_queue(idx)) {
            return None;
        }
        let record = HitRecord::new(idx, self.slab.node(idx).version);
        (!self.slot.push(record)).then_some(record)
    }
}

impl<K, V> Drop for ReadGuard<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: not used again; the access ends before the read is released.
        unsafe { ManuallyDrop::drop(&mut self.shard) };
        if self.slow.is_some() {
            self.leave_slow();
            return;
        }
        // Leaving and counting in one step.
        let before = self.slot.state.fetch_add(self.tally.wrapping_sub(READER), Release);
        if (before >> HIT_SHIFT & TALLY) >= FOLD || before >> MISS_SHIFT >= FOLD {
            self.cell.fold(self.slot);
        }
    }
}

impl<K, V> ReadGuard<'_, K, V> {
    /// Ends a read that took the slow path: counts it, then releases the lock.
    #[cold]
    #[inline(never)]
    fn leave_slow(&mut self) {
        // SAFETY: called once, from `drop`; the field is not used again.
        let lock = unsafe { ManuallyDrop::take(&mut self.slow) };
        if self.tally != 0 {
            let before = self.slot.state.fetch_add(self.tally, Relaxed);
            if (before >> HIT_SHIFT & TALLY) >= FOLD || before >> MISS_SHIFT >= FOLD {
                self.cell.fold(self.slot);
            }
        }
        drop(lock);
    }
}

impl<K, V> ShardCell<K, V> {
    /// A cell with `slots` thread slots (a power of two).
    pub(crate) fn new(policy: Policy, layout: Layout, slots: usize, climber: Arc<SharedClimber>) -> Self {
        debug_assert!(slots.is_power_of_two());
        Self {
            lock: RwLock::new(()),
            writing: AtomicBool::new(false),
            shard: UnsafeCell::new(Shard::new(policy, layout, climber)),
            weight: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            slots: (0..slots).map(|_| Slot::new()).collect(),
        }
    }

    /// The thread slots a cache's cells get on `cpus` CPUs: one per CPU (rounded up to a power
    /// of two), at most [`MAX_SLOTS`].
    pub(crate) fn slots_for(cpus: usize) -> usize {
        cpus.max(1).next_power_of_two().min(MAX_SLOTS)
    }

    /// The shard's weight as last published; read without the lock, to choose a victim shard.
    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Relaxed)
    }

    /// The hits and misses counted on the read path so far.
    pub(crate) fn tallies(&self) -> (u64, u64) {
        self.slots.iter().fold((self.hits.load(Relaxed), self.misses.load(Relaxed)), |(h, m), slot| {
            let state = slot.state.load(Relaxed);
            (h + (state >> HIT_SHIFT & TALLY), m + (state >> MISS_SHIFT))
        })
    }

    /// Moves `slot`'s tallies to the totals.
    #[cold]
    fn fold(&self, slot: &Slot) {
        let mut state = slot.state.load(Relaxed);
        // Whoever empties the tallies moves them: concurrent folds never move a count twice.
        while let Err(now) = slot.state.compare_exchange_weak(state, state & READERS, Relaxed, Relaxed) {
            state = now;
        }
        // Release: a writer that sees the hits here also sees them gone from the slot, so its
        // sum (`exclusive`) never counts them twice.
        self.hits.fetch_add(state >> HIT_SHIFT & TALLY, Release);
        self.misses.fetch_add(state >> MISS_SHIFT, Relaxed);
    }

    /// The exclusive access, spinning a little before blocking, with the recorded hits replayed.
    pub(crate) fn write(&self) -> WriteGuard<'_, K, V> {
        for _ in 0..SPIN {
            if let Some(guard) = self.try_write() {
                return guard;
            }
            spin_loop();
        }
        self.exclusive(self.lock.write())
    }

    /// The exclusive access if no other writer holds the lock (it still waits for the fast
    /// readers inside to leave, which takes nanoseconds), with the recorded hits replayed.
    pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, K, V>> {
        self.lock.try_write().map(|lock| self.exclusive(lock))
    }

    /// Excludes the fast readers under `lock`, then replays their hits.
    fn exclusive<'a>(&'a self, lock: RwLockWriteGuard<'a, ()>) -> WriteGuard<'a, K, V> {
        // Relaxed: the read-modify-writes that follow carry it to the readers (module docs).
        self.writing.store(true, Relaxed);
        // The read path's hits so far, for the policy: the totals first (`Acquire`, pairing with
        // `fold`), then each slot's tally, so a tally being folded meanwhile is missed for now
        // rather than counted twice.
        let mut read_hits = self.hits.load(Acquire);
        for slot in self.slots.iter() {
            read_hits += slot.wait_for_readers();
        }
        let mut guard =
            WriteGuard { cell: self, shard: ManuallyDrop::new(self.shard.get_mut()), _lock: lock };
        for slot in self.slots.iter() {
            slot.drain_into(&mut guard);
        }
        guard.observe_read_hits(read_hits);
        guard
    }

    /// A shared access: counted in this thread's slot while no writer is in, else the lock for
    /// reading (spinning a little before blocking).
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, K, V> {
        let slot = &self.slots[thread_index() & (self.slots.len() - 1)];
        let before = slot.state.fetch_add(READER, Acquire);
        debug_assert!(before & READERS != READERS, "65,535 readers in one slot");
        if !self.writing.load(Acquire) {
            let shard = ManuallyDrop::new(self.shard.get());
            return ReadGuard { cell: self, slot, shard, slow: ManuallyDrop::new(None), tally: 0 };
        }
        slot.state.fetch_sub(READER, Release);
        let lock = self.read_slow();
        ReadGuard {
            cell: self,
            slot,
            shard: ManuallyDrop::new(self.shard.get()),
            slow: ManuallyDrop::new(Some(lock)),
            tally: 0,
        }
    }

    #[cold]
    fn read_slow(&self) -> RwLockReadGuard<'_, ()> {
        for _ in 0..SPIN {
            if let Some(lock) = self.lock.try_read() {
                return lock;
            }
            spin_loop();
        }
        self.lock.read()
    }

    /// Replays a hit that did not fit in its slot's buffer, if the write lock is free.
    #[cold]
    pub(crate) fn replay_overflow(&self, record: HitRecord) {
        if let Some(mut shard) = self.try_write() {
            shard.replay_hit(record);
        }
    }
}

#[cfg(all(test, not(bounded_cache_loom)))]
mod tests {
    use super::*;

    fn cell(slots: usize) -> ShardCell<u64, u64> {
        ShardCell::new(Policy::Lru, Layout::default(), slots, Arc::new(SharedClimber::new(1)))
    }

    #[test]
    fn reads_count_hits_and_misses_in_their_slot() {
        let cell = cell(2);
        for _ in 0..3 {
            cell.read().count_hit();
        }
        cell.read().count_miss();
        drop(cell.read());
        assert_eq!(cell.tallies(), (3, 1));
        let slot = &cell.slots[thread_index() & 1];
        assert_eq!(slot.state.load(Relaxed) & READERS, 0, "every read left its slot");
        // A writer in the meantime changes nothing in the tallies.
        drop(cell.write());
        assert_eq!(cell.tallies(), (3, 1));
    }

    #[test]
    fn a_full_tally_moves_to_the_totals_and_is_counted_once() {
        let cell = cell(1);
        // The slot's hit tally one short of the fold, its miss tally at it.
        cell.slots[0].state.store((FOLD - 1) << HIT_SHIFT | FOLD << MISS_SHIFT, Relaxed);
        let mut read = cell.read();
        read.count_hit();
        drop(read);
        assert_eq!(cell.slots[0].state.load(Relaxed), 0, "both tallies moved");
        assert_eq!(cell.tallies(), (FOLD, FOLD));
        cell.read().count_hit();
        assert_eq!(cell.tallies(), (FOLD + 1, FOLD));
    }

    #[test]
    fn a_replay_reads_only_the_hits_recorded_since_the_last() {
        // A writer reads the records below the cursor and leaves them in place: the records of an
        // earlier replay, still in the buffer, must never be replayed again.
        let cell = cell(1);
        let hash = |key: u64| key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let idx: Vec<u32> = {
            let mut shard = cell.write();
            (0..4u64)
                .map(|key| {
                    shard.insert_new(hash(key), key, key, 1, crate::shard::Deadline::NEVER);
                    shard.find(hash(key), &key).expect("just inserted")
                })
                .collect()
        };
        // Hits on 0, 1 and 2 (3 is the most recent), replayed by the next writer.
        {
            let read = cell.read();
            for &i in &idx[..3] {
                assert_eq!(read.record_hit(i), None, "the buffer has room");
            }
        }
        assert!(cell.write().heads_lru_queue(idx[2]));
        // One hit on 3 overwrites the first record; replaying the two stale ones behind it would
        // leave 2 the most recent.
        assert_eq!(cell.read().record_hit(idx[3]), None);
        assert!(cell.write().heads_lru_queue(idx[3]));
    }

    #[test]
    fn a_read_that_sees_a_writer_takes_the_lock_and_still_counts() {
        // Whether a read and a write exclude each other is for the loom models; this checks the
        // slow path's bookkeeping, with `writing` set as a writer sets it before it waits.
        let cell = cell(1);
        cell.writing.store(true, Relaxed);
        let mut read = cell.read();
        assert!(read.slow.is_some(), "a writer was announced: the read took the lock");
        assert_eq!(cell.slots[0].state.load(Relaxed) & READERS, 0, "and left its slot");
        assert!(cell.lock.try_write().is_none(), "the lock is held for reading");
        read.count_miss();
        drop(read);
        assert!(cell.lock.try_write().is_some(), "and released");
        assert_eq!(cell.tallies(), (0, 1));
        cell.writing.store(false, Relaxed);
        assert!(cell.read().slow.is_none(), "with no writer, reads take the fast path");
    }
}
