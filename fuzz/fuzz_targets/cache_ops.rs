//! Replays operation sequences on `bounded-cache` against reference models.
//!
//! - One shard, LRU, against an exact model: a `Vec` in recency order with the cache's weights.
//!   The contents and the weighed size must match it after every operation, and the eviction
//!   order after every operation but a get (so that runs of gets leave batches of recorded hits
//!   for one replay, whose order is checked with the rest).
//! - Four shards, S3-FIFO and then W-TinyLFU, against a validity model: the victims differ, but
//!   after every operation the weighed size is within the budget and equals the weight of the
//!   live entries, and a read returns only a value that is still valid for its key (the last one
//!   written and not invalidated since).
//!
//! Both caches have a time to idle on a clock that moves only by `Advance`, and entries may have
//! their own time to live: the models keep each entry's deadline (moved by reads, capped by the
//! time to live) and check that nothing expired is ever returned, that `peek` moves nothing, and
//! (exactly, in the LRU model) which entries a read keeps alive. Entries the cache's sweep has
//! reclaimed must be expired ones. `compute` puts, removes or keeps, checked like the writes.
//!
//! Refreshing reads (`try_get_or_refresh_with`, entries due 4 ms after they are written, served
//! stale for 3 ms after they expire) run their reload inline on a due or stale hit; the reload's
//! loader, like a load's, runs another operation first, so writes and invalidations race reloads
//! as they race loads. The exact model keeps each entry's refresh time and grace, checks that a
//! read returns the value it found (stale within the grace), that a reload stores its value only
//! when nothing invalidated the key meanwhile and it succeeded, and that the cache reclaims only
//! entries past their grace.
//!
//! Loads run another operation from inside their loader, so every invalidation (remove, insert
//! of the key, `invalidate_if`, clear, a smaller budget) races a load in flight, deterministically:
//! the models check that the invalidated load's value is returned to its caller but never stored.
//! User callbacks panic on request (the listener, the predicate, the weigher, the loader): the
//! panic is contained where the cache promises it (the listener) or reaches the caller, and
//! either way the accounting must still reconcile.
#![no_main]

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arbitrary::Arbitrary;
use std::time::Duration;

use bounded_cache::{Cache, Compute, Computed, InsertError, LoadError, ManualClock, Policy, RemovalCause};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Insert {
        key: u8,
        len: u8,
    },
    Get {
        key: u8,
    },
    Remove {
        key: u8,
    },
    /// A load of `key` whose loader runs `during` (if any) before returning its value.
    Load {
        key: u8,
        len: u8,
        during: Option<Box<Op>>,
    },
    /// A load whose loader fails or panics.
    FailedLoad {
        key: u8,
        panics: bool,
    },
    /// `invalidate_if` on `key % modulus == rest`, its predicate panicking at call `panic_at`.
    Invalidate {
        modulus: u8,
        rest: u8,
        panic_at: Option<u8>,
    },
    SetBudget {
        budget: u16,
    },
    Clear,
    /// Whether the eviction listener panics from now on.
    ArmListener {
        armed: bool,
    },
    /// Moves the clock `ms` milliseconds.
    Advance {
        ms: u8,
    },
    /// An insert with its own time to live of `ttl_ms % 32 + 1` milliseconds.
    InsertTtl {
        key: u8,
        len: u8,
        ttl_ms: u8,
    },
    Peek {
        key: u8,
    },
    /// `compute`: `action % 3` puts a new value of length `len`, removes, or keeps.
    Compute {
        key: u8,
        len: u8,
        action: u8,
    },
    /// `try_get_or_refresh_with`: a due hit reloads (inline), the reload's loader running
    /// `during` first and then succeeding, failing or panicking by `fails % 3`; a miss loads.
    Refresh {
        key: u8,
        len: u8,
        during: Option<Box<Op>>,
        fails: u8,
    },
}

/// The caches' time to idle, in milliseconds.
const TTI_MS: u64 = 8;

/// The caches' refresh period, in milliseconds.
const REFRESH_MS: u64 = 4;

/// The caches' stale-while-revalidate grace, in milliseconds.
const GRACE_MS: u64 = 3;

/// Milliseconds on the harness clock, in the cache's units: nanoseconds.
fn ms(n: u64) -> u64 {
    n * 1_000_000
}

