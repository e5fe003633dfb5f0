//! Paged storage for a shard's entries, addressed by `u32` indices.
//!
//! Entries live in fixed pages of [`PAGE`] nodes, so that growing the shard never moves or copies
//! entries and the storage never holds more than one partly used page beyond what the entries need
//! (a `Vec` that doubles can hold twice what it needs). A node is vacant when its weight is 0: every
//! live entry weighs at least the cache's per-entry overhead, so no separate flag is needed. Vacant
//! nodes form a free list through their `next` field.

use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::sync::AtomicU8;
pub(crate) use crate::sync::PAGE;

const PAGE_SHIFT: u32 = PAGE.trailing_zeros();

/// A page of per-node data. A fixed-size array rather than a slice, so that indexing a page with
/// `idx & (PAGE - 1)` needs no bounds check (and a page pointer is one word, not two).
type Page<T> = Box<[T; PAGE]>;

/// A page of `PAGE` values made by `f` from their offset in the page.
fn page<T>(f: impl FnMut(usize) -> T) -> Page<T> {
    let page: Box<[T]> = (0..PAGE).map(f).collect();
    match page.try_into() {
        Ok(page) => page,
        Err(_) => unreachable!("the page has PAGE elements"),
    }
}

/// "No node": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// One entry and its bookkeeping: 32 bytes beside the key and value, so that with 8-byte keys and
/// values a node is 48 bytes with no padding.
///
/// The fields a hit reads come first, in declaration order (`repr(C)`): the key, the value, the
/// deadline and the policy's counter, 26 bytes with 8-byte keys and values. In a page aligned to
/// 16 bytes, nodes of 48 bytes start 0, 16, 32 or 48 bytes into a cache line, so those bytes
/// span two lines only for the node at 48; with the counter at the node's end (the compiler's
/// own order) they also did for the node at 32. So a hit touches two lines on one node in four
/// instead of one in two (`scripts/bench-cache-instructions.py --cache-sim`: 0.56 data misses
/// past 1 MiB per get instead of 0.63).
#[repr(C)]
pub(crate) struct Node<K, V> {
    /// # Safety: initialised exactly when `weight != 0`.
    key: MaybeUninit<K>,
    /// # Safety: initialised exactly when `weight != 0`.
    value: MaybeUninit<V>,
    /// Nanoseconds after the cache's epoch at which the entry expires, plus one; 0 = never.
    /// Atomic because a read may push it back (time to idle, `Expiry::expire_after_read`) under
    /// the shard's read lock. It is a deadline, not part of any synchronisation: readers that
    /// race on it each store a deadline they computed, all of them valid, so relaxed accesses
    /// suffice and the loom models need not see it (it is `std`'s atomic, not the `sync` shim's).
    expires: AtomicU64,
    /// The policy's access counter (S3-FIFO: 0 to 3); atomic because hits bump it under the
    /// shard's read lock.
    pub(crate) freq: AtomicU8,
    /// Which queue the entry is on (S3-FIFO: 0 small, 1 main; W-TinyLFU: 0 window, 1 probation,
    /// 2 protected, 3 candidates; LRU uses queue 0).
    pub(crate) queue: u8,
    /// Bumped each time the node takes a new entry or its value is replaced (never 0 for an
    /// occupied node), so that a recorded hit or an `invalidate_if` verdict reached with the lock
    /// released can tell whether the node still holds what was seen.
    pub(crate) version: u16,
    /// The low 32 bits of the key's hash, so that the index grows and entries are evicted without
    /// calling the key's `Hash` (user code that may panic) under the shard's lock.
    pub(crate) hash: u32,
    /// Towards the head of the entry's queue (more recent).
    pub(crate) prev: u32,
    /// Towards the tail of the entry's queue (older); for a vacant node, the next free node.
    pub(crate) next: u32,
    /// The entry's weight in the budget; 0 marks a vacant node.
    pub(crate) weight: u64,
}

impl<K, V> Node<K, V> {
    fn vacant(next: u32) -> Self {
        Self {
            key: MaybeUninit::uninit(),
            value: MaybeUninit::uninit(),
            weight: 0,
            expires: AtomicU64::new(0),
            prev: NIL,
            next,
            hash: 0,
            version: 0,
            freq: AtomicU8::new(0),
            queue: 0,
        }
    }

