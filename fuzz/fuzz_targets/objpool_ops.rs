//! Replays random sequences of pool operations against a reference model.
//!
//! The model tracks which objects are idle and which are held; after every step the pool must
//! agree: a get reuses an idle object if there is one, creates a new one only below
//! `max_size`, and is refused otherwise; a returned object comes back reset, or is discarded
//! when the recycle check refuses it; detached and discarded objects free their slots.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use objpool::{OwnedGuard, Pool, TryGetError};

#[derive(Debug)]
struct Obj {
    id: u32,
    data: Vec<u8>,
}

/// Objects whose data grew beyond this are refused on return.
const LIMIT: usize = 4;

#[derive(Arbitrary, Debug)]
enum Op {
    Get,
    Write { held: u8, len: u8 },
    Return { held: u8 },
    Detach { held: u8 },
    Discard { held: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_size: u8,
    pre_create: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let max_size = usize::from(input.max_size % 8) + 1;
    let pre_create = usize::from(input.pre_create) % (max_size + 1);
    let next_id = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ids = next_id.clone();
    let pool = Pool::builder()
        .max_size(max_size)
        .pre_create(pre_create)
        .recycle(|obj: &mut Obj| {
            let keep = obj.data.len() <= LIMIT;
            obj.data.clear();
            keep
        })
        .build(move || Obj { id: ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed), data: Vec::new() })
        .unwrap();

    // The model: idle object ids, held guards (with what was written), the next id to create.
    let mut idle: BTreeSet<u32> = (0..pre_create as u32).collect();
    let mut held: Vec<OwnedGuard<Obj>> = Vec::new();
    let mut created = pre_create as u32;

    for op in input.ops {
        match op {
            Op::Get => match pool.try_get() {
                Ok(guard) => {
                    let guard = guard.into_owned();
                    assert!(guard.data.is_empty(), "object was not reset");
                    if !idle.remove(&guard.id) {
                        assert!(idle.is_empty(), "created while an idle object was there");
                        assert_eq!(guard.id, created, "unexpected new object");
                        created += 1;
                    }
                    held.push(guard);
                }
                Err(TryGetError::Exhausted) => {
                    assert!(idle.is_empty());
                    assert_eq!(held.len(), max_size, "refused below max_size");
                }
                Err(other) => panic!("unexpected error {other}"),
            },
            Op::Write { held: i, len } if !held.is_empty() => {
                let index = usize::from(i) % held.len();
                let guard = &mut held[index];
                guard.data.extend(std::iter::repeat_n(0xAB, usize::from(len % 8)));
            }
            Op::Return { held: i } if !held.is_empty() => {
                let guard = held.swap_remove(usize::from(i) % held.len());
                let (id, keep) = (guard.id, guard.data.len() <= LIMIT);
                drop(guard);
                if keep {
                    idle.insert(id);
                }
            }
            Op::Detach { held: i } if !held.is_empty() => {
                let guard = held.swap_remove(usize::from(i) % held.len());
                let id = guard.id;
                assert_eq!(guard.detach().id, id);
            }
            Op::Discard { held: i } if !held.is_empty() => {
                held.swap_remove(usize::from(i) % held.len()).discard();
            }
            _ => {}
        }
        let stats = pool.stats();
        assert_eq!(stats.idle, idle.len(), "{stats}");
        assert_eq!(stats.in_use, held.len(), "{stats}");
        assert!(stats.size() <= max_size, "{stats}");
        assert_eq!(next_id.load(std::sync::atomic::Ordering::Relaxed), created);
    }
});