#[derive(Arbitrary, Debug)]
struct Input {
    budget: u16,
    /// Keys modulo [`KEYS`] and small clock steps, so that operations on one key meet often
    /// enough to chain a write, reads, time passing and a compute; otherwise all 256 keys.
    narrow: bool,
    ops: Vec<Op>,
}

type Value = (u8, u32); // (key, write sequence * 200 + len)

/// A length that makes the weigher panic.
const POISON_LEN: u32 = 199;

fn weigher(_: &u8, v: &Value) -> usize {
    if v.1 % 200 == POISON_LEN {
        panic!("fuzz panic: weigher");
    }
    (v.1 % 200) as usize
}

type TestCache = Cache<u8, Value, fn(&u8, &Value) -> usize>;

thread_local! {
    /// Set while a panic is expected: the hook then stays quiet instead of aborting.
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
}

/// libFuzzer's hook aborts on any panic; let through the ones this target provokes. (A panic
/// that escapes the target still aborts: libFuzzer's wrapper catches it and aborts.)
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING.with(Cell::get) {
                abort(info);
            }
        }));
    });
}

/// Runs `f`, which may panic on purpose; returns `None` if it did.
fn may_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    let outer = EXPECTING.with(|e| e.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|e| e.set(outer));
    result.ok()
}

struct Harness {
    cache: TestCache,
    armed: Arc<AtomicBool>,
    listener_calls: Arc<AtomicU64>,
    seq: u32,
    clock: ManualClock,
}

impl Harness {
    fn new(budget: u64, shards: usize, policy: Policy) -> Self {
        let armed = Arc::new(AtomicBool::new(false));
        let listener_calls = Arc::new(AtomicU64::new(0));
        let (a, calls) = (Arc::clone(&armed), Arc::clone(&listener_calls));
        let clock = ManualClock::new();
        let cache = Cache::builder(budget)
            .shards(shards)
            .policy(policy)
            .time_to_idle(Duration::from_millis(TTI_MS))
            .refresh_after(Duration::from_millis(REFRESH_MS))
            .stale_while_revalidate(Duration::from_millis(GRACE_MS))
            // Inline, on the reading thread, before the read returns (see `refresh`).
            .refresh_executor(|refresh| refresh.run())
            .clock(clock.clone())
            .weigher(weigher as fn(&u8, &Value) -> usize)
            .eviction_listener(move |_, _, _: RemovalCause| {
                calls.fetch_add(1, Ordering::Relaxed);
                if a.load(Ordering::Relaxed) {
                    // Contained by the cache, whichever operation made the entry leave.
                    EXPECTING.with(|e| e.set(true));
                    panic!("fuzz panic: listener");
                }
            })
            .build()
            .unwrap();
        Self { cache, armed, listener_calls, seq: 0, clock }
    }

    fn value(&mut self, key: u8, len: u8) -> Value {
        self.seq += 1;
        (key, self.seq * 200 + u32::from(len) % 200)
    }

    /// Nanoseconds advanced so far (the models' time).
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn weight(&self, key: u8, value: &Value) -> Option<u64> {
        (value.1 % 200 != POISON_LEN).then(|| self.cache.weigh(&key, value))
    }

    /// The weighed size equals the weight of the live entries and is within the budget; the
    /// listener's panics are all counted.
    ///
    /// Expired entries not yet reclaimed are weighed but not iterated: while there are any, the
    /// weighed size is only checked to exceed the live entries' weight (each run ends with
    /// `purge_expired` and the exact check).
    fn reconcile(&self) {
        let cache = &self.cache;
        let (count, live) = cache.iter().fold((0, 0u64), |(n, w), (k, v)| (n + 1, w + cache.weigh(&k, &v)));
        if count == cache.len() {
            assert_eq!(cache.weighed_size(), live);
        } else {
            assert!(cache.weighed_size() > live);
        }
        assert!(cache.weighed_size() <= cache.budget());
        let stats = cache.stats();
        assert_eq!(stats.weighed_size, cache.weighed_size());
        assert!(stats.listener_panics <= self.listener_calls.load(Ordering::Relaxed));
    }
}

/// What a compute did: the values its function saw, and its result (`None`: it panicked).
type ComputeRun = (Vec<Option<Value>>, Option<Result<Computed<Value>, InsertError<u8, Value>>>);

