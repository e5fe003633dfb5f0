//! Where sampled allocations live, and what is known about each allocation site.
//!
//! # Implementation notes
//!
//! Everything here is reached only from the sampling slow path (about one allocation per
//! sampling interval) and from frees of sampled blocks, so one mutex guards it all. The mutex
//! is `std`'s (a futex on Linux): it never allocates, which a global allocator's slow path
//! requires. Its memory comes from one anonymous mapping made at the first sample, never from
//! an allocator: the site table, the slot records and the table of large blocks.
//!
//! **Small blocks (at most a page, alignment at most a page) live in a region of page-sized
//! slots.** A free must tell a sampled block from any other without a lookup, on every free of
//! the process: the region is one contiguous reserved range, so the test is a subtraction and a
//! compare against a constant base (`in_region`). The region is reserved with `MAP_NORESERVE`:
//! slots never used cost no memory, a used slot costs one page while its block is live and
//! stays resident for reuse afterwards (so the region's footprint is the peak number of live
//! small samples times a page: at the default interval, about 4 KiB per 512 KiB of live small
//! objects).
//! A full region, or a region that could not be mapped, does not stop sampling: the block comes
//! from the inner allocator and only its live bytes go unrecorded (`SamplingStats::untracked`).
//! LeakSanitizer does not scan private mappings: a heap block whose only pointer is held in a
//! sampled block looks leaked to it at exit (the sampler's own symbolization is never sampled,
//! so its long-lived caches are not among them).
//!
//! **Larger blocks come from the inner allocator** and are recorded in an open-addressed table
//! keyed by address. A free of a block larger than a page first reads a counter in
//! `LARGE_FILTER` (the number of live sampled large blocks whose address hashes to that
//! bucket), a relaxed load from a 4 KiB array, and takes the mutex only when it is not zero.
//! The counters change under the mutex. A free of a sampled block happens after the sampling
//! thread returned it (the program hands the block over with its own synchronisation), so that
//! free sees the increment; a stale non-zero counter only costs a lookup that finds nothing.
//!
//! **Sites** are kept in an open-addressed table keyed by a hash of the stack's return
//! addresses. When it is full, further new stacks are charged to one overflow site, reported
//! with no frames, rather than dropped.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::registry::Slot;
use crate::thread::REGISTRY;

/// This file, to recognise its frames in sampled stacks.
pub(crate) const SOURCE: &str = file!();

/// Size and alignment of a region slot.
pub(crate) const SLOT_SIZE: usize = 4096;
/// Slots in the region: 128 MiB of address space.
const SLOTS: usize = 1 << 15;
const REGION_LEN: usize = SLOTS * SLOT_SIZE;
/// Return addresses kept per stack.
pub(crate) const MAX_DEPTH: usize = 64;
/// Sites the table holds; the last entry is the overflow site.
const SITES: usize = 1 << 12;
const OVERFLOW_SITE: u32 = (SITES - 1) as u32;
/// Live sampled large blocks the table holds (a power of two, kept at most half full).
const LARGE: usize = 1 << 13;
const FILTER_BITS: u32 = 10;

/// Start of the slot region. Until the region is mapped it holds an address range that no
/// allocation can occupy (the top of the address space), so `in_region` needs no second test.
/// Every counter slot holds a copy (`Slot::region`), which the frees of threads with a slot
/// read instead; both are written, under the store's mutex, before the first region block is
/// handed out, and a block reaches the thread that frees it only through the program's own
/// synchronisation after that, so every free of a region block sees the base.
static REGION: AtomicUsize = AtomicUsize::new(usize::MAX - REGION_LEN);

/// Live sampled large blocks per address bucket; see the notes above.
static LARGE_FILTER: [AtomicU32; 1 << FILTER_BITS] = [const { AtomicU32::new(0) }; 1 << FILTER_BITS];

static STORE: Mutex<Store> = Mutex::new(Store::unmapped());

