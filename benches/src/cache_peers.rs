//! The caches the throughput benchmarks compare, behind one trait, and the Zipf key draws they
//! replay: shared by the `cache` bench and the `cache-instructions` binary, so that the
//! instructions counted are those of the code timed.

use std::hint::black_box;
use std::num::NonZeroUsize;

use bounded_cache::{Cache, Policy};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};

/// Distinct keys the draws come from.
pub const KEYS: u64 = 1_000_000;
/// The capacity of `cache-zipf-read` and `cache-zipf-mixed`: about 10% of the keys.
pub const CAPACITY: u64 = 100_000;
/// The capacity of `cache-zipf-read-90`: the 250,000 most popular of Zipf(1.0) over 1,000,000
/// keys take H(250,000) / H(1,000,000) = 90.4% of the draws, the hit ratio of a cache that would
/// keep exactly them.
pub const CAPACITY_90: u64 = 250_000;
/// In `cache-zipf-mixed`, one operation in this many is an insert (of the key drawn).
pub const INSERT_EVERY: usize = 10;
/// Keys drawn per thread, replayed cyclically.
pub const DRAWS: usize = 1 << 20;

/// A cache of `u64` to `u64` under test.
pub trait Bench: Sync {
    /// The value of `key`, if cached.
    fn get(&self, key: u64) -> Option<u64>;
    /// Caches `value` under `key`.
    fn insert(&self, key: u64, value: u64);
}

impl Bench for Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        let _ = Cache::insert(self, key, value);
    }
}

impl Bench for moka::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
}

impl Bench for quick_cache::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl Bench for tinyufo::TinyUfo<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        tinyufo::TinyUfo::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.put(key, value, 1);
    }
}

impl Bench for parking_lot::Mutex<lru::LruCache<u64, u64>> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.lock().get(&key).copied()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.lock().put(key, value);
    }
}

fn ours(policy: Policy, capacity: u64) -> Box<dyn Bench> {
    // A byte budget that holds `capacity` entries of (u64, u64).
    let probe: Cache<u64, u64> = Cache::builder(1 << 20).policy(policy).build().unwrap();
    let budget = capacity * probe.weigh(&0, &0);
    Box::new(Cache::<u64, u64>::builder(budget).policy(policy).build().unwrap())
}

/// A constructor of a cache under test, given its capacity in entries.
pub type Constructor = fn(u64) -> Box<dyn Bench>;

/// A named [`Constructor`].
pub type Make = (&'static str, Constructor);

/// Every cache compared, by its id in the benchmark groups.
pub fn implementations() -> Vec<Make> {
    vec![
        // The recommended policy, which is the default (W-TinyLFU).
        ("ours", |n| ours(Policy::default(), n)),
        ("ours-s3fifo", |n| ours(Policy::S3Fifo, n)),
        ("ours-lru", |n| ours(Policy::Lru, n)),
        ("moka", |n| Box::new(moka::sync::Cache::<u64, u64>::new(n))),
        ("quick_cache", |n| Box::new(quick_cache::sync::Cache::<u64, u64>::new(n as usize))),
        ("tinyufo", |n| Box::new(tinyufo::TinyUfo::<u64, u64>::new(n as usize, n as usize))),
        ("tinyufo-compact", |n| Box::new(tinyufo::TinyUfo::<u64, u64>::new_compact(n as usize, n as usize))),
        ("lru", |n| {
            Box::new(parking_lot::Mutex::new(lru::LruCache::new(NonZeroUsize::new(n as usize).unwrap())))
        }),
    ]
}

/// The constructor of the implementation named `name` (an id of [`implementations`]), or a
/// message that names the ids there are.
pub fn implementation(name: &str) -> Result<Constructor, String> {
    let all = implementations();
    match all.iter().find(|(id, _)| *id == name) {
        Some(&(_, make)) => Ok(make),
        None => {
            let ids: Vec<_> = all.iter().map(|(id, _)| *id).collect();
            Err(format!("unknown implementation {name}; one of {}", ids.join(", ")))
        }
    }
}

/// A cache of `capacity` entries filled with keys `capacity` down to 1 (the most popular last).
pub fn filled(make: Constructor, capacity: u64) -> Box<dyn Bench> {
    let cache = make(capacity);
    for k in (1..=capacity).rev() {
        cache.insert(k, k);
    }
    cache
}

/// [`DRAWS`] keys drawn Zipf(1.0) from 1..=[`KEYS`], the sequence of thread `seed`.
pub fn draws(seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(KEYS as f64, 1.0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..DRAWS).map(|_| zipf.sample(&mut rng) as u64).collect()
}

/// Gets each of `keys` in turn and returns how many hit. Never inlined, so that callgrind can
/// count the instructions inside it alone (`cache-instructions`).
#[inline(never)]
pub fn get_all(cache: &dyn Bench, keys: &[u64]) -> usize {
    keys.iter().filter(|&&key| black_box(cache.get(key)).is_some()).count()
}

/// Inserts every [`INSERT_EVERY`]th of `keys` (the inserts of `cache-zipf-mixed`), with the key as
/// its value, and returns how many it inserted. Never inlined, as [`get_all`].
#[inline(never)]
pub fn insert_some(cache: &dyn Bench, keys: &[u64]) -> usize {
    keys.iter().step_by(INSERT_EVERY).map(|&key| cache.insert(black_box(key), key)).count()
}

/// The operations of `cache-zipf-mixed` over `keys`: every [`INSERT_EVERY`]th key inserted (with
/// itself as its value), the others got. Returns the hits. Never inlined, as [`get_all`].
#[inline(never)]
pub fn mixed_all(cache: &dyn Bench, keys: &[u64]) -> usize {
    let mut hits = 0;
    for (n, &key) in keys.iter().enumerate() {
        if n % INSERT_EVERY == 0 {
            cache.insert(black_box(key), key);
        } else {
            hits += usize::from(black_box(cache.get(key)).is_some());
        }
    }
    hits
}
