//! The frequency sketch of W-TinyLFU's admission filter: how often each key was seen recently,
//! approximately, in 4 bits a counter and about 4 bytes per entry of the shard.
//!
//! # Implementation details
//!
//! A count-min sketch (Cormode and Muthukrishnan) of 4-bit counters, 16 to a `u64` word. A key
//! has four counters, all in one block of 8 words (64 bytes, one cache line): counter `i` sits in
//! word `2i` or `2i + 1` of the block, at a nibble, all chosen by the key's hash. Its estimate is
//! the least of the four. An increment raises all four (up to 15).
//!
//! The "conservative update" (raising only the counters at the least value) estimates counts more
//! closely, and lost hit ratio for it: replaying `hitratio` three times on every trace, W-TinyLFU
//! averaged 36.6% on `zigzag` at 1,000 entries with it and 43.9% without, 69.1% against 72.4% on
//! `loop` at 800, 18.9% against 20.4% at 256 and 10.0% against 11.3% on P3 at 20,000, while no
//! row lost more than 0.3 points. Why is not established. A table of 16 or 32 counters an entry,
//! whose counts are also closer, lost `zigzag` too (35.1% and 28.2%), so on these traces admission
//! does better with counts that run above the truth; one untested reading is that such counts let
//! keys active lately beat residents sooner.
//! (BENCHMARKS.md, "W-TinyLFU with a hill-climbed window", says how these were measured.)
//!
//! The table holds 8 counters per entry of the shard (two per key's counter), 4 bytes, plus 1/8
//! so that it is not rebuilt for each entry the shard gains. A rebuild carries over the estimates
//! of the keys in the shard (without them, a shard filling up would forget the popularity of the
//! keys it holds, and admit newcomers over them). Blocks are chosen by multiply-shift, so the
//! table need not be a power of two.
//!
//! Aging (TinyLFU's "reset"): after 10 accesses per entry, every counter is halved, so the
//! sketch reflects recent popularity and a key once hot does not stay admitted for ever. A miss
//! is counted by its increment; hits reach the sketch late (the policy adds an entry's hits, up
//! to 3, when it next looks at it: `policy.rs`), so they are counted towards the halving when
//! they happen ([`Sketch::age_by`]) and their later [`Sketch::add`] counts nothing.

/// Approximate recent access counts; see the module docs.
pub(crate) struct Sketch {
    words: Vec<u64>,
    /// Accesses counted since the last halving.
    additions: u64,
    /// Accesses between two halvings: 10 per entry the table was sized for.
    period: u64,
}

impl Sketch {
    /// Worst case: 4 bytes an entry, plus the 1/8 of headroom and a block's rounding, rounded up.
    pub(crate) const BYTES_PER_ENTRY: usize = 5;
    /// Counters per entry of the shard.
    const COUNTERS_PER_ENTRY: usize = 8;
    /// Words in a block (a cache line).
    const BLOCK: usize = 8;
    /// The highest count a 4-bit counter holds.
    const MAX: u64 = 15;
    /// Increments per entry between two halvings.
    const PERIOD_PER_ENTRY: u64 = 10;

    pub(crate) const fn new() -> Self {
        Self { words: Vec::new(), additions: 0, period: 0 }
    }

    /// Sizes the table for a shard of `entries` entries. A table that is too small is replaced;
    /// `resident` visits the table hashes of the keys in the shard, whose estimates the new table
    /// keeps (the others' are lost), so that a growing shard does not forget its popular keys.
    pub(crate) fn ensure(&mut self, entries: usize, resident: impl FnOnce(&mut dyn FnMut(u64))) {
        let want = entries.max(64) * Self::COUNTERS_PER_ENTRY / 16;
        if self.words.len() >= want {
            return;
        }
        let len = (want + want / 8).next_multiple_of(Self::BLOCK);
        let old = std::mem::replace(
            self,
            Self {
                words: vec![0; len],
                additions: 0,
                period: (len * 16 / Self::COUNTERS_PER_ENTRY) as u64 * Self::PERIOD_PER_ENTRY,
            },
        );
        if !old.words.is_empty() {
            resident(&mut |hash| self.raise(hash, u64::from(old.frequency(hash))));
        }
    }

