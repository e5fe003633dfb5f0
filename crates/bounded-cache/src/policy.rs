//! Eviction policies over a shard's queues.
//!
//! Both policies keep entries on intrusive doubly linked queues threaded through the slab's nodes
//! (`prev`/`next` are `u32` indices), so a queue costs no allocation and moving an entry is a few
//! index writes.
//!
//! - **LRU** keeps one queue in recency order: a hit moves the entry to the head, the victim is the
//!   tail. It is exact within a shard.
//! - **S3-FIFO** (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023) keeps a
//!   small FIFO queue (10% of the shard's weight) for new entries, a main FIFO queue, and a ghost
//!   record of keys recently evicted from the small queue. A hit only bumps a 2-bit counter. The small
//!   queue's tail leaves the cache unless it was hit (then it moves to main); main's tail is
//!   reinserted while its counter is above zero (decrementing it). A new key found in the ghost goes
//!   straight to main. One-hit wonders and scans pass through the small queue without disturbing the
//!   working set in main.

use crate::slab::{NIL, Slab};

/// The eviction policy of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used: evicts the entry whose last access is oldest (within its shard).
    #[default]
    Lru,
    /// S3-FIFO: scan-resistant, with higher hit ratios than LRU on most real traces, and cheaper hits
    /// (no reordering).
    S3Fifo,
}

impl Policy {
    /// Bytes this policy spends per entry beyond the shard's own bookkeeping (the S3-FIFO ghost).
    pub(crate) const fn extra_overhead(self) -> usize {
        match self {
            Policy::Lru => 0,
            Policy::S3Fifo => Ghost::BYTES_PER_ENTRY,
        }
    }
}

/// One queue: head is the most recent end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queue {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) weight: u64,
}

impl Queue {
    pub(crate) const fn new() -> Self {
        Self { head: NIL, tail: NIL, weight: 0 }
    }
}

/// The queues of a shard, and the policy's operations on them.
pub(crate) struct Queues {
    pub(crate) policy: Policy,
    pub(crate) q: [Queue; 2],
    ghost: Ghost,
}

const SMALL: u8 = 0;
const MAIN: u8 = 1;
const MAX_FREQ: u8 = 3;

impl Queues {
    pub(crate) fn new(policy: Policy) -> Self {
        Self { policy, q: [Queue::new(), Queue::new()], ghost: Ghost::new() }
    }