/// Whether `ptr` is a block of the slot region.
#[inline(always)]
pub(crate) fn in_region(ptr: *mut u8) -> bool {
    (ptr as usize).wrapping_sub(REGION.load(Ordering::Relaxed)) < REGION_LEN
}

/// [`in_region`], with the base from the calling thread's own counter slot.
#[inline(always)]
pub(crate) fn in_region_of(slot: &Slot, ptr: *mut u8) -> bool {
    (ptr as u64).wrapping_sub(slot.region.load(Ordering::Relaxed)) < REGION_LEN as u64
}

/// Whether `ptr`, a block larger than a slot, may be a sampled large block.
#[inline(always)]
pub(crate) fn maybe_large(ptr: *mut u8) -> bool {
    LARGE_FILTER[filter_bucket(ptr as usize)].load(Ordering::Relaxed) != 0
}

fn filter_bucket(addr: usize) -> usize {
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
}

/// Where the large table's probe for `addr` starts.
fn large_home(addr: usize) -> usize {
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & (LARGE - 1)
}

/// What one sampled block stands for: its share of the estimated bytes and objects.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Weight {
    pub(crate) bytes: u64,
    pub(crate) objects: u64,
}

/// One allocation site's totals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteEntry {
    /// Hash of the stack; 0 marks an empty entry.
    hash: u64,
    pub(crate) depth: u32,
    pub(crate) frames: [usize; MAX_DEPTH],
    pub(crate) samples: u64,
    pub(crate) total: Weight,
    pub(crate) live: Weight,
}

#[derive(Debug, Clone, Copy)]
struct SlotRecord {
    site: u32,
    /// The next free slot plus one (0: none), while the slot is free.
    next_free: u32,
    weight: Weight,
}

#[derive(Debug, Clone, Copy)]
struct LargeEntry {
    /// The block's address; 0 marks an empty entry.
    addr: usize,
    site: u32,
    weight: Weight,
}

/// Counters about the sampler itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) samples: u64,
    pub(crate) untracked: u64,
    pub(crate) overflowed_sites: u64,
    pub(crate) map_failed: bool,
}

struct Store {
    /// Whether `map` was attempted.
    mapped: bool,
    sites: *mut SiteEntry,
    slots: *mut SlotRecord,
    large: *mut LargeEntry,
    large_len: usize,
    region: usize,
    /// Slots handed out at least once (the next never-used slot).
    bumped: u32,
    /// The first free slot plus one (0: none).
    free_head: u32,
    site_count: usize,
    counters: Counters,
}

// SAFETY: the raw pointers address a private mapping owned by the store, only ever accessed
// with the mutex held.
unsafe impl Send for Store {}

fn store() -> MutexGuard<'static, Store> {
    STORE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stack_hash(frames: &[usize]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(23);
    }
    h | 1
}

impl Store {
    const fn unmapped() -> Self {
        Store {
            mapped: false,
            sites: ptr::null_mut(),
            slots: ptr::null_mut(),
            large: ptr::null_mut(),
            large_len: 0,
            region: 0,
            bumped: 0,
            free_head: 0,
            site_count: 0,
            counters: Counters { samples: 0, untracked: 0, overflowed_sites: 0, map_failed: false },
        }
    }

    /// Maps the tables and the region, once. Returns whether they are there.
    fn map(&mut self) -> bool {
        if !self.mapped {
            self.mapped = true;
            let tables = SITES * size_of::<SiteEntry>()
                + SLOTS * size_of::<SlotRecord>()
                + LARGE * size_of::<LargeEntry>();
            let tables = tables.next_multiple_of(SLOT_SIZE);
            match anonymous_map(tables + REGION_LEN) {
                Some(base) => {
                    // Anonymous memory reads as zeroes: every entry starts empty.
                    self.sites = base.cast();
                    // SAFETY: the three tables and the region are disjoint parts of the
                    // mapping just made, each offset within it and suitably aligned (entry
                    // sizes are multiples of 8, the mapping is page-aligned).
                    unsafe {
                        self.slots = base.add(SITES * size_of::<SiteEntry>()).cast();
                        self.large = base.add(SITES * size_of::<SiteEntry>() + SLOTS * size_of::<SlotRecord>()).cast();
                        self.region = base.add(tables) as usize;
                    }
                    REGION.store(self.region, Ordering::Relaxed);
                    REGISTRY.set_region(self.region as u64);
                }
                None => self.counters.map_failed = true,
            }
        }
        !self.sites.is_null()
    }