    /// Raises the key's counters to at least `count`.
    fn raise(&mut self, hash: u64, count: u64) {
        let (start, places) = self.locate(hash);
        let block = self.block_mut(start);
        for (word, shift) in places {
            let counter = (block[word] >> shift) & Self::MAX;
            if counter < count {
                block[word] += (count - counter) << shift;
            }
        }
    }

    /// The key's block (the index of its first word), and the word within the block (0 to 7)
    /// and the bit offset of each of its four counters.
    #[inline]
    fn locate(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        // A second mix of the table hash, so that the block and the positions within it do not
        // follow the index's use of the same bits.
        let mut x = hash ^ (hash >> 32);
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^= x >> 32;
        let blocks = (self.words.len() / Self::BLOCK) as u64;
        let block = (((x & 0xFFFF_FFFF) * blocks) >> 32) as usize * Self::BLOCK;
        let bits = x >> 32;
        let places = std::array::from_fn(|i| {
            // 5 bits per counter: one picks the word of the pair, four the nibble.
            let pick = bits >> (5 * i);
            let word = 2 * i + (pick & 1) as usize;
            let shift = ((pick >> 1) & 15) as u32 * 4;
            (word, shift)
        });
        (block, places)
    }

    /// The block of 8 words at `start`: one bounds check for the four counters in it.
    #[inline]
    fn block(&self, start: usize) -> &[u64; Self::BLOCK] {
        self.words[start..start + Self::BLOCK].try_into().expect("a block is BLOCK words")
    }

    #[inline]
    fn block_mut(&mut self, start: usize) -> &mut [u64; Self::BLOCK] {
        (&mut self.words[start..start + Self::BLOCK]).try_into().expect("a block is BLOCK words")
    }

