//! Loom models of the cache's synchronisation, run on the real code: under the
//! `bounded_cache_loom` cfg every lock, atomic and shared cell of the crate is loom's
//! (`src/sync.rs`), a shard has two thread slots whose hit buffers hold one record each, slab pages hold four nodes and an insert gives up after two rounds
//! that find nothing to evict, so that small models reach every path.
//!
//! - the loader hand-off (`load::Flight`): every waiter returns, blocking or async, with the
//!   leader's outcome, and a cancelled async waiter takes its waker out;
//! - the shard lock (`cell.rs`): readers counted in their thread's slot, or on the slow path,
//!   never overlap a writer (loom's cell tracking checks every access), and their hits are
//!   counted;
//! - LRU hits recorded by readers and replayed by the next writer: no hit is lost and none is
//!   applied to a node that was freed or reused meanwhile;
//! - the budget under concurrent inserts that evict across shards: never exceeded, and exact
//!   once quiescent;
//! - an invalidation racing a load: the load never stores over it;
//! - refresh-ahead: two readers of a due entry start one reload, and a write racing a reload
//!   wins;
//! - W-TinyLFU's climber, shared by the shards: samples handed over with `try_lock` are counted
//!   once, by the climber or by the shard that found it busy.
//!
//! Run with `scripts/loom.sh` (release with debug assertions, LOOM_MAX_PREEMPTIONS=2).
#![cfg(bounded_cache_loom)]

use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll};

use bounded_cache::load::{Flight, Outcome};
use bounded_cache::{Cache, ManualClock, Policy, UnitWeigher};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::thread;

fn value(o: Outcome<u32>) -> Option<u32> {
    match o {
        Outcome::Value(v) => Some(v),
        Outcome::Abandoned => None,
        Outcome::Failed(_) => panic!("no loader failed"),
    }
}

#[test]
fn blocking_waiters_get_the_value() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&flight);
                thread::spawn(move || value(f.wait()))
            })
            .collect();
        flight.finish(Outcome::Value(7));
        for w in waiters {
            assert_eq!(w.join().unwrap(), Some(7));
        }
    });
}

#[test]
fn abandonment_releases_waiters_and_later_outcomes_are_ignored() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || value(f.wait()));
        flight.finish(Outcome::Abandoned);
        // A late publication (the guard after a value) must not change what waiters saw.
        flight.finish(Outcome::Value(1));
        assert_eq!(waiter.join().unwrap(), None);
    });
}

#[test]
fn async_waiter_is_woken() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || loom::future::block_on(f.wait_async()));
        let f = Arc::clone(&flight);
        let blocking = thread::spawn(move || value(f.wait()));
        flight.finish(Outcome::Value(3));
        assert_eq!(value(waiter.join().unwrap()), Some(3));
        assert_eq!(blocking.join().unwrap(), Some(3));
    });
}

#[test]
fn a_cancelled_async_waiter_takes_its_waker_out() {
    loom::model(|| {
        let flight = Arc::new(Flight::<u32>::new());
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || {
            let mut wait = pin!(f.wait_async());
            let waker = futures_noop_waker();
            let polled = wait.as_mut().poll(&mut Context::from_waker(&waker));
            // Dropped here: whether it saw the outcome or not, it leaves no waker behind.
            matches!(polled, Poll::Ready(_))
        });
        flight.finish(Outcome::Value(1));
        waiter.join().unwrap();
        assert_eq!(flight.registered_wakers(), 0);
    });
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

/// Hashes a `u64` key to itself in both halves: a distinct hash per key, whose shard is fixed
/// (`Inner::shard_index` mixes every bit of it, so the models that depend on which shard a key is
/// in check it with `eviction_order_of_shard`: of two shards, 1 to 5 are in shard 0, 6 to 8 in 1).
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0 << 32 | self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Det = BuildHasherDefault<Identity>;

fn entries(policy: Policy, max: u64, shards: usize) -> Cache<u64, u64, UnitWeigher, Det> {
    Cache::builder(0).max_entries(max).policy(policy).shards(shards).hasher(Det::default()).build().unwrap()
}