    fn push_front<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, queue: u8) {
        let q = &mut self.q[queue as usize];
        let old_head = q.head;
        let node = slab.node_mut(idx);
        node.queue = queue;
        node.prev = NIL;
        node.next = old_head;
        q.weight += node.weight;
        if old_head == NIL {
            q.tail = idx;
        } else {
            slab.node_mut(old_head).prev = idx;
        }
        q.head = idx;
    }

    /// Takes an entry off its queue.
    pub(crate) fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        let node = slab.node(idx);
        let (prev, next, weight) = (node.prev, node.next, node.weight);
        let q = &mut self.q[node.queue as usize];
        q.weight -= weight;
        if prev == NIL {
            q.head = next;
        } else {
            slab.node_mut(prev).next = next;
        }
        if next == NIL {
            q.tail = prev;
        } else {
            slab.node_mut(next).prev = prev;
        }
    }

    /// Places a new entry. `hash` is the key's hash, for the ghost.
    pub(crate) fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, hash: u64) {
        let queue = match self.policy {
            Policy::Lru => SMALL,
            Policy::S3Fifo if self.ghost.take(hash) => MAIN,
            Policy::S3Fifo => SMALL,
        };
        self.push_front(slab, idx, queue);
    }

    /// Records a hit.
    #[inline]
    pub(crate) fn on_hit<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        match self.policy {
            Policy::Lru => {
                if self.q[0].head != idx {
                    self.unlink(slab, idx);
                    self.push_front(slab, idx, SMALL);
                }
            }
            Policy::S3Fifo => {
                let node = slab.node_mut(idx);
                node.freq = (node.freq + 1).min(MAX_FREQ);
            }
        }
    }

    /// Changes an entry's weight in place (its value was replaced).
    pub(crate) fn reweigh<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, weight: u64) {
        let node = slab.node_mut(idx);
        let q = &mut self.q[node.queue as usize];
        q.weight = q.weight - node.weight + weight;
        node.weight = weight;
    }

    /// Chooses the entry to evict, takes it off its queue and returns its index; `None` when the
    /// shard is empty. `hash_of` gives a node's key hash (for the ghost).
    pub(crate) fn pop_victim<K, V>(
        &mut self,
        slab: &mut Slab<K, V>,
        mut hash_of: impl FnMut(&K) -> u64,
    ) -> Option<u32> {
        match self.policy {
            Policy::Lru => {
                let tail = self.q[0].tail;
                if tail == NIL {
                    return None;
                }
                self.unlink(slab, tail);
                Some(tail)
            }
            Policy::S3Fifo => loop {
                let total = self.q[0].weight + self.q[1].weight;
                if total == 0 {
                    return None;
                }
                // Evict from small while it holds more than its 10%, or when main is empty.
                if self.q[0].tail != NIL && (self.q[0].weight * 10 > total || self.q[1].tail == NIL) {
                    let tail = self.q[0].tail;
                    self.unlink(slab, tail);
                    if slab.node(tail).freq > 0 {
                        slab.node_mut(tail).freq = 0;
                        self.push_front(slab, tail, MAIN);
                        continue;
                    }
                    let hash = hash_of(slab.node(tail).key());
                    self.ghost.record(hash, slab.len());
                    return Some(tail);
                }
                let tail = self.q[1].tail;
                self.unlink(slab, tail);
                let node = slab.node_mut(tail);
                if node.freq > 0 {
                    node.freq -= 1;
                    self.push_front(slab, tail, MAIN);
                    continue;
                }
                return Some(tail);
            },
        }
    }

    /// The entry that `pop_victim` would look at first (for tests and the fuzz model).
    pub(crate) fn lru_order<K, V>(&self, slab: &Slab<K, V>) -> Vec<u32> {
        let mut out = Vec::new();
        for q in self.q.iter().rev() {
            let mut idx = q.head;
            while idx != NIL {
                out.push(idx);
                idx = slab.node(idx).next;
            }
        }
        out
    }

    pub(crate) fn clear(&mut self) {
        self.q = [Queue::new(), Queue::new()];
        self.ghost = Ghost::new();
    }

    /// Heap bytes held by the policy.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.ghost.slots.capacity() * size_of::<u32>()
    }
}

/// Fingerprints of keys recently evicted from S3-FIFO's small queue.
///
/// A direct-mapped table of 32-bit fingerprints, at most two slots per live entry of the shard: a new
/// record overwrites whatever shared its slot, which ages old records out roughly in arrival order
/// without a separate FIFO. A false positive only sends a new key to main instead of small.
struct Ghost {
    slots: Vec<u32>,
}

impl Ghost {
    /// Worst case: two 4-byte slots per entry (the table is a power of two at least the entry count).
    const BYTES_PER_ENTRY: usize = 8;

    const fn new() -> Self {
        Self { slots: Vec::new() }
    }

    fn fingerprint(hash: u64) -> u32 {
        // The high bits pick the shard, the low bits the slot; the fingerprint comes from the middle,
        // and is never 0 (0 marks an empty slot).
        ((hash >> 16) as u32) | 1
    }

    fn record(&mut self, hash: u64, entries: usize) {
        let want = entries.max(16).next_power_of_two();
        if self.slots.len() < want {
            self.slots = vec![0; want];
        }
        let mask = self.slots.len() - 1;
        self.slots[hash as usize & mask] = Self::fingerprint(hash);
    }

    fn take(&mut self, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let slot = &mut self.slots[hash as usize & mask];
        if *slot == Self::fingerprint(hash) {
            *slot = 0;
            true
        } else {
            false
        }
    }
}
