//! Replays random sequences of pool operations against a reference model.
//!
//! The model tracks which objects are idle and which are held; after every step the pool must
//! agree: a get reuses an idle object if there is one, creates a new one only below
//! `max_size`, and is refused otherwise; a returned object comes back reset, or is discarded
//! when the recycle check refuses it; detached and discarded objects free their slots. Resizes,
//! `add` and `close` change what is in service: a shrink drops idle objects at once and retires
//! the slots of held ones as they come back, a closed pool refuses everything and drops what
//! returns. The peak of objects held at once is exact.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use objpool::{AddRefused, OwnedGuard, Pool, ResizeError, TryGetError};
use std::sync::{Arc, Mutex};

/// A pooled object; its id goes to the drop log when it is dropped.
#[derive(Debug)]
struct Obj {
    id: u32,
    data: Vec<u8>,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.log.lock().unwrap().push(self.id);
    }
}

/// Objects whose data grew beyond this are refused on return.
const LIMIT: usize = 4;
/// Ids of added objects start here, apart from created ones.
const ADDED: u32 = 1 << 20;

#[derive(Arbitrary, Debug)]
enum Op {
    Get,
    Write { held: u8, len: u8 },
    Return { held: u8 },
    Detach { held: u8 },
    Discard { held: u8 },
    Add,
    Resize { size: u8 },
    ResetPeak,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_size: u8,
    spare: u8,
    pre_create: u8,
    ops: Vec<Op>,
}

/// What the pool should hold.
struct Model {
    idle: BTreeSet<u32>,
    held: Vec<OwnedGuard<Obj>>,
    created: u32,
    added: u32,
    capacity: usize,
    target: usize,
    retired: usize,
    debt: usize,
    closed: bool,
    peak: usize,
}

impl Model {
    /// Slots in service holding nothing.
    fn empty(&self) -> usize {
        self.capacity - self.retired - self.idle.len() - self.held.len()
    }

    /// Pays a shrink's debt as the pool does: empty slots first, then idle objects (the pool
    /// picks which; the drop log tells).
    fn retire(&mut self, log: &Mutex<Vec<u32>>) {
        let empty = self.empty().min(self.debt);
        self.retired += empty;
        self.debt -= empty;
        let drops = self.debt.min(self.idle.len());
        self.retired += drops;
        self.debt -= drops;
        self.expect_drops(log, drops);
    }

    /// Takes `n` idle objects the pool dropped out of the model.
    fn expect_drops(&mut self, log: &Mutex<Vec<u32>>, n: usize) {
        let dropped = std::mem::take(&mut *log.lock().unwrap());
        assert_eq!(dropped.len(), n, "dropped {dropped:?}");
        for id in dropped {
            assert!(self.idle.remove(&id), "dropped {id}, which was not idle");
        }
    }

    fn hold(&mut self, guard: OwnedGuard<Obj>) {
        self.held.push(guard);
        self.peak = self.peak.max(self.held.len());
    }
}

