//! A piece of the file handed to the per-chunk function.

use bytes::{Bytes, BytesMut};
use objpool::OwnedGuard;

/// A piece of the file: its bytes, its index (0, 1, 2... in file order) and its offset.
///
/// The bytes live in a buffer from the run's pool (or, for an [`Input::bytes`](crate::Input::bytes),
/// in the caller's buffer); the buffer goes back to the pool when the
/// chunk is dropped and no clone of [`Chunk::bytes`] is alive any more (a clone that outlives the
/// chunk keeps its part of the buffer, and the pool then allocates a replacement).
pub struct Chunk {
    // Field order matters: `data` is dropped before `_buffer`, so that the pool's recycle step finds
    // the buffer unshared and reclaims it in place.
    data: Bytes,
    index: u64,
    input: usize,
    offset: u64,
    _buffer: Option<OwnedGuard<BytesMut>>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("index", &self.index)
            .field("input", &self.input)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Chunk {
    pub(crate) fn new(
        data: Bytes,
        index: u64,
        input: usize,
        offset: u64,
        buffer: Option<OwnedGuard<BytesMut>>,
    ) -> Self {
        Self { data, index, input, offset, _buffer: buffer }
    }

    /// The chunk's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The chunk's bytes as a shared `Bytes` (a reference count, no copy).
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Position in file order, from 0 (in a run over several inputs, counted across them).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Which input the chunk comes from: its position in the inputs of
    /// [`Processor::run_many`](crate::Processor::run_many) (0 for a run over one input).
    pub fn input(&self) -> usize {
        self.input
    }

    /// Offset of the first byte in its input (in the decoded bytes, for a compressed input).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the chunk is empty (only an empty file has no chunk at all; chunks are never empty).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}