    fn site(&mut self, frames: &[usize]) -> u32 {
        let hash = stack_hash(frames);
        let mask = SITES - 1;
        let mut i = hash as usize & mask;
        loop {
            if i == OVERFLOW_SITE as usize {
                i = 0;
                continue;
            }
            // SAFETY: `i < SITES`, and the table is mapped (checked by the caller).
            let entry = unsafe { &mut *self.sites.add(i) };
            if entry.hash == 0 {
                if self.site_count >= SITES * 7 / 8 {
                    self.counters.overflowed_sites += 1;
                    return OVERFLOW_SITE;
                }
                self.site_count += 1;
                entry.hash = hash;
                entry.depth = frames.len() as u32;
                entry.frames[..frames.len()].copy_from_slice(frames);
                return i as u32;
            }
            if entry.hash == hash && &entry.frames[..entry.depth as usize] == frames {
                return i as u32;
            }
            i = (i + 1) & mask;
        }
    }

    fn site_mut(&mut self, site: u32) -> &mut SiteEntry {
        // SAFETY: site indices come from `site`, below `SITES`, and the table is mapped.
        unsafe { &mut *self.sites.add(site as usize) }
    }

    fn slot_mut(&mut self, slot: u32) -> &mut SlotRecord {
        // SAFETY: slot indices are below `SLOTS`, and the table is mapped.
        unsafe { &mut *self.slots.add(slot as usize) }
    }

    fn charge(&mut self, site: u32, weight: Weight) {
        let entry = self.site_mut(site);
        entry.samples += 1;
        entry.total.bytes += weight.bytes;
        entry.total.objects += weight.objects;
        entry.live.bytes += weight.bytes;
        entry.live.objects += weight.objects;
    }

    fn discharge(&mut self, site: u32, weight: Weight) {
        let entry = self.site_mut(site);
        entry.live.bytes -= weight.bytes;
        entry.live.objects -= weight.objects;
    }

    fn take_slot(&mut self) -> Option<u32> {
        if self.free_head != 0 {
            let slot = self.free_head - 1;
            self.free_head = self.slot_mut(slot).next_free;
            return Some(slot);
        }
        if (self.bumped as usize) < SLOTS {
            self.bumped += 1;
            return Some(self.bumped - 1);
        }
        None
    }

    fn large_index(&self, addr: usize) -> (usize, bool) {
        let mask = LARGE - 1;
        let mut i = large_home(addr);
        loop {
            // SAFETY: `i < LARGE`, and the table is mapped.
            let entry = unsafe { &*self.large.add(i) };
            if entry.addr == addr {
                return (i, true);
            }
            if entry.addr == 0 {
                return (i, false);
            }
            i = (i + 1) & mask;
        }
    }

    /// Records a live sampled large block (the table has room: at most half full).
    fn large_insert(&mut self, entry: LargeEntry) {
        let (i, found) = self.large_index(entry.addr);
        debug_assert!(!found, "a live block's address cannot be handed out again");
        // SAFETY: `i < LARGE`, and the table is mapped (a site was recorded).
        unsafe { *self.large.add(i) = entry };
        self.large_len += 1;
        LARGE_FILTER[filter_bucket(entry.addr)].fetch_add(1, Ordering::Relaxed);
    }