/// Runs `compute` on `key`: `action % 3` puts `value`, removes, or keeps.
fn compute(h: &Harness, key: u8, value: Value, action: u8) -> ComputeRun {
    let mut seen = Vec::new();
    let computed = may_panic(|| {
        h.cache.compute(key, |cur| {
            seen.push(cur.copied());
            match action % 3 {
                0 => Compute::Put(value),
                1 => Compute::Remove,
                _ => Compute::Keep,
            }
        })
    });
    (seen, computed)
}

/// A compute from inside the loader of its own key panics instead of deadlocking, changing
/// nothing; true (checked) if this is that case.
fn computing_own_load(h: &Harness, key: u8, loading: Option<u8>) -> bool {
    if loading != Some(key) {
        return false;
    }
    assert!(may_panic(|| h.cache.compute(key, |_| Compute::Keep)).is_none());
    true
}

/// Whether `op`, run while a load of `key` is in flight, invalidates that load.
fn invalidates(op: &Op, key: u8, budget: u64) -> bool {
    match op {
        Op::Remove { key: k } => *k == key,
        // An insert whose weigher panics never happened.
        Op::Insert { key: k, len } | Op::InsertTtl { key: k, len, .. } => {
            *k == key && u32::from(*len) % 200 != POISON_LEN
        }
        Op::Invalidate { .. } | Op::Clear => true,
        Op::SetBudget { budget: b } => u64::from((*b).max(1)) < budget,
        _ => false,
    }
}

/// A harness and its model, for a reload's loader, which must be `Send + 'static`.
struct Models<M>(*mut Harness, *mut M);

// SAFETY: the executor runs every reload inline, on the reading thread, before the read returns
// (`Harness::new`); the pointers never leave that thread.
unsafe impl<M> Send for Models<M> {}

/// Runs a refreshing read of `key` whose reload (if it runs) calls `during(h, m)` first, then
/// returns `value`, fails or panics by `fails % 3`; `None` if the call panicked.
fn refresh<M: 'static>(
    h: &mut Harness,
    m: &mut M,
    key: u8,
    value: Value,
    fails: u8,
    during: impl FnOnce(&mut Harness, &mut M) + Send + 'static,
) -> Option<Result<Value, LoadError<&'static str>>> {
    let cache = h.cache.clone();
    let models = Models(h, m);
    may_panic(move || {
        cache.try_get_or_refresh_with(key, move || {
            let models = models;
            // SAFETY: see `Models`: the reload runs inside this call, while the caller's `h` and
            // `m` are not otherwise used, and the pointers come from those exclusive borrows.
            let (h, m) = unsafe { (&mut *models.0, &mut *models.1) };
            during(h, m);
            match fails % 3 {
                0 => Ok(value),
                1 => Err("down"),
                _ => panic!("fuzz panic: reload"),
            }
        })
    })
}

// ----- the exact model: one LRU shard -----

/// `now + span`, capped by `cap` unless that is 0 (none).
fn capped(now: u64, span: u64, cap: u64) -> u64 {
    if cap == 0 { now + span } else { (now + span).min(cap) }
}

/// A model entry: its deadline `at` (moved by reads) and `cap` (from its own time to live).
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u8,
    value: Value,
    weight: u64,
    at: u64,
    cap: u64,
    /// When a refreshing read reloads it.
    refresh: u64,
}

impl Entry {
    fn new(key: u8, value: Value, weight: u64, now: u64, ttl: Option<u64>) -> Self {
        let cap = ttl.map_or(0, |t| now + t);
        Entry { key, value, weight, at: capped(now, ms(TTI_MS), cap), cap, refresh: now + ms(REFRESH_MS) }
    }
    fn live(&self, now: u64) -> bool {
        now < self.at
    }
    /// Expired past the grace in which a refreshing read may still serve it: the cache reclaims
    /// it when it meets it.
    fn reclaimable(&self, now: u64) -> bool {
        now >= self.at + ms(GRACE_MS)
    }
}

struct Lru {
    /// Least recent first; expired entries stay until the cache is seen to drop them.
    order: Vec<Entry>,
    used: u64,
    budget: u64,
}