#[test]
fn lru_hits_recorded_under_the_read_lock_are_never_lost() {
    loom::model(|| {
        // 1 is the least recent of three; a hit on it racing the insert of a fourth key decides the
        // victim. If the hit came first (the reader saw 1), the insert's write lock must replay it
        // and evict 2; otherwise 1 was evicted and the reader missed.
        let cache = entries(Policy::Lru, 3, 1);
        for k in 1..=3 {
            cache.insert(k, k).unwrap();
        }
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1).is_some())
        };
        cache.insert(4, 4).unwrap();
        let hit = reader.join().unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.contains(&1), hit, "a hit before the eviction protects its entry");
        assert_eq!(cache.contains(&2), !hit);
    });
}

#[test]
fn tinylfu_hits_under_the_read_lock_are_never_lost() {
    loom::model(|| {
        // W-TinyLFU, room for three: 1, 2 and 3 wait as candidates for main (the window starts
        // at 1% of the shard, under one entry). The fourth insert evicts first: 1 and 2 enter
        // main unopposed and 3, the last candidate, is weighed against 1, seen as often: the tie
        // keeps 1 and 3 leaves. A hit on 3, counted on its node under the read lock, admits it to
        // main's protected segment instead, and then 1, probation's oldest entry, leaves. If the
        // reader saw 3, the insert's eviction must see that hit.
        let cache = entries(Policy::TinyLfu, 3, 1);
        for k in 1..=3 {
            cache.insert(k, k).unwrap();
        }
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&3).is_some())
        };
        cache.insert(4, 4).unwrap();
        let hit = reader.join().unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.weighed_size(), 3);
        assert_eq!(cache.contains(&3), hit, "a hit before the eviction admits its entry");
        assert_eq!(cache.contains(&1), !hit);
        assert!(cache.contains(&2) && cache.contains(&4));
    });
}

#[test]
fn tinylfu_counts_each_read_hit_once_while_a_tally_folds() {
    // Three preemptions: the double count this guards against needs the writer to stop between
    // its two reads and the reader between its fold's two steps (at two, a writer that read the
    // slots before the totals passed; at three it fails).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        // Under loom a slot's hit tally moves to the cell's totals once it reaches 2, so the
        // reader's third hit moves three while the insert's writer may be adding the read path's
        // hits up for the policy. The writer may miss hits in transit (the next write counts
        // them), but counting any twice would leave the policy's total above 3 for good.
        let cache = entries(Policy::TinyLfu, 4, 1);
        cache.insert(1, 1).unwrap();
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    assert!(cache.get(&1).is_some());
                }
            })
        };
        cache.insert(2, 2).unwrap();
        reader.join().unwrap();
        assert_eq!(cache.read_hits_seen_by_policy(0), 3);
        assert_eq!(cache.stats().hits, 3);
    });
}

#[test]
fn readers_on_two_slots_never_overlap_a_writer() {
    loom::model(|| {
        // A shard has two thread slots here, and thread indices go out in order of first read,
        // so the two readers use different slots whether or not the main thread read first. Each read
        // takes the fast path or, if it meets the writer, the slow one; loom's cell tracking
        // fails the model if either read overlaps the writer's exclusive access. A reader sees
        // the old value or the new one, and its lookup is counted either way.
        let cache = entries(Policy::Lru, 4, 1);
        cache.insert(1, 10).unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                thread::spawn(move || cache.get(&1))
            })
            .collect();
        cache.insert(1, 11).unwrap();
        for r in readers {
            let got = r.join().unwrap();
            assert!(got == Some(10) || got == Some(11), "{got:?}");
        }
        assert_eq!(cache.stats().hits, 2);
        assert_eq!(cache.get(&1), Some(11));
    });
}

