//! Iteration over clones of a cache's live entries.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::cache::Cache;
use crate::weigh::Weigher;

/// Iterator over clones of a cache's live entries; from [`Cache::iter`].
///
/// Shards are read one at a time: a shard's live entries are cloned under its read lock, then
/// yielded with no lock held (so the loop body may call the cache). Under concurrent changes the
/// iterator sees each shard at one instant, and the shards at different instants: an entry that
/// stays in the cache throughout is yielded exactly once, one inserted or removed meanwhile may or
/// may not be, and none is yielded twice.
pub struct Iter<'a, K, V, W, S> {
    cache: &'a Cache<K, V, W, S>,
    next_shard: usize,
    buffer: std::vec::IntoIter<(K, V)>,
}

impl<'a, K, V, W, S> Iter<'a, K, V, W, S> {
    pub(crate) fn new(cache: &'a Cache<K, V, W, S>) -> Self {
        Self { cache, next_shard: 0, buffer: Vec::new().into_iter() }
    }
}

impl<K, V, W, S> fmt::Debug for Iter<'_, K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("next_shard", &self.next_shard).finish_non_exhaustive()
    }
}

impl<K, V, W, S> Iterator for Iter<'_, K, V, W, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(item);
            }
            let inner = self.cache.inner();
            let cell = inner.cells.get(self.next_shard)?;
            self.next_shard += 1;
            let mut entries = Vec::new();
            cell.read().for_each(inner.now(), |k, v| entries.push((k.clone(), v.clone())));
            self.buffer = entries.into_iter();
        }
    }
}