impl Lru {
    fn pos(&self, key: u8) -> Option<usize> {
        self.order.iter().position(|e| e.key == key)
    }
    fn evict_to(&mut self, limit: u64) {
        while self.used > limit {
            let e = self.order.remove(0);
            self.used -= e.weight;
        }
    }
    /// A store: the least recent entries leave until the new one fits, counting the weight of the
    /// key's own entry as freed (the new value takes it over), so that a replacement no heavier
    /// than its old value evicts nothing.
    fn insert(&mut self, entry: Entry) -> bool {
        if entry.weight > self.budget {
            return false;
        }
        loop {
            let own = self.pos(entry.key).map_or(0, |i| self.order[i].weight);
            if self.used - own + entry.weight <= self.budget {
                break;
            }
            let e = self.order.remove(0);
            self.used -= e.weight;
        }
        self.remove(entry.key);
        self.order.push(entry);
        self.used += entry.weight;
        true
    }
    /// The entry of `key` if live. An expired one is removed, as a compute does when it meets
    /// it (`stale_too`), or else only once past its grace, as a read does.
    fn live_or_reclaim(&mut self, key: u8, now: u64, stale_too: bool) -> Option<usize> {
        let i = self.pos(key)?;
        let e = self.order[i];
        if e.live(now) {
            Some(i)
        } else {
            if stale_too || e.reclaimable(now) {
                self.remove(key);
            }
            None
        }
    }
    /// The entry of `key` if live, for a compute (see [`Lru::live_or_reclaim`]).
    fn live(&mut self, key: u8, now: u64) -> Option<usize> {
        self.live_or_reclaim(key, now, true)
    }
    /// A read: the entry becomes the most recent and its idle time restarts.
    fn get(&mut self, key: u8, now: u64) -> Option<Value> {
        let i = self.live_or_reclaim(key, now, false)?;
        let mut e = self.order.remove(i);
        e.at = capped(now, ms(TTI_MS), e.cap);
        self.order.push(e);
        Some(e.value)
    }
    fn peek(&self, key: u8, now: u64) -> Option<Value> {
        self.pos(key).map(|i| self.order[i]).filter(|e| e.live(now)).map(|e| e.value)
    }
    fn remove(&mut self, key: u8) -> Option<Value> {
        let i = self.pos(key)?;
        let e = self.order.remove(i);
        self.used -= e.weight;
        Some(e.value)
    }
    /// Drops the entries the cache no longer has, which must all have expired past their grace
    /// (reclaimed by its sweep).
    fn reap(&mut self, cache_keys: &[u8], now: u64) {
        for e in self.order.clone() {
            if !cache_keys.contains(&e.key) {
                assert!(e.reclaimable(now), "the cache dropped entry {e:?}, live or within its grace");
                self.remove(e.key);
            }
        }
    }
}