#[test]
fn lru_overflowing_hits_skip_recycled_nodes() {
    loom::model(|| {
        // The buffer holds one record, so the reader's second hit on 1 overflows (its first
        // fills the buffer of its slot, where no other thread records hits) unless a write
        // replayed the first in between; the overflowing hit is replayed after its
        // read has ended, while the writer may have removed 1 and given its node to 9. The
        // writer's own steps fix the order: 3 was refreshed after 9 was inserted. A stale hit
        // applied to 9's node would move 9 back in front of 3. (Room for four: replacing 3
        // reserves its new weight before the old one is returned.)
        let cache = entries(Policy::Lru, 4, 1);
        for k in 1..=3 {
            cache.insert(k, k).unwrap();
        }
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || [cache.get(&1), cache.get(&1)])
        };
        cache.remove(&1);
        cache.insert(9, 9).unwrap();
        cache.insert(3, 33).unwrap();
        for got in reader.join().unwrap() {
            assert!(got.is_none() || got == Some(1));
        }
        assert_eq!(cache.eviction_order_of_shard(0), vec![2, 9, 3]);
    });
}

#[test]
fn concurrent_inserts_never_exceed_the_budget() {
    loom::model(|| {
        // Two shards, room for two entries, both in shard 0: each thread inserts into its own
        // shard and has to evict, across shards for the one whose shard is empty.
        let cache = entries(Policy::Lru, 2, 2);
        cache.insert(2, 2).unwrap();
        cache.insert(4, 4).unwrap();
        assert_eq!(cache.eviction_order_of_shard(0), [2, 4]);
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(1, 1).unwrap();
                assert!(cache.weighed_size() <= 2);
            })
        };
        cache.insert(6, 6).unwrap();
        assert!(cache.weighed_size() <= 2);
        other.join().unwrap();
        let present = cache.iter().count() as u64;
        assert_eq!(cache.weighed_size(), present, "quiescent: the weighed size is the entries'");
        assert!(cache.contains(&1) && cache.contains(&6) && present == 2);
        let in_shard_0 = cache.eviction_order_of_shard(0);
        assert!(in_shard_0.contains(&1) != in_shard_0.contains(&6), "1 and 6 are in different shards");
    });
}

#[test]
fn a_replacement_that_grows_while_its_key_is_evicted_keeps_the_budget() {
    loom::model(|| {
        // Weights in bytes: a value of `v` weighs `v` plus the overhead `o`. Room for two small
        // entries and 2 bytes more.
        let probe: Cache<u64, u64, _, Det> = Cache::builder(1 << 10)
            .policy(Policy::Lru)
            .weigher(|_: &u64, v: &u64| *v as usize)
            .hasher(Det::default())
            .build()
            .unwrap();
        let o = probe.entry_overhead();
        let budget = 2 * o + 4;
        let cache: Cache<u64, u64, _, Det> = Cache::builder(budget)
            .policy(Policy::Lru)
            .shards(1)
            .weigher(|_: &u64, v: &u64| *v as usize)
            .hasher(Det::default())
            .build()
            .unwrap();
        cache.insert(1, 1).unwrap();
        cache.insert(2, 1).unwrap();
        // Key 2 is the least recent: the reservation below evicts it, and key 1 stays unless
        // the other thread's insert evicts it meanwhile.
        assert_eq!(cache.get(&1), Some(1));
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                // A new key: it evicts whatever is least recent, key 1 perhaps.
                cache.insert(3, 1).unwrap();
                assert!(cache.weighed_size() <= budget);
            })
        };
        // Key 1 grows by 4 bytes, more than the room left: its insert reserves with the lock
        // released, and may find its key gone when it comes back.
        cache.insert(1, 5).unwrap();
        assert!(cache.weighed_size() <= budget);
        other.join().unwrap();
        let stored: u64 = cache.iter().map(|(_, v)| v + o).sum();
        assert_eq!(cache.weighed_size(), stored, "quiescent: the weighed size is the entries'");
        assert!(matches!(cache.get(&1), None | Some(5)), "key 1 holds the value written last, if any");
    });
}

#[test]
fn an_invalidation_racing_a_load_wins() {
    loom::model(|| {
        let cache = entries(Policy::Lru, 4, 1);
        let loading = Arc::new(AtomicBool::new(false));
        let leader = {
            let (cache, loading) = (cache.clone(), Arc::clone(&loading));
            thread::spawn(move || {
                cache.get_or_insert_with(7, || {
                    loading.store(true, SeqCst);
                    70
                })
            })
        };
        // If the load was already running when the remove started, the remove must win.
        let during = loading.load(SeqCst);
        cache.remove(&7);
        assert_eq!(leader.join().unwrap(), 70, "the leader gets what it loaded");
        if during {
            assert_eq!(
                cache.get(&7),
                None,
                "a load that was running when the key was removed stored its value"
            );
        }
    });
}

