//! How much memory an entry holds.
//!
//! An entry's weight is what it costs the process: the cache's own bookkeeping for the entry
//! ([`Cache::entry_overhead`](crate::Cache::entry_overhead), which includes the inline size of the key
//! and the value), plus the heap memory the key and the value own, as told by [`Weigh`] or by a
//! closure given to [`CacheBuilder::weigher`](crate::CacheBuilder::weigher).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::mem::size_of;
use std::rc::Rc;
use std::sync::Arc;

/// The heap memory a value owns, in bytes, beyond its inline size.
///
/// A type that owns nothing on the heap (integers, `char`, `bool`, fixed arrays of them) weighs 0:
/// its inline size is already counted in the cache's per-entry overhead. Implement this for your
/// own key and value types, or give the cache a closure weigher instead.
///
/// ```
/// use bounded_cache::Weigh;
///
/// assert_eq!(42u64.heap_bytes(), 0);
/// assert_eq!(String::with_capacity(100).heap_bytes(), 100);
/// assert_eq!(vec![0u32; 10].heap_bytes(), 40);
/// ```
pub trait Weigh {
    /// The bytes this value owns on the heap.
    fn heap_bytes(&self) -> usize;
}

macro_rules! weighs_nothing {
    ($($t:ty),*) => {$(
        impl Weigh for $t {
            #[inline]
            fn heap_bytes(&self) -> usize {
                0
            }
        }
    )*};
}

weighs_nothing!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime
);

impl Weigh for String {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

/// An unsized `str` owns nothing beyond itself; a `Box<str>` or `Arc<str>` counts its bytes.
impl Weigh for str {
    #[inline]
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// An unsized slice counts what its elements own; a `Box<[T]>` adds the elements themselves.
impl<T: Weigh> Weigh for [T] {
    fn heap_bytes(&self) -> usize {
        self.iter().map(Weigh::heap_bytes).sum()
    }
}

impl<T: Weigh, const N: usize> Weigh for [T; N] {
    fn heap_bytes(&self) -> usize {
        self.iter().map(Weigh::heap_bytes).sum()
    }
}

impl<T: Weigh> Weigh for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(Weigh::heap_bytes).sum::<usize>()
    }
}

impl<T: Weigh> Weigh for VecDeque<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(Weigh::heap_bytes).sum::<usize>()
    }
}

impl<T: Weigh + ?Sized> Weigh for Box<T> {
    fn heap_bytes(&self) -> usize {
        size_of_val::<T>(self) + T::heap_bytes(self)
    }
}

/// Shared pointers count the whole allocation (the two counts and the value) to each holder: the
/// cache cannot know whether the other holders outlive the entry.
impl<T: Weigh + ?Sized> Weigh for Arc<T> {
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + size_of_val::<T>(self) + T::heap_bytes(self)
    }
}

/// Counted like [`Arc`].
impl<T: Weigh + ?Sized> Weigh for Rc<T> {
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + size_of_val::<T>(self) + T::heap_bytes(self)
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, Weigh::heap_bytes)
    }
}

/// Hash maps count their buckets (key, value and one control byte each) and what the entries own.
impl<K: Weigh, V: Weigh, S> Weigh for HashMap<K, V, S> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * (size_of::<(K, V)>() + 1)
            + self.iter().map(|(k, v)| k.heap_bytes() + v.heap_bytes()).sum::<usize>()
    }
}

/// B-tree maps count each entry's key and value (node overhead is not visible from outside).
impl<K: Weigh, V: Weigh> Weigh for BTreeMap<K, V> {
    fn heap_bytes(&self) -> usize {
        self.iter().map(|(k, v)| size_of::<(K, V)>() + k.heap_bytes() + v.heap_bytes()).sum()
    }
}

macro_rules! weigh_tuple {
    ($($n:tt $t:ident),+) => {
        impl<$($t: Weigh),+> Weigh for ($($t,)+) {
            fn heap_bytes(&self) -> usize {
                0 $(+ self.$n.heap_bytes())+
            }
        }
    };
}

weigh_tuple!(0 A);
weigh_tuple!(0 A, 1 B);
weigh_tuple!(0 A, 1 B, 2 C);
weigh_tuple!(0 A, 1 B, 2 C, 3 D);

/// A [`bytes::Bytes`] counts its length: a slice of a bigger buffer may keep the whole buffer alive,
/// so for values cut out of large reads, copy them (`Bytes::copy_from_slice`) before caching.
#[cfg(feature = "bytes")]
impl Weigh for bytes::Bytes {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "bytes")]
impl Weigh for bytes::BytesMut {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

/// How a cache weighs its entries: the heap bytes of a key and its value together.
///
/// Implemented by [`DefaultWeigher`] (which asks [`Weigh`]) and by any
/// `Fn(&K, &V) -> usize + Send + Sync` closure.
pub trait Weigher<K, V>: Send + Sync {
    /// The heap bytes `key` and `value` own (the cache adds its per-entry overhead).
    fn weigh(&self, key: &K, value: &V) -> usize;

    /// Whether the cache adds its per-entry overhead to [`weigh`](Self::weigh)'s answer. Only
    /// [`UnitWeigher`], whose budget counts entries rather than bytes, says no.
    fn counts_overhead(&self) -> bool {
        true
    }
}

/// Every entry weighs 1 and the overhead is not added: the budget is a number of entries. Set by
/// [`CacheBuilder::max_entries`](crate::CacheBuilder::max_entries).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitWeigher;

impl<K, V> Weigher<K, V> for UnitWeigher {
    #[inline]
    fn weigh(&self, _: &K, _: &V) -> usize {
        1
    }

    fn counts_overhead(&self) -> bool {
        false
    }
}

/// The weigher that asks the key and the value through [`Weigh`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultWeigher;

impl<K: Weigh, V: Weigh> Weigher<K, V> for DefaultWeigher {
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> usize {
        key.heap_bytes() + value.heap_bytes()
    }
}

impl<K, V, F: Fn(&K, &V) -> usize + Send + Sync> Weigher<K, V> for F {
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> usize {
        self(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_count_their_heap() {
        assert_eq!(String::from("abc").heap_bytes(), 3);
        assert_eq!(vec![String::from("ab"), String::from("cde")].heap_bytes(), 2 * 24 + 5);
        assert_eq!(Box::<[u8]>::from(&b"hello"[..]).heap_bytes(), 5);
        assert_eq!(Some(String::from("xy")).heap_bytes(), 2);
        assert_eq!((1u8, String::from("xyz")).heap_bytes(), 3);
        let arc: Arc<str> = Arc::from("four");
        assert_eq!(arc.heap_bytes(), 16 + 4);
        #[cfg(feature = "bytes")]
        assert_eq!(bytes::Bytes::from_static(b"12345678").heap_bytes(), 8);
    }

    #[test]
    fn closures_are_weighers() {
        let w = |k: &u32, v: &String| *k as usize + v.len();
        assert_eq!(Weigher::weigh(&w, &3, &"ab".to_string()), 5);
        assert_eq!(Weigher::weigh(&DefaultWeigher, &3u32, &"ab".to_string()), 2);
    }
}