/// Runs `op` on the cache and the exact model. `loading` is the key whose loader runs `op`, if any
/// (loads do not nest deeper than one `during`).
fn exact(h: &mut Harness, m: &mut Lru, op: &Op, loading: Option<u8>) {
    match op {
        Op::Insert { key, len } => {
            let value = h.value(*key, *len);
            match h.weight(*key, &value) {
                Some(weight) => {
                    let fits = m.insert(Entry::new(*key, value, weight, h.now(), None));
                    if !fits {
                        // A refused write removes the older value too.
                        m.remove(*key);
                    }
                    assert_eq!(h.cache.insert(*key, value).is_ok(), fits);
                }
                None => assert!(may_panic(|| h.cache.insert(*key, value)).is_none()),
            }
        }
        Op::InsertTtl { key, len, ttl_ms } => {
            let value = h.value(*key, *len);
            let ttl = u64::from(*ttl_ms % 32 + 1);
            let insert = |h: &Harness| h.cache.insert_with_ttl(*key, value, Duration::from_millis(ttl));
            match h.weight(*key, &value) {
                Some(weight) => {
                    let fits = m.insert(Entry::new(*key, value, weight, h.now(), Some(ms(ttl))));
                    if !fits {
                        m.remove(*key);
                    }
                    assert_eq!(insert(h).is_ok(), fits);
                }
                None => assert!(may_panic(|| insert(h)).is_none()),
            }
        }
        Op::Get { key } => assert_eq!(h.cache.get(key), m.get(*key, h.now())),
        Op::Peek { key } => assert_eq!(h.cache.peek(key), m.peek(*key, h.now())),
        Op::Advance { ms: n } => h.clock.advance(Duration::from_millis(u64::from(*n))),
        Op::Compute { key, len, action } => {
            if computing_own_load(h, *key, loading) {
                return;
            }
            let value = h.value(*key, *len);
            let current = m.live(*key, h.now()).map(|i| m.order[i].value);
            let weight = h.weight(*key, &value);
            let (seen, computed) = compute(h, *key, value, *action);
            assert_eq!(seen, [current], "one run, on the live value");
            match (action % 3, computed) {
                (0, None) => assert!(weight.is_none(), "only the weigher panics here"),
                (0, Some(Ok(done))) => {
                    let weight = weight.expect("weighed");
                    assert!(m.insert(Entry::new(*key, value, weight, h.now(), None)));
                    let expected = match current {
                        Some(old) => Computed::Replaced { old, new: value },
                        None => Computed::Inserted(value),
                    };
                    assert_eq!(done, expected);
                }
                (0, Some(Err(err))) => {
                    assert!(weight.is_some_and(|w| w > m.budget), "refused only when too heavy: {err}");
                    m.remove(*key);
                }
                (1, Some(Ok(done))) => {
                    assert_eq!(m.remove(*key), current);
                    assert_eq!(done, current.map_or(Computed::Absent, Computed::Removed));
                }
                (_, Some(Ok(done))) => {
                    assert_eq!(done, current.map_or(Computed::Absent, Computed::Unchanged))
                }
                (_, other) => panic!("a remove or keep cannot fail: {other:?}"),
            }
        }
        Op::Remove { key } => assert_eq!(h.cache.remove(key), m.remove(*key)),
        Op::Refresh { key, len, during, fails } => {
            let now = h.now();
            let stale = m.pos(*key).is_some_and(|i| !m.order[i].live(now) && !m.order[i].reclaimable(now));
            let old = if stale {
                // Within the grace: served as it is (the policy sees a use, its deadline does
                // not move) and always due.
                let i = m.pos(*key).expect("present");
                let e = m.order.remove(i);
                m.order.push(e);
                e.value
            } else {
                match m.get(*key, now) {
                    Some(value) => value,
                    // A miss loads on the caller's thread, as `try_get_or_insert_with`.
                    None => {
                        return exact(
                            h,
                            m,
                            &Op::Load { key: *key, len: *len, during: during.clone() },
                            loading,
                        );
                    }
                }
            };
            let entry = m.order.last_mut().expect("just read");
            let due = entry.refresh <= now;
            if due {
                entry.refresh = now + ms(REFRESH_MS);
            }
            // Inside this key's own loader (the entry is stale, or the load would not run), the
            // load in flight is the reload: a due read serves the stale value and starts none.
            let reloads = due && loading != Some(*key);
            let value = h.value(*key, *len);
            let weight = h.weight(*key, &value);
            let budget = h.cache.budget();
            // The `during` of a read run by a loader does not run.
            let during = during.clone().filter(|_| loading.is_none());
            let invalidated = during.as_ref().is_some_and(|d| invalidates(d, *key, budget));
            let key = *key;
            let ran = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&ran);
            let got = refresh(h, m, key, value, *fails, move |h, m| {
                flag.store(true, Ordering::Relaxed);
                if let Some(d) = during {
                    exact(h, m, &d, Some(key));
                }
            });
            assert_eq!(ran.load(Ordering::Relaxed), reloads, "a reload runs exactly when the entry is due");
            match got {
                Some(got) => assert_eq!(got, Ok(old), "a hit returns what it found, reload or not"),
                None => assert!(reloads && (fails % 3 == 2 || weight.is_none()), "only a reload panics"),
            }
            if reloads && fails % 3 == 0 && !invalidated {
                if let Some(weight) = weight.filter(|&w| w <= m.budget) {
                    m.insert(Entry::new(key, value, weight, h.now(), None));
                }
            }
        }
        Op::Load { key, len, during } => {
            let value = h.value(*key, *len);
            if let Some(present) = m.get(*key, h.now()) {
                assert_eq!(h.cache.get_or_insert_with(*key, || unreachable!()), present);
                return;
            }
            if loading == Some(*key) {
                let r = h.cache.try_get_or_insert_with(*key, || Ok::<_, ()>(value));
                assert_eq!(r, Err(LoadError::Recursive), "a loader asking for its own key fails at once");
                return;
            }
            let budget = h.cache.budget();
            // The `during` of a load run by another load's loader does not run.
            let invalidated =
                loading.is_none() && during.as_ref().is_some_and(|d| invalidates(d, *key, budget));
            let weight = h.weight(*key, &value);
            let cache = h.cache.clone();
            let loaded = may_panic(|| {
                cache.try_get_or_insert_with(*key, || {
                    if let Some(d) = during
                        && loading.is_none()
                    {
                        exact(h, m, d, Some(*key));
                    }
                    Ok::<_, ()>(value)
                })
            });
            if invalidated {
                // Not stored, so not even weighed.
                assert_eq!(loaded, Some(Ok(value)), "the leader gets what it loaded");
            } else if let Some(weight) = weight {
                assert_eq!(loaded, Some(Ok(value)), "the leader gets what it loaded");
                m.insert(Entry::new(*key, value, weight, h.now(), None));
            } else {
                assert!(loaded.is_none(), "the weigher's panic reaches the leader");
            }
        }
        Op::FailedLoad { key, panics } => {
            if let Some(present) = m.get(*key, h.now()) {
                assert_eq!(h.cache.get(key), Some(present));
                return;
            }
            if loading == Some(*key) {
                let r = h.cache.try_get_or_insert_with(*key, || Err::<Value, _>("down"));
                assert_eq!(r, Err(LoadError::Recursive));
                return;
            }
            let r = may_panic(|| {
                h.cache.try_get_or_insert_with(*key, || {
                    if *panics {
                        panic!("fuzz panic: loader");
                    }
                    Err::<Value, _>("down")
                })
            });
            match r {
                None => assert!(*panics),
                Some(r) => assert_eq!(r, Err(LoadError::Failed(Arc::new("down")))),
            }
        }
        Op::Invalidate { modulus, rest, panic_at } => {
            let m_ = (*modulus).max(1);
            let mut calls = 0u32;
            let mut condemned = Vec::new();
            let done = may_panic(|| {
                h.cache.invalidate_if(|k, _| {
                    calls += 1;
                    if panic_at.is_some_and(|p| calls == u32::from(p) + 1) {
                        panic!("fuzz panic: predicate");
                    }
                    let hit = k % m_ == rest % m_;
                    if hit {
                        condemned.push(*k);
                    }
                    hit
                })
            });
            for k in &condemned {
                m.remove(*k);
            }
            if let Some(n) = done {
                assert_eq!(n, condemned.len());
            }
        }
        Op::SetBudget { budget } => {
            let b = u64::from((*budget).max(1));
            m.budget = b;
            m.evict_to(b);
            h.cache.set_budget(b);
        }
        Op::Clear => {
            m.order.clear();
            m.used = 0;
            h.cache.clear();
        }
        Op::ArmListener { armed } => h.armed.store(*armed, Ordering::Relaxed),
    }
}