#[test]
fn an_insert_racing_a_load_wins() {
    loom::model(|| {
        let cache = entries(Policy::S3Fifo, 4, 1);
        let loading = Arc::new(AtomicBool::new(false));
        let leader = {
            let (cache, loading) = (cache.clone(), Arc::clone(&loading));
            thread::spawn(move || {
                cache.get_or_insert_with(7, || {
                    loading.store(true, SeqCst);
                    70
                })
            })
        };
        let during = loading.load(SeqCst);
        cache.insert(7, 99).unwrap();
        let got = leader.join().unwrap();
        assert!(got == 70 || got == 99, "the leader loads, or finds the inserted value");
        if during {
            assert_eq!(cache.get(&7), Some(99), "a load stored its value over a newer insert");
        }
    });
}

/// A cache whose entries are due for a refresh 1 s after they are written, reloads run inline
/// on the reading thread, and key 7 written (value 1) 2 s ago.
fn due_entry() -> Cache<u64, u64, UnitWeigher, Det> {
    let clock = ManualClock::new();
    let cache = Cache::builder(0)
        .max_entries(4)
        .shards(1)
        .hasher(Det::default())
        .refresh_after(std::time::Duration::from_secs(1))
        .refresh_executor(|refresh| refresh.run())
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(7, 1).unwrap();
    clock.advance(std::time::Duration::from_secs(2));
    cache
}

#[test]
fn two_readers_of_a_due_entry_start_one_reload() {
    loom::model(|| {
        let cache = due_entry();
        let reloads = Arc::new(AtomicUsize::new(0));
        let read = {
            let (cache, reloads) = (cache.clone(), Arc::clone(&reloads));
            move || {
                cache.try_get_or_refresh_with(7, move || {
                    reloads.fetch_add(1, SeqCst);
                    Ok::<u64, ()>(2)
                })
            }
        };
        let other = thread::spawn(read.clone());
        let mine = read();
        let theirs = other.join().unwrap();
        assert!(matches!(mine, Ok(1 | 2)) && matches!(theirs, Ok(1 | 2)));
        assert_eq!(reloads.load(SeqCst), 1, "one reload per period");
        assert_eq!(cache.get(&7), Some(2));
    });
}

#[test]
fn a_write_racing_a_reload_wins() {
    loom::model(|| {
        let cache = due_entry();
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.try_get_or_refresh_with(7, || Ok::<u64, ()>(70)))
        };
        cache.insert(7, 99).unwrap();
        let read = reader.join().unwrap();
        assert!(matches!(read, Ok(1 | 99)), "the reader serves what it finds, never waits");
        assert_eq!(cache.get(&7), Some(99), "a reload stored its value over a newer write");
    });
}

#[test]
fn tinylfu_shards_hand_their_samples_to_the_shared_climber_once_each() {
    loom::model(|| {
        // W-TinyLFU in two shards sharing one climber, which under loom takes a shard's samples
        // at every access (a batch of one). Two inserts of new keys, one per shard (1 and 6), race
        // to hand their misses over with `try_lock`: one may find the climber busy and keep its
        // miss for a later access, but each miss is then with the climber or kept by its shard,
        // never both, never neither; and the first to try always succeeds.
        let cache = entries(Policy::TinyLfu, 4, 2);
        let other = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(1, 1).unwrap())
        };
        cache.insert(6, 6).unwrap();
        other.join().unwrap();
        assert_eq!((cache.eviction_order_of_shard(0), cache.eviction_order_of_shard(1)), (vec![1], vec![6]));
        let (handed, kept) = cache.climber_samples();
        assert_eq!(handed + kept, 2, "{handed} handed over, {kept} kept");
        assert!(handed >= 1);
    });
}
