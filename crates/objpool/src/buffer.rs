//! A ready-made pool of `bytes::BytesMut` buffers.

use bytes::BytesMut;

use crate::error::BuildError;
use crate::pool::Pool;

/// A pool of byte buffers, built by [`BufferPoolBuilder`].
pub type BufferPool = Pool<BytesMut>;

/// Builds a [`BufferPool`]: buffers of a set capacity, cleared when they come back, and dropped
/// or shrunk when they grew beyond a retained capacity, so that one large message does not pin
/// its memory in the pool for good.
///
/// ```
/// use bytes::BufMut;
///
/// let pool = objpool::BufferPoolBuilder::new(4096).max_size(8).pre_create(2).build()?;
/// let mut buf = pool.try_get()?;
/// buf.put_slice(b"hello");
/// drop(buf); // cleared and back in the pool
/// assert!(pool.try_get()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BufferPoolBuilder {
    capacity: usize,
    retained_capacity: usize,
    shrink: bool,
    max_size: usize,
    pre_create: usize,
}

impl BufferPoolBuilder {
    /// Buffers of `capacity` bytes. By default a buffer that grew beyond four times that is
    /// dropped on return, at most [`DEFAULT_MAX_SIZE`](crate::DEFAULT_MAX_SIZE) buffers exist
    /// and none is pre-created.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            retained_capacity: capacity.saturating_mul(4),
            shrink: false,
            max_size: crate::DEFAULT_MAX_SIZE,
            pre_create: 0,
        }
    }

    /// The largest capacity a returned buffer may keep (at least the initial capacity).
    pub fn retained_capacity(mut self, retained_capacity: usize) -> Self {
        self.retained_capacity = retained_capacity;
        self
    }

    /// Replace an oversized buffer with a fresh one of the initial capacity, instead of
    /// dropping it and freeing its slot.
    pub fn shrink(mut self, shrink: bool) -> Self {
        self.shrink = shrink;
        self
    }

    /// The most buffers that may exist at once.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// How many buffers to allocate while building.
    pub fn pre_create(mut self, pre_create: usize) -> Self {
        self.pre_create = pre_create;
        self
    }

    /// Builds the pool.
    ///
    /// # Errors
    /// As [`Builder::build`](crate::Builder::build).
    pub fn build(self) -> Result<BufferPool, BuildError> {
        let Self { capacity, retained_capacity, shrink, max_size, pre_create } = self;
        let retained_capacity = retained_capacity.max(capacity);
        Pool::builder()
            .max_size(max_size)
            .pre_create(pre_create)
            .recycle(move |buf: &mut BytesMut| {
                buf.clear();
                if buf.capacity() > retained_capacity {
                    if !shrink {
                        return false;
                    }
                    *buf = BytesMut::with_capacity(capacity);
                } else if buf.capacity() < capacity {
                    // A caller split part of the buffer off; reclaim it (in place when the
                    // split-off part is gone) so that every buffer handed out has `capacity`.
                    buf.reserve(capacity);
                }
                true
            })
            .build(move || BytesMut::with_capacity(capacity))
    }
}
