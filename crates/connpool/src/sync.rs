//! The lock and atomics of the pool's core: parking_lot and std's, or loom's under
//! `--cfg connpool_loom`.

#[cfg(not(connpool_loom))]
pub(crate) use std::sync::Arc;

#[cfg(not(connpool_loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

#[cfg(connpool_loom)]
pub(crate) use loom::sync::Arc;

/// loom's mutex with the poison-free `lock` of parking_lot.
#[cfg(connpool_loom)]
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(connpool_loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}
