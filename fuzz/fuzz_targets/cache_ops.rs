//! Replays operation sequences on `bounded-cache` against reference models.
//!
//! - One shard, LRU, against an exact model: a `Vec` in recency order with the cache's weights.
//!   The eviction order, the contents and the weighed size must match it after every operation.
//! - Four shards, S3-FIFO, against a validity model: the victims differ, but after every operation
//!   the weighed size is within the budget and equals the weight of the live entries, and a read
//!   returns only a value that is still valid for its key (the last one written and not
//!   invalidated since).
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
use bounded_cache::{Cache, LoadError, Policy, RemovalCause};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Insert { key: u8, len: u8 },
    Get { key: u8 },
    Remove { key: u8 },
    /// A load of `key` whose loader runs `during` (if any) before returning its value.
    Load { key: u8, len: u8, during: Option<Box<Op>> },
    /// A load whose loader fails or panics.
    FailedLoad { key: u8, panics: bool },
    /// `invalidate_if` on `key % modulus == rest`, its predicate panicking at call `panic_at`.
    Invalidate { modulus: u8, rest: u8, panic_at: Option<u8> },
    SetBudget { budget: u16 },
    Clear,
    /// Whether the eviction listener panics from now on.
    ArmListener { armed: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    budget: u16,
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
}

impl Harness {
    fn new(budget: u64, shards: usize, policy: Policy) -> Self {
        let armed = Arc::new(AtomicBool::new(false));
        let listener_calls = Arc::new(AtomicU64::new(0));
        let (a, calls) = (Arc::clone(&armed), Arc::clone(&listener_calls));
        let cache = Cache::builder(budget)
            .shards(shards)
            .policy(policy)
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
        Self { cache, armed, listener_calls, seq: 0 }
    }

    fn value(&mut self, key: u8, len: u8) -> Value {
        self.seq += 1;
        (key, self.seq * 200 + u32::from(len) % 200)
    }

    fn weight(&self, key: u8, value: &Value) -> Option<u64> {
        (value.1 % 200 != POISON_LEN).then(|| self.cache.weigh(&key, value))
    }

    /// The weighed size equals the weight of the live entries and is within the budget; the
    /// listener's panics are all counted.
    fn reconcile(&self) {
        let cache = &self.cache;
        let live: u64 = cache.iter().map(|(k, v)| cache.weigh(&k, &v)).sum();
        assert_eq!(cache.weighed_size(), live);
        assert!(cache.weighed_size() <= cache.budget());
        let stats = cache.stats();
        assert_eq!(stats.weighed_size, live);
        assert!(stats.listener_panics <= self.listener_calls.load(Ordering::Relaxed));
    }
}

/// Whether `op`, run while a load of `key` is in flight, invalidates that load.
fn invalidates(op: &Op, key: u8, budget: u64) -> bool {
    match op {
        Op::Remove { key: k } => *k == key,
        // An insert whose weigher panics never happened.
        Op::Insert { key: k, len } => *k == key && u32::from(*len) % 200 != POISON_LEN,
        Op::Invalidate { .. } | Op::Clear => true,
        Op::SetBudget { budget: b } => u64::from((*b).max(1)) < budget,
        _ => false,
    }
}

// ----- the exact model: one LRU shard -----

struct Lru {
    /// (key, value, weight), least recent first.
    order: Vec<(u8, Value, u64)>,
    used: u64,
    budget: u64,
}

impl Lru {
    fn pos(&self, key: u8) -> Option<usize> {
        self.order.iter().position(|e| e.0 == key)
    }
    fn evict_to(&mut self, limit: u64) {
        while self.used > limit {
            let (_, _, w) = self.order.remove(0);
            self.used -= w;
        }
    }
    fn insert(&mut self, key: u8, value: Value, weight: u64) -> bool {
        if weight > self.budget {
            return false;
        }
        self.evict_to(self.budget - weight);
        self.remove(key);
        self.order.push((key, value, weight));
        self.used += weight;
        true
    }
    fn get(&mut self, key: u8) -> Option<Value> {
        let i = self.pos(key)?;
        let e = self.order.remove(i);
        self.order.push(e);
        Some(e.1)
    }
    fn remove(&mut self, key: u8) -> Option<Value> {
        let i = self.pos(key)?;
        let e = self.order.remove(i);
        self.used -= e.2;
        Some(e.1)
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
                    let fits = m.insert(*key, value, weight);
                    if !fits {
                        // A refused write removes the older value too.
                        m.remove(*key);
                    }
                    assert_eq!(h.cache.insert(*key, value).is_ok(), fits);
                }
                None => assert!(may_panic(|| h.cache.insert(*key, value)).is_none()),
            }
        }
        Op::Get { key } => assert_eq!(h.cache.get(key), m.get(*key)),
        Op::Remove { key } => assert_eq!(h.cache.remove(key), m.remove(*key)),
        Op::Load { key, len, during } => {
            let value = h.value(*key, *len);
            if let Some(present) = m.get(*key) {
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
            let invalidated = loading.is_none() && during.as_ref().is_some_and(|d| invalidates(d, *key, budget));
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
                m.insert(*key, value, weight);
            } else {
                assert!(loaded.is_none(), "the weigher's panic reaches the leader");
            }
        }
        Op::FailedLoad { key, panics } => {
            if let Some(present) = m.get(*key) {
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

/// Per key, the value a read may return (absent: the key must read as missing).
type Valid = HashMap<u8, Value>;

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
                        v.insert(*key, value);
                    } else {
                        v.remove(key);
                    }
                }
                None => assert!(may_panic(|| h.cache.insert(*key, value)).is_none()),
            }
        }
        Op::Get { key } => {
            if let Some(got) = h.cache.get(key) {
                assert_eq!(Some(&got), v.get(key), "a read returned an invalidated or unknown value");
            }
        }
        Op::Remove { key } => {
            h.cache.remove(key);
            v.remove(key);
        }
        Op::Load { key, len, during } => {
            let value = h.value(*key, *len);
            let budget = h.cache.budget();
            // The `during` of a load run by another load's loader does not run.
            let invalidated = loading.is_none() && during.as_ref().is_some_and(|d| invalidates(d, *key, budget));
            let weighs = h.weight(*key, &value).is_some();
            let before = v.get(key).copied();
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
                        v.insert(*key, value);
                    }
                }
                Some(Ok(got)) => assert_eq!(Some(got), before, "a hit returns what is valid"),
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
                Some(Ok(got)) => assert_eq!(Some(&got), v.get(key)),
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

fuzz_target!(|input: Input| {
    install_hook();
    let budget = u64::from(input.budget.max(1));

    let mut h = Harness::new(budget, 1, Policy::Lru);
    let mut model = Lru { order: Vec::new(), used: 0, budget };
    for op in &input.ops {
        exact(&mut h, &mut model, op, None);
        EXPECTING.with(|e| e.set(false));
        let keys: Vec<u8> = model.order.iter().map(|e| e.0).collect();
        assert_eq!(h.cache.eviction_order_of_shard(0), keys);
        assert_eq!(h.cache.weighed_size(), model.used);
        h.reconcile();
    }

    let mut h = Harness::new(budget, 4, Policy::S3Fifo);
    let mut model = Valid::new();
    for op in &input.ops {
        valid(&mut h, &mut model, op, None);
        EXPECTING.with(|e| e.set(false));
        h.reconcile();
    }
});