    /// Marks a new entry or value in this node.
    pub(crate) fn bump_version(&mut self) {
        self.version = self.version.wrapping_add(1).max(1);
    }

    /// The entry's deadline (see the field).
    #[inline]
    pub(crate) fn expires(&self) -> u64 {
        self.expires.load(Relaxed)
    }

    /// Whether the entry has expired at `now` (nanoseconds after the epoch, plus one).
    #[inline]
    pub(crate) fn expired_at(&self, now: u64) -> bool {
        let expires = self.expires();
        expires != 0 && now >= expires
    }

    /// Sets the deadline: under the write lock, or under the read lock for a read's extension.
    #[inline]
    pub(crate) fn set_expires(&self, expires: u64) {
        self.expires.store(expires, Relaxed);
    }

    #[inline]
    pub(crate) fn is_occupied(&self) -> bool {
        self.weight != 0
    }

    #[inline]
    pub(crate) fn key(&self) -> &K {
        debug_assert!(self.is_occupied());
        // SAFETY: callers only reach occupied nodes (indices come from the table or the queues, which
        // hold exactly the occupied nodes), and an occupied node's key is initialised.
        unsafe { self.key.assume_init_ref() }
    }

    #[inline]
    pub(crate) fn value(&self) -> &V {
        debug_assert!(self.is_occupied());
        // SAFETY: as in `key`.
        unsafe { self.value.assume_init_ref() }
    }

    #[inline]
    pub(crate) fn value_mut(&mut self) -> &mut V {
        debug_assert!(self.is_occupied());
        // SAFETY: as in `key`.
        unsafe { self.value.assume_init_mut() }
    }
}

/// The nodes of one shard.
pub(crate) struct Slab<K, V> {
    pages: Vec<Page<Node<K, V>>>,
    /// For caches whose reads move deadlines (time to idle, an `Expiry` hook): a page of caps
    /// beside each page of nodes, the latest deadline a read may set for the node's entry (the
    /// one its time to live fixed when it was written; 0 = none). Other caches keep none, so
    /// their nodes stay 8 bytes smaller.
    caps: Option<Vec<Page<u64>>>,
    /// For caches that refresh entries (`refresh.rs`): a page of "refresh at" times beside each
    /// page of nodes (nanoseconds after the epoch, plus one; 0 = never). Atomic because the
    /// reader that claims a refresh moves it forward under the shard's read lock; like the
    /// deadline it is a time, not part of any synchronisation beyond that compare-and-swap.
    refresh: Option<Vec<Page<AtomicU64>>>,
    /// Head of the free list of vacant nodes.
    free: u32,
    len: usize,
}

impl<K, V> Slab<K, V> {
    /// A slab that keeps a cap per node if `caps`, and a refresh time per node if `refresh` (see
    /// the fields).
    pub(crate) const fn new(caps: bool, refresh: bool) -> Self {
        Self {
            pages: Vec::new(),
            caps: if caps { Some(Vec::new()) } else { None },
            refresh: if refresh { Some(Vec::new()) } else { None },
            free: NIL,
            len: 0,
        }
    }

    /// Whether the slab keeps a cap per node.
    #[inline]
    pub(crate) fn keeps_caps(&self) -> bool {
        self.caps.is_some()
    }

    /// The latest deadline a read may give the entry at `idx`; 0 = none (or no caps kept).
    #[inline]
    pub(crate) fn cap(&self, idx: u32) -> u64 {
        self.caps.as_ref().map_or(0, |caps| caps[(idx >> PAGE_SHIFT) as usize][idx as usize & (PAGE - 1)])
    }

    /// Sets the cap of the entry at `idx`; ignored by a slab that keeps none.
    #[inline]
    pub(crate) fn set_cap(&mut self, idx: u32, cap: u64) {
        if let Some(caps) = &mut self.caps {
            caps[(idx >> PAGE_SHIFT) as usize][idx as usize & (PAGE - 1)] = cap;
        }
    }

    /// Whether the slab keeps a refresh time per node.
    #[inline]
    pub(crate) fn keeps_refresh(&self) -> bool {
        self.refresh.is_some()
    }

    /// The refresh time of the entry at `idx` (0: never, or none kept).
    #[inline]
    pub(crate) fn refresh_at(&self, idx: u32) -> u64 {
        self.refresh_slot(idx).map_or(0, |at| at.load(Relaxed))
    }