// ----- the validity model: any shard count and policy -----

/// Per key, the value a read may return and until when (absent: the key must read as missing).
type Valid = HashMap<u8, Entry>;

/// Checks a value read for `key` at `now` (by a read that moves its deadline if `read`).
fn check_read(v: &mut Valid, key: u8, got: Value, now: u64, read: bool) {
    let e = v.get_mut(&key).unwrap_or_else(|| panic!("read {got:?} for {key}, which has no valid value"));
    assert_eq!(got, e.value, "a read returned an invalidated value");
    assert!(e.live(now), "a read returned an expired value: {e:?} at {now}");
    if read {
        e.at = capped(now, ms(TTI_MS), e.cap);
    }
}

/// Runs `op` on the cache and the validity model; `loading` as for [`exact`].
fn valid(h: &mut Harness, v: &mut Valid, op: &Op, loading: Option<u8>) {
    match op {
        Op::Insert { key, len } => {
            let value = h.value(*key, *len);
            match h.weight(*key, &value) {
                Some(weight) => {
                    let ok = h.cache.insert(*key, value).is_ok();
                    assert_eq!(ok, weight <= h.cache.budget());
                    if ok {
                        v.insert(*key, Entry::new(*key, value, weight, h.now(), None));
                    } else {
                        v.remove(key);
                    }
                }
                None => assert!(may_panic(|| h.cache.insert(*key, value)).is_none()),
            }
        }
        Op::InsertTtl { key, len, ttl_ms } => {
            let value = h.value(*key, *len);
            let ttl = u64::from(*ttl_ms % 32 + 1);
            let insert = |h: &Harness| h.cache.insert_with_ttl(*key, value, Duration::from_millis(ttl));
            match h.weight(*key, &value) {
                Some(weight) => {
                    let ok = insert(h).is_ok();
                    assert_eq!(ok, weight <= h.cache.budget());
                    if ok {
                        v.insert(*key, Entry::new(*key, value, weight, h.now(), Some(ms(ttl))));
                    } else {
                        v.remove(key);
                    }
                }
                None => assert!(may_panic(|| insert(h)).is_none()),
            }
        }
        Op::Get { key } => {
            if let Some(got) = h.cache.get(key) {
                check_read(v, *key, got, h.now(), true);
            }
        }
        Op::Peek { key } => {
            if let Some(got) = h.cache.peek(key) {
                check_read(v, *key, got, h.now(), false);
            }
        }
        Op::Advance { ms: n } => h.clock.advance(Duration::from_millis(u64::from(*n))),
        Op::Compute { key, len, action } => {
            if computing_own_load(h, *key, loading) {
                return;
            }
            let value = h.value(*key, *len);
            let weighs = h.weight(*key, &value);
            let now = h.now();
            let (seen, computed) = compute(h, *key, value, *action);
            assert_eq!(seen.len(), 1, "nothing invalidates while it runs: one run");
            if let Some(cur) = seen[0] {
                check_read(v, *key, cur, now, false);
            }
            match (action % 3, computed) {
                (0, None) => assert!(weighs.is_none()),
                (0, Some(Ok(_))) => {
                    v.insert(*key, Entry::new(*key, value, weighs.expect("weighed"), now, None));
                }
                (1, Some(Ok(_))) | (0, Some(Err(_))) => {
                    v.remove(key);
                }
                (2, Some(Ok(_))) => {}
                (_, other) => panic!("a remove or keep cannot fail: {other:?}"),
            }
        }
        Op::Remove { key } => {
            h.cache.remove(key);
            v.remove(key);
        }
        Op::Refresh { key, len, during, fails } => {
            let now = h.now();
            let Some(prior) = v.get(key).copied().filter(|e| e.live(now) && h.cache.peek(key).is_some())
            else {
                return valid(h, v, &Op::Load { key: *key, len: *len, during: during.clone() }, loading);
            };
            let value = h.value(*key, *len);
            let during = during.clone().filter(|_| loading.is_none());
            let key = *key;
            let got = refresh(h, v, key, value, *fails, move |h, v| {
                if let Some(d) = during {
                    valid(h, v, &d, Some(key));
                }
            });
            if let Some(got) = got {
                assert_eq!(got, Ok(prior.value), "a hit returns the valid value it found");
            }
            match v.get_mut(&key) {
                // The read restarted the idle time of the entry it found, if still there.
                Some(e) if e.value == prior.value => e.at = capped(now, ms(TTI_MS), e.cap),
                _ => {}
            }
            if h.cache.peek(&key) == Some(value) {
                // The reload stored its value: a write, of a value nothing invalidated.
                let weight = h.weight(key, &value).expect("stored, so weighed");
                v.insert(key, Entry::new(key, value, weight, h.now(), None));
            }
        }
        Op::Load { key, len, during } => {
            let value = h.value(*key, *len);
            let budget = h.cache.budget();
            // The `during` of a load run by another load's loader does not run.
            let invalidated =
                loading.is_none() && during.as_ref().is_some_and(|d| invalidates(d, *key, budget));
            let weight = h.weight(*key, &value);
            let weighs = weight.is_some();
            let now = h.now();
            let cache = h.cache.clone();
            let mut ran = false;
            let got = may_panic(|| {
                cache.try_get_or_insert_with(*key, || {
                    ran = true;
                    if let Some(d) = during
                        && loading.is_none()
                    {
                        valid(h, v, d, Some(*key));
                    }
                    Ok::<_, ()>(value)
                })
            });
            match got {
                None => assert!(ran && !weighs && !invalidated, "only the weigher panics here"),
                Some(Ok(got)) if ran => {
                    assert_eq!(got, value);
                    if !invalidated && h.cache.contains(key) {
                        let weight = weight.expect("stored, so weighed");
                        v.insert(*key, Entry::new(*key, value, weight, h.now(), None));
                    }
                }
                Some(Ok(got)) => check_read(v, *key, got, now, true),
                Some(Err(LoadError::Recursive)) => assert_eq!(loading, Some(*key)),
                Some(Err(e)) => panic!("no loader failed: {e:?}"),
            }
        }
        Op::FailedLoad { key, panics } => {
            let r = may_panic(|| {
                h.cache.try_get_or_insert_with(*key, || {
                    if *panics {
                        panic!("fuzz panic: loader");
                    }
                    Err::<Value, _>("down")
                })
            });
            match r {
                Some(Ok(got)) => check_read(v, *key, got, h.now(), true),
                Some(Err(LoadError::Recursive)) => assert_eq!(loading, Some(*key)),
                Some(Err(_)) | None => {}
            }
        }
        Op::Invalidate { modulus, rest, panic_at } => {
            let m_ = (*modulus).max(1);
            let mut calls = 0u32;
            let mut condemned = Vec::new();
            may_panic(|| {
                h.cache.invalidate_if(|k, _| {
                    calls += 1;
                    if panic_at.is_some_and(|p| calls == u32::from(p) + 1) {
                        panic!("fuzz panic: predicate");
                    }
                    let hit = k % m_ == rest % m_;
                    if hit {
                        condemned.push(*k);
                    }
                    hit
                })
            });
            for k in condemned {
                v.remove(&k);
            }
        }
        Op::SetBudget { budget } => h.cache.set_budget(u64::from((*budget).max(1))),
        Op::Clear => {
            h.cache.clear();
            v.clear();
        }
        Op::ArmListener { armed } => h.armed.store(*armed, Ordering::Relaxed),
    }
}