    /// Removes entry `i` of the large table (linear probing: later entries of the same run
    /// move back, so lookups never stop at a hole).
    fn large_remove(&mut self, mut i: usize) {
        let mask = LARGE - 1;
        // SAFETY: `i < LARGE` (from `large_index`), and the table is mapped.
        let addr = unsafe { (*self.large.add(i)).addr };
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            // SAFETY: indices are masked below `LARGE`, and the table is mapped.
            let next = unsafe { *self.large.add(j) };
            if next.addr == 0 {
                break;
            }
            let home = large_home(next.addr);
            // `next` may fill the hole at `i` if its home is not in the cyclic range (i, j].
            let stays = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if !stays {
                // SAFETY: as above.
                unsafe { *self.large.add(i) = next };
                i = j;
            }
        }
        // SAFETY: as above.
        let removed = unsafe { std::mem::replace(&mut (*self.large.add(i)).addr, 0) };
        debug_assert_ne!(removed, 0);
        self.large_len -= 1;
        LARGE_FILTER[filter_bucket(addr)].fetch_sub(1, Ordering::Relaxed);
    }
}

fn anonymous_map(len: usize) -> Option<*mut u8> {
    #[cfg(unix)]
    {
        // SAFETY: a fresh private anonymous mapping: no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (base != libc::MAP_FAILED).then_some(base.cast())
    }
    #[cfg(not(unix))]
    {
        let _ = len;
        None
    }
}

/// Where a sampled allocation goes.
pub(crate) enum Placement {
    /// A region slot, already recorded.
    Slot(*mut u8),
    /// The inner allocator; pass the block to `track_large` if it is larger than a slot.
    Inner { site: u32 },
}

/// Records a sample of `frames` and finds its block a place.
pub(crate) fn sample(frames: &[usize], weight: Weight, size: usize, align: usize) -> Placement {
    let mut store = store();
    store.counters.samples += 1;
    if !store.map() {
        store.counters.untracked += 1;
        return Placement::Inner { site: u32::MAX };
    }
    let site = store.site(frames);
    store.charge(site, weight);
    if size <= SLOT_SIZE && align <= SLOT_SIZE {
        if let Some(slot) = store.take_slot() {
            *store.slot_mut(slot) = SlotRecord { site, next_free: 0, weight };
            return Placement::Slot((store.region + slot as usize * SLOT_SIZE) as *mut u8);
        }
    }
    if size <= SLOT_SIZE {
        // Nowhere to record it: its allocation stays counted, its free will not be seen.
        store.discharge(site, weight);
        store.counters.untracked += 1;
    }
    Placement::Inner { site }
}

/// Records a sampled block larger than a slot that the inner allocator served.
pub(crate) fn track_large(addr: *mut u8, site: u32, weight: Weight) {
    let mut store = store();
    if site == u32::MAX {
        return;
    }
    let addr = addr as usize;
    if addr == 0 || store.large_len >= LARGE / 2 {
        store.discharge(site, weight);
        store.counters.untracked += 1;
        return;
    }
    store.large_insert(LargeEntry { addr, site, weight });
}

/// Releases a block of the region.
pub(crate) fn free_slot(ptr: *mut u8) {
    let mut store = store();
    let slot = ((ptr as usize - store.region) / SLOT_SIZE) as u32;
    let record = *store.slot_mut(slot);
    store.discharge(record.site, record.weight);
    let head = store.free_head;
    store.slot_mut(slot).next_free = head;
    store.free_head = slot + 1;
}

/// Forgets a large block if it was sampled (it is being freed or moved by the inner
/// allocator).
pub(crate) fn forget_large(ptr: *mut u8) {
    let mut store = store();
    if store.large.is_null() {
        return;
    }
    let (i, found) = store.large_index(ptr as usize);
    if found {
        // SAFETY: `i < LARGE`, and the table is mapped.
        let entry = unsafe { *store.large.add(i) };
        store.discharge(entry.site, entry.weight);
        store.large_remove(i);
    }
}