    /// Sets the refresh time of the entry at `idx`; ignored by a slab that keeps none.
    #[inline]
    pub(crate) fn set_refresh_at(&mut self, idx: u32, at: u64) {
        if let Some(slot) = self.refresh_slot(idx) {
            slot.store(at, Relaxed);
        }
    }

    /// Moves the refresh time of the entry at `idx` from `seen` to `next`, under the read lock;
    /// false if another reader moved it first (that reader refreshes).
    #[inline]
    pub(crate) fn claim_refresh(&self, idx: u32, seen: u64, next: u64) -> bool {
        self.refresh_slot(idx).is_some_and(|at| at.compare_exchange(seen, next, Relaxed, Relaxed).is_ok())
    }

    #[inline]
    fn refresh_slot(&self, idx: u32) -> Option<&AtomicU64> {
        self.refresh.as_ref().map(|pages| &pages[(idx >> PAGE_SHIFT) as usize][idx as usize & (PAGE - 1)])
    }

    /// Number of occupied nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of nodes, occupied or not.
    pub(crate) fn capacity(&self) -> usize {
        self.pages.len() * PAGE
    }

    /// Bytes held by the pages.
    pub(crate) fn allocated_bytes(&self) -> usize {
        let caps = self.caps.as_ref().map_or(0, |caps| {
            caps.len() * PAGE * size_of::<u64>() + caps.capacity() * size_of::<Page<u64>>()
        });
        let refresh = self.refresh.as_ref().map_or(0, |pages| {
            pages.len() * PAGE * size_of::<AtomicU64>() + pages.capacity() * size_of::<Page<AtomicU64>>()
        });
        self.capacity() * size_of::<Node<K, V>>()
            + self.pages.capacity() * size_of::<Page<Node<K, V>>>()
            + caps
            + refresh
    }

    #[inline]
    pub(crate) fn node(&self, idx: u32) -> &Node<K, V> {
        &self.pages[(idx >> PAGE_SHIFT) as usize][idx as usize & (PAGE - 1)]
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, idx: u32) -> &mut Node<K, V> {
        &mut self.pages[(idx >> PAGE_SHIFT) as usize][idx as usize & (PAGE - 1)]
    }

    /// Node `idx`, or `None` past the last page.
    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> Option<&mut Node<K, V>> {
        Some(&mut self.pages.get_mut((idx >> PAGE_SHIFT) as usize)?[idx as usize & (PAGE - 1)])
    }

    /// Stores an entry in a vacant node and returns its index.
    ///
    /// # Panics
    /// If `weight` is 0, or the shard would exceed `u32::MAX - 1` nodes.
    pub(crate) fn insert(&mut self, key: K, value: V, weight: u64, expires: u64, hash: u32) -> u32 {
        assert!(weight != 0, "an entry weighs at least the per-entry overhead");
        if self.free == NIL {
            self.grow();
        }
        let idx = self.free;
        let node = self.node_mut(idx);
        debug_assert!(!node.is_occupied());
        let next_free = node.next;
        node.key.write(key);
        node.value.write(value);
        node.weight = weight;
        *node.expires.get_mut() = expires;
        node.prev = NIL;
        node.next = NIL;
        node.hash = hash;
        node.bump_version();
        node.freq.store(0, Relaxed);
        node.queue = 0;
        self.free = next_free;
        self.len += 1;
        idx
    }

    /// Takes the entry out of an occupied node, which becomes vacant.
    pub(crate) fn remove(&mut self, idx: u32) -> (K, V) {
        let free = self.free;
        let node = self.node_mut(idx);
        assert!(node.is_occupied(), "removing a vacant node");
        node.weight = 0;
        node.next = free;
        node.prev = NIL;
        // SAFETY: the node was occupied, so both fields were initialised; `weight = 0` above marks
        // them uninitialised again, so they are read out exactly once.
        let entry = unsafe { (node.key.assume_init_read(), node.value.assume_init_read()) };
        self.free = idx;
        self.len -= 1;
        entry
    }

    fn grow(&mut self) {
        let first = self.capacity();
        assert!(first + PAGE < NIL as usize, "a shard holds at most u32::MAX - 1 entries");
        let free = self.free;
        self.pages.push(page(|i| Node::vacant(if i + 1 == PAGE { free } else { (first + i + 1) as u32 })));
        if let Some(caps) = &mut self.caps {
            caps.push(page(|_| 0));
        }
        if let Some(refresh) = &mut self.refresh {
            refresh.push(page(|_| AtomicU64::new(0)));
        }
        self.free = first as u32;
    }

