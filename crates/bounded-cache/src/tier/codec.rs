//! How values are stored in Redis: a serde codec, lz4 compression above a threshold, and a small
//! envelope that lets a reader reject what it did not write.
//!
//! ```text
//! byte 0    0xBC (magic)
//! byte 1    envelope version (1)
//! byte 2    codec id (1 MessagePack, 2 JSON, others for custom codecs)
//! byte 3    flags: bit 0 = payload is lz4-compressed (block format, length prepended)
//! byte 4..  payload
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: u8 = 0xBC;
const VERSION: u8 = 1;
const COMPRESSED: u8 = 1;

/// Turns values into bytes and back.
pub trait Codec<V>: Send + Sync + 'static {
    /// Identifies the codec in the envelope, so that values written with another codec are
    /// rejected (counted as corrupt) instead of misread.
    const ID: u8;

    /// Encodes a value.
    ///
    /// # Errors
    /// The value cannot be represented.
    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError>;

    /// Decodes a value.
    ///
    /// # Errors
    /// The bytes are not a value of this type.
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// MessagePack through `rmp-serde`: compact and fast; the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl<V: Serialize + DeserializeOwned> Codec<V> for MsgPack {
    const ID: u8 = 1;

    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError> {
        rmp_serde::to_vec(value).map_err(|e| CodecError(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
    }
}

/// JSON through `serde_json`: readable with `redis-cli`, larger and slower.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<V: Serialize + DeserializeOwned> Codec<V> for Json {
    const ID: u8 = 2;

    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| CodecError(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
    }
}

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode or decode a cached value: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

/// Wraps an encoded value, compressing it when it is larger than `compress_above` bytes and
/// compression helps.
pub(crate) fn seal(codec_id: u8, payload: Vec<u8>, compress_above: usize) -> Vec<u8> {
    if payload.len() > compress_above {
        let compressed = lz4_flex::compress_prepend_size(&payload);
        if compressed.len() < payload.len() {
            return [&[MAGIC, VERSION, codec_id, COMPRESSED][..], &compressed].concat();
        }
    }
    [&[MAGIC, VERSION, codec_id, 0][..], &payload].concat()
}

/// Unwraps a stored value, refusing foreign or damaged bytes and decompressed sizes above
/// `max_value`.
pub(crate) fn open(
    codec_id: u8,
    bytes: &[u8],
    max_value: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, CodecError> {
    let [magic, version, id, flags, payload @ ..] = bytes else {
        return Err(CodecError("too short for an envelope".into()));
    };
    if (*magic, *version) != (MAGIC, VERSION) {
        return Err(CodecError("not written by this cache (bad magic or version)".into()));
    }
    if *id != codec_id {
        return Err(CodecError(format!("written with codec {id}, read with codec {codec_id}")));
    }
    if flags & COMPRESSED == 0 {
        return Ok(std::borrow::Cow::Borrowed(payload));
    }
    let Some(size) = payload.get(..4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize)
    else {
        return Err(CodecError("compressed payload without its size".into()));
    };
    if size > max_value {
        return Err(CodecError(format!("decompressed size {size} above the limit of {max_value}")));
    }
    lz4_flex::decompress_size_prepended(payload)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| CodecError(format!("bad compressed payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        let small = seal(1, b"hello".to_vec(), 1024);
        assert_eq!(&*open(1, &small, 1 << 20).unwrap(), b"hello");
        let big = vec![7u8; 100_000];
        let sealed = seal(1, big.clone(), 1024);
        assert!(sealed.len() < 1000, "compressed");
        assert_eq!(&*open(1, &sealed, 1 << 20).unwrap(), &big[..]);
        assert!(open(1, &sealed, 1000).is_err(), "size limit");
        assert!(open(2, &small, 1 << 20).is_err(), "other codec");
        assert!(open(1, b"plain text", 1 << 20).is_err());
        assert!(open(1, &[0xBC, 1, 1, 1, 9, 0, 0, 0, 1, 2], 1 << 20).is_err(), "damaged");
        assert!(open(1, b"", 1 << 20).is_err());
    }
}