/// A copy of every site with samples, and the sampler's counters. `into` must have room for
/// every site: nothing may allocate while the store is locked.
pub(crate) fn sites(into: &mut Vec<SiteEntry>) -> Counters {
    into.reserve(SITES);
    let store = store();
    if !store.sites.is_null() {
        for i in 0..SITES {
            // SAFETY: `i < SITES`, and the table is mapped.
            let entry = unsafe { &*store.sites.add(i) };
            if entry.samples != 0 {
                into.push(*entry);
            }
        }
    }
    store.counters
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn mapped() -> Store {
        let mut store = Store::unmapped();
        assert!(store.map(), "the tables could not be mapped");
        store
    }

    fn site_at(store: &Store, i: usize) -> u32 {
        assert!(i < LARGE);
        // SAFETY: `i < LARGE`, and the table is mapped.
        unsafe { (*store.large.add(i)).site }
    }

    fn filter(addr: usize) -> u32 {
        LARGE_FILTER[filter_bucket(addr)].load(Ordering::Relaxed)
    }

    /// The large-block table against a `HashMap`: random inserts and removals (with clustered
    /// addresses, so that probe runs wrap and removals shift entries back), every lookup
    /// agreeing with the model, and the filter counting each live address.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory with mmap flags Miri does not emulate")]
    fn the_large_table_agrees_with_a_map_through_inserts_and_removals() {
        let mut store = mapped();
        let mut model: HashMap<usize, u32> = HashMap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let filter_before: u32 = (0..1 << FILTER_BITS).map(|b| LARGE_FILTER[b].load(Ordering::Relaxed)).sum();
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct addresses, 16-byte aligned as blocks are: lots of collisions.
            let addr = 0x10_0000 + ((x % 6000) as usize) * 16;
            let (i, found) = store.large_index(addr);
            assert_eq!(found, model.contains_key(&addr), "step {step}");
            if found {
                assert_eq!(site_at(&store, i), model[&addr]);
                store.large_remove(i);
                model.remove(&addr);
            } else if store.large_len < LARGE / 2 {
                store.large_insert(LargeEntry { addr, site: step, weight: Weight::default() });
                model.insert(addr, step);
            }
            assert_eq!(store.large_len, model.len());
            if step % 10_000 == 0 {
                for (&addr, &site) in &model {
                    let (i, found) = store.large_index(addr);
                    assert!(found && site_at(&store, i) == site);
                    assert!(filter(addr) > 0);
                }
            }
        }
        for addr in model.keys().copied().collect::<Vec<_>>() {
            let (i, found) = store.large_index(addr);
            assert!(found);
            store.large_remove(i);
        }
        assert_eq!(store.large_len, 0);
        let filter_after: u32 = (0..1 << FILTER_BITS).map(|b| LARGE_FILTER[b].load(Ordering::Relaxed)).sum();
        assert_eq!(filter_after, filter_before, "every insert's filter count was taken back");
    }

    /// Sites: the same stack finds the same site, different stacks different ones, and past
    /// seven eighths of the table every new stack goes to the overflow site.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory with mmap flags Miri does not emulate")]
    fn sites_are_found_again_and_overflow_into_one_site() {
        let mut store = mapped();
        let a = store.site(&[1, 2, 3]);
        assert_eq!(store.site(&[1, 2, 3]), a);
        assert_ne!(store.site(&[1, 2, 4]), a);
        assert_ne!(store.site(&[1, 2]), a);
        let mut overflowed = 0;
        for n in 0..SITES {
            if store.site(&[n, n + 1]) == OVERFLOW_SITE {
                overflowed += 1;
            }
        }
        assert_eq!(store.site_count, SITES * 7 / 8);
        assert_eq!(overflowed as u64, store.counters.overflowed_sites);
        assert_eq!(store.site(&[1, 2, 3]), a, "a known stack is still found when the table is full");
    }

    /// Slots are handed out once each until freed, freed ones first again.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory with mmap flags Miri does not emulate")]
    fn slots_are_reused_after_release_and_run_out_cleanly() {
        let mut store = mapped();
        let first = store.take_slot().unwrap();
        let second = store.take_slot().unwrap();
        assert_ne!(first, second);
        store.slot_mut(first).next_free = store.free_head;
        store.free_head = first + 1;
        assert_eq!(store.take_slot(), Some(first));
        let mut handed = 2;
        while store.take_slot().is_some() {
            handed += 1;
        }
        assert_eq!(handed, SLOTS);
    }
}