    /// The key's estimated count, 0 to 15.
    #[inline]
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        if self.words.is_empty() {
            return 0;
        }
        let (start, places) = self.locate(hash);
        let block = self.block(start);
        places.iter().map(|&(word, shift)| ((block[word] >> shift) & Self::MAX) as u8).min().unwrap_or(0)
    }

    /// Counts one access of the key: each of its counters below the maximum goes up by one.
    pub(crate) fn increment(&mut self, hash: u64) {
        if self.words.is_empty() {
            return;
        }
        let (start, places) = self.locate(hash);
        let block = self.block_mut(start);
        let mut added = false;
        for (word, shift) in places {
            if (block[word] >> shift) & Self::MAX < Self::MAX {
                block[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.age_by(1);
        }
    }

    /// Raises the key's counters by `n` (up to the maximum) without counting an access: hits
    /// already counted with [`age_by`](Self::age_by), reported later.
    pub(crate) fn add(&mut self, hash: u64, n: u8) {
        if self.words.is_empty() {
            return;
        }
        let (start, places) = self.locate(hash);
        let block = self.block_mut(start);
        for (word, shift) in places {
            let counter = (block[word] >> shift) & Self::MAX;
            block[word] += (Self::MAX - counter).min(u64::from(n)) << shift;
        }
    }

    /// Counts `n` accesses towards the next halving.
    pub(crate) fn age_by(&mut self, n: u64) {
        self.additions += n;
        if self.period != 0 && self.additions >= self.period {
            self.halve();
            // Once however many periods a batch spans: Caffeine's reset, too, halves once.
            self.additions = self.additions.min(self.period / 2);
        }
    }

    /// Halves every counter.
    fn halve(&mut self) {
        for word in &mut self.words {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::new();
    }

    /// Heap bytes held.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.words.capacity() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: u64) -> u64 {
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn hits_added_late_raise_counts_but_age_only_when_they_happened() {
        let mut sketch = Sketch::new();
        sketch.ensure(1_000, |_| ());
        sketch.add(hash(1), 3);
        sketch.add(hash(1), 2);
        assert_eq!(sketch.frequency(hash(1)), 5);
        assert_eq!(sketch.additions, 0, "late hits were counted when they happened");
        for _ in 0..5 {
            sketch.add(hash(1), 3);
        }
        assert_eq!(sketch.frequency(hash(1)), 15, "saturates");
        let period = sketch.period;
        sketch.age_by(period - 1);
        assert_eq!(sketch.frequency(hash(1)), 15);
        sketch.age_by(1);
        assert_eq!(sketch.frequency(hash(1)), 7, "halved after a period of accesses");
        // A batch of hits spanning many periods halves once, and leaves the next period shorter
        // than a whole one.
        sketch.age_by(10 * period);
        assert_eq!(sketch.frequency(hash(1)), 3);
        assert!(sketch.additions < period);
    }

    #[test]
    fn counts_a_few_keys_exactly_and_saturates() {
        let mut sketch = Sketch::new();
        sketch.ensure(1_000, |_| ());
        for _ in 0..3 {
            sketch.increment(hash(1));
        }
        for _ in 0..40 {
            sketch.increment(hash(2));
        }
        assert_eq!(sketch.frequency(hash(1)), 3);
        assert_eq!(sketch.frequency(hash(2)), 15);
        assert_eq!(sketch.frequency(hash(3)), 0);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "safe arithmetic on one thread, nothing for Miri to find; 4,800 increments take half a minute there"
    )]
    fn a_full_table_still_tells_hot_keys_from_cold() {
        // 1,000 entries' worth of table; 100 hot keys seen 8 times each among 4,000 keys seen once.
        let mut sketch = Sketch::new();
        sketch.ensure(1_000, |_| ());
        for round in 0..8u64 {
            for key in 0..100 {
                sketch.increment(hash(key));
            }
            for key in 0..500 {
                sketch.increment(hash(10_000 + round * 500 + key));
            }
        }
        let hot_low = (0..100).filter(|&key| sketch.frequency(hash(key)) < 8).count();
        let cold_as_hot = (10_000..14_000).filter(|&key| sketch.frequency(hash(key)) >= 8).count();
        let cold_high = (10_000..14_000).filter(|&key| sketch.frequency(hash(key)) >= 4).count();
        assert_eq!(hot_low, 0, "count-min estimates never fall below the true count");
        assert_eq!(cold_as_hot, 0, "{cold_as_hot} of 4,000 keys seen once read as hot");
        // Every increment raises all four counters, so collisions inflate more than they would
        // with conservative updates (which kept this under 1%; see the module docs).
        assert!(cold_high * 50 <= 4_000, "{cold_high} of 4,000 keys seen once read as 4 or more");
    }

    #[test]
    fn a_growing_table_keeps_the_counts_of_resident_keys() {
        let mut sketch = Sketch::new();
        sketch.ensure(64, |_| ());
        for _ in 0..5 {
            sketch.increment(hash(1));
            sketch.increment(hash(2));
        }
        sketch.ensure(10_000, |visit| visit(hash(1)));
        assert_eq!(sketch.words.len(), 5_632);
        assert_eq!((sketch.frequency(hash(1)), sketch.frequency(hash(2))), (5, 0));
    }

    #[test]
    fn counts_halve_after_ten_increments_per_entry() {
        let mut sketch = Sketch::new();
        sketch.ensure(64, |_| ());
        let period = sketch.period;
        for _ in 0..6 {
            sketch.increment(hash(7));
        }
        assert_eq!(sketch.frequency(hash(7)), 6);
        // The rest of the period but one, other keys once each (their collisions may raise the
        // key's counters), then the key once more: that increment halves every counter.
        let mut key = 1_000;
        while sketch.additions < period - 1 {
            sketch.increment(hash(key));
            key += 1;
        }
        let before = sketch.frequency(hash(7));
        assert!((6..15).contains(&before), "{before}");
        sketch.increment(hash(7));
        assert_eq!(sketch.additions, period / 2);
        // One more, then halved: (before + 1) / 2.
        assert_eq!(sketch.frequency(hash(7)), before.div_ceil(2));
    }
}