fuzz_target!(|input: Input| {
    let max_size = usize::from(input.max_size % 8) + 1;
    let capacity = max_size + usize::from(input.spare % 4);
    let pre_create = usize::from(input.pre_create) % (max_size + 1);
    let next_id = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ids, drops) = (next_id.clone(), log.clone());
    let pool = Pool::builder()
        .max_size(max_size)
        .capacity(capacity)
        .pre_create(pre_create)
        .exact_peak(true)
        .recycle(|obj: &mut Obj| {
            let keep = obj.data.len() <= LIMIT;
            obj.data.clear();
            keep
        })
        .build(move || Obj {
            id: ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            data: Vec::new(),
            log: drops.clone(),
        })
        .unwrap();

    let mut m = Model {
        idle: (0..pre_create as u32).collect(),
        held: Vec::new(),
        created: pre_create as u32,
        added: 0,
        capacity,
        target: max_size,
        retired: capacity - max_size,
        debt: 0,
        closed: false,
        peak: 0,
    };

    for op in input.ops {
        match op {
            Op::Get => match pool.try_get() {
                Ok(guard) => {
                    assert!(!m.closed, "a closed pool handed out an object");
                    let guard = guard.into_owned();
                    assert!(guard.data.is_empty(), "object was not reset");
                    if !m.idle.remove(&guard.id) {
                        assert!(m.idle.is_empty(), "created while an idle object was there");
                        assert_eq!(guard.id, m.created, "unexpected new object");
                        m.created += 1;
                    }
                    m.hold(guard);
                }
                Err(TryGetError::Exhausted) => {
                    assert!(!m.closed);
                    assert!(m.idle.is_empty() && m.empty() == 0, "refused with room");
                }
                Err(TryGetError::Closed) => assert!(m.closed),
                Err(other) => panic!("unexpected error {other}"),
            },
            Op::Write { held: i, len } if !m.held.is_empty() => {
                let index = usize::from(i) % m.held.len();
                let guard = &mut m.held[index];
                guard.data.extend(std::iter::repeat_n(0xAB, usize::from(len % 8)));
            }
            Op::Return { held: i } if !m.held.is_empty() => {
                let guard = m.held.swap_remove(usize::from(i) % m.held.len());
                let (id, keep) = (guard.id, guard.data.len() <= LIMIT);
                drop(guard);
                let dropped = std::mem::take(&mut *log.lock().unwrap());
                if keep && !m.closed {
                    m.idle.insert(id);
                    // Put the drop back for `retire` to account for.
                    *log.lock().unwrap() = dropped;
                } else {
                    assert_eq!(dropped, [id], "a refused or closed return drops the object");
                }
            }
            Op::Detach { held: i } if !m.held.is_empty() => {
                let guard = m.held.swap_remove(usize::from(i) % m.held.len());
                let id = guard.id;
                assert_eq!(guard.detach().id, id);
                assert_eq!(std::mem::take(&mut *log.lock().unwrap()), [id]);
            }
            Op::Discard { held: i } if !m.held.is_empty() => {
                let guard = m.held.swap_remove(usize::from(i) % m.held.len());
                let id = guard.id;
                guard.discard();
                assert_eq!(std::mem::take(&mut *log.lock().unwrap()), [id]);
            }
            Op::Add => {
                let id = ADDED + m.added;
                let obj = Obj { id, data: Vec::new(), log: log.clone() };
                match pool.add(obj) {
                    Ok(()) => {
                        assert!(!m.closed && m.debt == 0 && m.empty() > 0, "added without room");
                        m.idle.insert(id);
                        m.added += 1;
                    }
                    Err(refused) => {
                        match refused.reason {
                            AddRefused::Closed => assert!(m.closed),
                            AddRefused::Full => assert!(!m.closed && (m.debt > 0 || m.empty() == 0)),
                            other => panic!("unexpected {other:?}"),
                        }
                        assert_eq!(refused.into_inner().id, id);
                        assert_eq!(std::mem::take(&mut *log.lock().unwrap()), [id]);
                    }
                }
            }
            Op::Resize { size } => {
                let size = usize::from(size % 12);
                match pool.resize(size) {
                    Ok(()) => {
                        assert!(!m.closed && size > 0 && size <= capacity);
                        if size >= m.target {
                            let mut grow = size - m.target;
                            let forgiven = grow.min(m.debt);
                            m.debt -= forgiven;
                            grow -= forgiven;
                            m.retired -= grow;
                        } else {
                            m.debt += m.target - size;
                        }
                        m.target = size;
                    }
                    Err(ResizeError::Zero) => assert_eq!(size, 0),
                    Err(ResizeError::AboveCapacity { requested, capacity: c }) => {
                        assert_eq!((requested, c), (size, capacity));
                        assert!(size > capacity);
                    }
                    Err(ResizeError::Closed) => assert!(m.closed && size > 0 && size <= capacity),
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            Op::ResetPeak => {
                assert_eq!(pool.reset_peak(), m.peak);
                m.peak = m.held.len();
            }
            Op::Close => {
                assert_eq!(pool.close(), !m.closed);
                if !m.closed {
                    m.closed = true;
                    m.debt = 0;
                    let n = m.idle.len();
                    m.expect_drops(&log, n);
                }
            }
            _ => {}
        }
        if !m.closed {
            m.retire(&log);
        }
        assert!(log.lock().unwrap().is_empty(), "unexpected drops {:?}", log.lock().unwrap());
        let stats = pool.stats();
        assert_eq!(stats.idle, m.idle.len(), "{stats}");
        assert_eq!(stats.in_use, m.held.len(), "{stats}");
        assert_eq!(
            (stats.max_size, stats.closed, stats.peak_in_use),
            (m.target, m.closed, m.peak),
            "{stats}"
        );
        assert!(stats.size() <= m.target || m.debt > 0 || m.closed, "{stats}");
        assert_eq!(next_id.load(std::sync::atomic::Ordering::Relaxed), m.created);
    }
    drop(pool);
    drop(m);
});
