//! Replays operation sequences on `bounded-cache` against a reference model.
//!
//! - One shard, LRU: the model is a `Vec` in recency order with the cache's weights; the eviction
//!   order, the contents and the weighed size must match it exactly after every operation.
//! - Four shards, S3-FIFO: the exact victims differ, but after every operation the weighed size is
//!   within the budget and equals the sum of the live entries, and a present key holds the value last
//!   written for it.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use bounded_cache::{Cache, Policy};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Insert { key: u8, len: u8 },
    Get { key: u8 },
    Remove { key: u8 },
    Load { key: u8, len: u8 },
    Invalidate { modulus: u8, rest: u8 },
    SetBudget { budget: u16 },
    Clear,
}

#[derive(Arbitrary, Debug)]
struct Input {
    budget: u16,
    ops: Vec<Op>,
}

type Value = (u8, u32); // (key, write sequence)

fn weigher(_: &u8, v: &Value) -> usize {
    (v.1 % 200) as usize
}

struct Model {
    /// (key, value, weight), least recent first.
    order: Vec<(u8, Value, u64)>,
    used: u64,
    budget: u64,
}

impl Model {
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
        if let Some(i) = self.pos(key) {
            let old = self.order.remove(i);
            self.used -= old.2;
        }
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
}

fuzz_target!(|input: Input| {
    let budget = u64::from(input.budget.max(1));
    let exact: Cache<u8, Value, _> =
        Cache::builder(budget).shards(1).weigher(weigher).build().unwrap();
    let sharded: Cache<u8, Value, _> =
        Cache::builder(budget).shards(4).policy(Policy::S3Fifo).weigher(weigher).build().unwrap();
    let mut model = Model { order: Vec::new(), used: 0, budget };
    let mut last_written: HashMap<u8, Value> = HashMap::new();
    let mut seq = 0u32;
    for op in input.ops {
        seq += 1;
        match op {
            Op::Insert { key, len } => {
                let value = (key, u32::from(len) + 200 * seq);
                let weight = exact.weigh(&key, &value);
                let fits = model.insert(key, value, weight);
                assert_eq!(exact.insert(key, value).is_ok(), fits);
                let fits_sharded = sharded.weigh(&key, &value) <= sharded.budget();
                assert_eq!(sharded.insert(key, value).is_ok(), fits_sharded);
                if fits_sharded {
                    last_written.insert(key, value);
                }
            }
            Op::Load { key, len } => {
                let value = (key, u32::from(len) + 200 * seq);
                let expected = model.get(key).unwrap_or_else(|| {
                    model.insert(key, value, exact.weigh(&key, &value));
                    value
                });
                assert_eq!(exact.get_or_insert_with(key, || value), expected);
                let got = sharded.get_or_insert_with(key, || value);
                if got != value {
                    assert_eq!(Some(&got), last_written.get(&key));
                } else if sharded.contains(&key) {
                    last_written.insert(key, value);
                }
            }
            Op::Get { key } => {
                assert_eq!(exact.get(&key), model.get(key));
                if let Some(v) = sharded.get(&key) {
                    assert_eq!(Some(&v), last_written.get(&key));
                }
            }
            Op::Remove { key } => {
                let expected = model.pos(key).map(|i| {
                    let e = model.order.remove(i);
                    model.used -= e.2;
                    e.1
                });
                assert_eq!(exact.remove(&key), expected);
                sharded.remove(&key);
            }
            Op::Invalidate { modulus, rest } => {
                let m = modulus.max(1);
                let hit = |k: &u8| k % m == rest % m;
                let before = model.order.len();
                model.order.retain(|e| !hit(&e.0));
                model.used = model.order.iter().map(|e| e.2).sum();
                assert_eq!(exact.invalidate_if(|k, _| hit(k)), before - model.order.len());
                sharded.invalidate_if(|k, _| hit(k));
            }
            Op::SetBudget { budget } => {
                let b = u64::from(budget.max(1));
                model.budget = b;
                model.evict_to(b);
                exact.set_budget(b);
                sharded.set_budget(b);
            }
            Op::Clear => {
                model.order.clear();
                model.used = 0;
                exact.clear();
                sharded.clear();
            }
        }
        // The exact model, after every operation.
        let keys: Vec<u8> = model.order.iter().map(|e| e.0).collect();
        assert_eq!(exact.eviction_order_of_shard(0), keys);
        assert_eq!(exact.weighed_size(), model.used);
        assert!(exact.weighed_size() <= exact.budget());
        // The sharded cache: within budget, and the accounting matches the entries.
        let live: u64 = sharded.iter().map(|(k, v)| sharded.weigh(&k, &v)).sum();
        assert_eq!(sharded.weighed_size(), live);
        assert!(sharded.weighed_size() <= sharded.budget());
        assert_eq!(sharded.stats().weighed_size, live);
    }
});