/// The keys of a narrow input.
const KEYS: u8 = 12;

fn narrow(op: &Op) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Insert { key, .. }
        | Op::Get { key }
        | Op::Remove { key }
        | Op::FailedLoad { key, .. }
        | Op::InsertTtl { key, .. }
        | Op::Peek { key }
        | Op::Compute { key, .. } => *key %= KEYS,
        Op::Load { key, during, .. } | Op::Refresh { key, during, .. } => {
            *key %= KEYS;
            *during = during.as_ref().map(|d| Box::new(narrow(d)));
        }
        Op::Advance { ms } => *ms %= 2 * TTI_MS as u8,
        Op::Invalidate { .. } | Op::SetBudget { .. } | Op::Clear | Op::ArmListener { .. } => {}
    }
    op
}

fuzz_target!(|input: Input| {
    install_hook();
    let budget = u64::from(input.budget.max(1));
    let input = match input.narrow {
        true => Input { ops: input.ops.iter().map(narrow).collect(), ..input },
        false => input,
    };

    let mut h = Harness::new(budget, 1, Policy::Lru);
    let mut model = Lru { order: Vec::new(), used: 0, budget };
    let check_order = |h: &Harness, model: &mut Lru| {
        let order = h.cache.eviction_order_of_shard(0);
        model.reap(&order, h.now());
        let keys: Vec<u8> = model.order.iter().map(|e| e.key).collect();
        assert_eq!(order, keys);
    };
    for op in &input.ops {
        exact(&mut h, &mut model, op, None);
        EXPECTING.with(|e| e.set(false));
        // Reading the order takes the shard's write lock, which replays the hits that reads
        // recorded. After a get it is left for the next operation, so that runs of gets leave
        // several hits to replay at once and the order of a batch's replay is checked too.
        if !matches!(op, Op::Get { .. }) {
            check_order(&h, &mut model);
        }
        assert_eq!(h.cache.weighed_size(), model.used);
        h.reconcile();
    }
    check_order(&h, &mut model);
    let expired = model.order.iter().filter(|e| e.reclaimable(h.now())).count();
    assert_eq!(h.cache.purge_expired(), expired);
    h.reconcile();

    for policy in [Policy::S3Fifo, Policy::TinyLfu] {
        let mut h = Harness::new(budget, 4, policy);
        let mut model = Valid::new();
        for op in &input.ops {
            valid(&mut h, &mut model, op, None);
            EXPECTING.with(|e| e.set(false));
            h.reconcile();
        }
        h.cache.purge_expired();
        h.reconcile();
    }
});