    /// Takes every entry out, leaving the slab empty; the entries are dropped (or read out with
    /// [`Slab::into_entries`]) wherever the returned slab goes, for the cache: after the shard's
    /// lock is released.
    pub(crate) fn take(&mut self) -> Slab<K, V> {
        let empty = Slab::new(self.caps.is_some(), self.refresh.is_some());
        std::mem::replace(self, empty)
    }

    /// The entries, moved out one by one; those not consumed are dropped with the iterator.
    pub(crate) fn into_entries(self) -> Entries<K, V> {
        Entries { slab: self, next: 0 }
    }

    fn drop_entries(&mut self) {
        for page in &mut self.pages {
            for node in page.iter_mut().filter(|n| n.is_occupied()) {
                node.weight = 0;
                // SAFETY: the node was occupied, so its key and value are initialised; `weight = 0`
                // above keeps them from being dropped again.
                unsafe {
                    node.key.assume_init_drop();
                    node.value.assume_init_drop();
                }
            }
        }
    }
}

/// The entries of a slab, from [`Slab::into_entries`]: key, value and weight.
pub(crate) struct Entries<K, V> {
    slab: Slab<K, V>,
    next: u32,
}

impl<K, V> Iterator for Entries<K, V> {
    type Item = (K, V, u64);

    fn next(&mut self) -> Option<(K, V, u64)> {
        while (self.next as usize) < self.slab.capacity() {
            let idx = self.next;
            self.next += 1;
            let weight = self.slab.node(idx).weight;
            if weight != 0 {
                let (key, value) = self.slab.remove(idx);
                return Some((key, value, weight));
            }
        }
        None
    }
}

impl<K, V> Drop for Slab<K, V> {
    fn drop(&mut self) {
        self.drop_entries();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_vacant_nodes_and_drops_everything() {
        let mut slab = Slab::new(false, false);
        let a = slab.insert(String::from("a"), vec![1u8], 1, 0, 0);
        let b = slab.insert(String::from("b"), vec![2u8], 1, 0, 0);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.capacity(), PAGE);
        assert_eq!(slab.remove(a), (String::from("a"), vec![1]));
        let c = slab.insert(String::from("c"), vec![3u8], 1, 0, 0);
        assert_eq!(c, a, "the freed node is reused first");
        assert_eq!(slab.node(b).key(), "b");
        for i in 0..PAGE * 2 {
            slab.insert(i.to_string(), vec![0u8; 3], 1, 0, 0);
        }
        assert_eq!(slab.capacity(), 3 * PAGE);
        // Dropping with live entries must free them (checked by Miri and the leak-free counts).
    }

    #[test]
    fn entries_move_out_once_and_the_rest_drop() {
        let mut slab = Slab::new(false, false);
        for i in 0..300 {
            slab.insert(i.to_string(), vec![i as u8], 2, 0, 0);
        }
        let removed = slab.remove(5);
        assert_eq!(removed.0, "5");
        let taken = slab.take();
        assert_eq!((slab.len(), slab.capacity()), (0, 0));
        let mut entries = taken.into_entries();
        let first: Vec<_> = entries.by_ref().take(10).collect();
        assert_eq!(first[5], ("6".to_string(), vec![6], 2), "the vacant node is skipped");
        drop(entries); // the other 289 are dropped here (Miri checks none leaks or drops twice)
    }

    #[test]
    fn versions_change_with_every_new_entry_and_skip_zero() {
        let mut slab = Slab::new(false, false);
        let a = slab.insert(1u32, 1u32, 1, 0, 0);
        let v1 = slab.node(a).version;
        slab.node_mut(a).bump_version();
        let v2 = slab.node(a).version;
        slab.remove(a);
        let b = slab.insert(2, 2, 1, 0, 0);
        assert_eq!(a, b);
        let v3 = slab.node(b).version;
        assert!(v1 != v2 && v2 != v3 && v1 != 0 && v3 != 0);
        let node = slab.node_mut(b);
        node.version = u16::MAX;
        node.bump_version();
        assert_eq!(node.version, 1, "a wrapped version skips 0");
    }
}
