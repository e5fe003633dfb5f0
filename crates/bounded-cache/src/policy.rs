//! Eviction policies over a shard's queues.
//!
//! Both policies keep entries on intrusive doubly linked queues threaded through the slab's nodes
//! (`prev`/`next` are `u32` indices), so a queue costs no allocation and moving an entry is a few
//! index writes.
//!
//! - **LRU** keeps one queue in recency order: a hit moves the entry to the head, the victim is the
//!   tail. It is exact within a shard.
//! - **S3-FIFO** (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023) keeps a
//!   small FIFO queue for new entries, a main FIFO queue, and a ghost record of keys recently evicted
//!   from the small queue. A hit only bumps a 2-bit counter. The small queue's tail leaves the cache
//!   unless it was hit twice (then it moves to main); main's tail is reinserted while its counter is
//!   above zero (decrementing it). A new key found in the ghost goes straight to main. One-hit
//!   wonders and scans pass through the small queue without disturbing the working set in main.
//!
//!   Tuning, chosen on the ARC traces with `benches/src/bin/hitratio.rs`: the small queue holds 15%
//!   of the shard's weight (the paper's 10% lost 1 point on OLTP at small sizes, 5% lost 2), an entry
//!   needs two hits in small to be promoted (one hit: 1 to 2 points lower on OLTP), and the ghost
//!   remembers 1.5 times as many keys as the shard holds (1x: 1 point lower on P3 at 20,000 entries;
//!   2x and more: lower again).

use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::UnknownPolicy;
use crate::shard::table_hash;
use crate::slab::{NIL, Node, Slab};

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

impl FromStr for Policy {
    type Err = UnknownPolicy;

    /// `"lru"` or `"s3-fifo"` (also `"s3fifo"`), in any case.
    fn from_str(name: &str) -> Result<Self, UnknownPolicy> {
        match name.to_ascii_lowercase().as_str() {
            "lru" => Ok(Policy::Lru),
            "s3-fifo" | "s3fifo" | "s3_fifo" => Ok(Policy::S3Fifo),
            _ => Err(UnknownPolicy(name.to_string())),
        }
    }
}

impl Policy {
    /// The policy's name: `"lru"` or `"s3-fifo"` (what its `FromStr` and, with feature `serde`,
    /// its serde form read).
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::S3Fifo => "s3-fifo",
        }
    }

    /// Bytes this policy spends per entry beyond the shard's own bookkeeping (the S3-FIFO ghost).
    pub(crate) const fn extra_overhead(self) -> usize {
        match self {
            Policy::Lru => 0,
            Policy::S3Fifo => Ghost::BYTES_PER_ENTRY,
        }
    }
}

/// Records a hit on an S3-FIFO entry under the shard's read lock: its counter goes up by one, to
/// at most 3. Two racing hits may count as one, which the policy tolerates.
#[inline]
pub(crate) fn hit_shared<K, V>(node: &Node<K, V>) {
    let freq = node.freq.load(Relaxed);
    if freq < MAX_FREQ {
        node.freq.store(freq + 1, Relaxed);
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
/// Hits an entry needs in the small queue to move to main.
const PROMOTE_FREQ: u8 = 2;
/// The small queue's share of the shard's weight, in percent.
const SMALL_PERCENT: u64 = 15;

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

    /// Places a new entry. `hash` is the key's table hash ([`table_hash`]), for the ghost.
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
            Policy::S3Fifo => hit_shared(slab.node(idx)),
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
    /// shard is empty.
    pub(crate) fn pop_victim<K, V>(&mut self, slab: &mut Slab<K, V>) -> Option<u32> {
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
                // Evict from small while it holds more than its share, or when main is empty.
                if self.q[0].tail != NIL
                    && (self.q[0].weight * 100 > total * SMALL_PERCENT || self.q[1].tail == NIL)
                {
                    let tail = self.q[0].tail;
                    self.unlink(slab, tail);
                    if slab.node(tail).freq.load(Relaxed) >= PROMOTE_FREQ {
                        slab.node(tail).freq.store(0, Relaxed);
                        self.push_front(slab, tail, MAIN);
                        continue;
                    }
                    self.ghost.record(table_hash(slab.node(tail).hash), slab.len());
                    return Some(tail);
                }
                let tail = self.q[1].tail;
                self.unlink(slab, tail);
                let freq = slab.node(tail).freq.load(Relaxed);
                if freq > 0 {
                    slab.node(tail).freq.store(freq - 1, Relaxed);
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

/// Fingerprints of keys recently evicted from S3-FIFO's small queue: a FIFO window of the last
/// `1.5 x entries` evictions, approximated in a fixed table.
///
/// Each record is a 32-bit slot: a 16-bit fingerprint and the 16-bit "tick" at which it was recorded;
/// the tick advances every `window / 32` records, so a record older than 32 ticks has left the window
/// and its slot is free. A key may sit in one of two slots (two hash-chosen positions); a new record
/// takes a free slot, else the older of the two. The table has at least twice as many slots as the
/// window, so few records are pushed out early. A false positive (1 in 32,768 per probe) only sends a
/// new key to main instead of small.
struct Ghost {
    slots: Vec<u32>,
    /// How many records the window holds.
    window: u32,
    tick: u16,
    /// Records since the tick last advanced.
    since_tick: u32,
}

impl Ghost {
    /// Worst case: the table is the next power of two above `2 x 1.5 x entries`, 4 bytes a slot.
    const BYTES_PER_ENTRY: usize = 24;
    /// Window length in ticks.
    const TICKS: u16 = 32;

    const fn new() -> Self {
        Self { slots: Vec::new(), window: 0, tick: 0, since_tick: 0 }
    }

    fn positions(&self, hash: u64) -> [usize; 2] {
        let mask = self.slots.len() - 1;
        [hash as usize & mask, (hash >> 40) as usize & mask]
    }

    fn fingerprint(hash: u64) -> u32 {
        // `hash` is a table hash (the key hash's low 32 bits, multiplied out to 64): the positions
        // come from its low bits and bits 40.., the fingerprint from bits 16..32, never 0 (0 marks
        // an empty slot).
        u32::from(((hash >> 16) as u16) | 1) << 16
    }

    fn live(&self, slot: u32) -> bool {
        slot != 0 && self.tick.wrapping_sub(slot as u16) < Self::TICKS
    }

    fn record(&mut self, hash: u64, entries: usize) {
        self.window = (entries.max(16) * 3 / 2) as u32;
        let want = (self.window as usize * 2).next_power_of_two();
        if self.slots.len() < want {
            self.slots = vec![0; want];
        }
        self.since_tick += 1;
        if self.since_tick >= (self.window / u32::from(Self::TICKS)).max(1) {
            self.since_tick = 0;
            self.tick = self.tick.wrapping_add(1);
        }
        let [a, b] = self.positions(hash);
        let age = |slot: u32| self.tick.wrapping_sub(slot as u16);
        let i = if !self.live(self.slots[a]) {
            a
        } else if !self.live(self.slots[b]) || age(self.slots[b]) > age(self.slots[a]) {
            b
        } else {
            a
        };
        self.slots[i] = Self::fingerprint(hash) | u32::from(self.tick);
    }

    /// Whether `hash` is in the window; forgets it if so.
    fn take(&mut self, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let fp = Self::fingerprint(hash);
        for i in self.positions(hash) {
            let slot = self.slots[i];
            if slot & 0xFFFF_0000 == fp && self.live(slot) {
                self.slots[i] = 0;
                return true;
            }
        }
        false
    }
}
