//! How values are stored in Redis: a serde codec, lz4 compression above a threshold, an optional
//! MAC, and a small envelope that lets a reader reject what it did not write.
//!
//! ```text
//! byte 0    0xBC (magic)
//! byte 1    envelope version (1)
//! byte 2    codec id (1 MessagePack, 2 JSON, others for custom codecs)
//! byte 3    flags: bit 0 = payload is lz4-compressed (block format, u32 length prepended)
//!                  bit 1 = a MAC ends the value
//! byte 4..  payload
//! last 32   with bit 1: HMAC-SHA256 over every byte before it, under the tier's shared key
//! ```
//!
//! **Hostile input.** Redis is shared: a buggy or hostile writer controls what a reader finds.
//! A reader never allocates more than `max_value` for a value: the tier reads at most
//! `max_value` + [`OVERHEAD`] bytes from Redis (`GETRANGE`, so a 100 MiB string costs what the
//! limit allows), a plain payload above `max_value` is refused, and a compressed one is refused
//! before decompression if its stated size is above `max_value` or above what its compressed
//! bytes can expand to (lz4 expands at most 255 times). With a MAC key, a value that is not
//! signed with it is refused, so that a writer without the key cannot poison every instance's
//! L1. Each refusal is a counted corrupt miss.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

const MAGIC: u8 = 0xBC;
const VERSION: u8 = 1;
const COMPRESSED: u8 = 1;
const SIGNED: u8 = 2;
const HEADER: usize = 4;
const MAC_LEN: usize = 32;
/// The most bytes an envelope adds to a payload: the header, lz4's length, a MAC.
pub(crate) const OVERHEAD: usize = HEADER + 4 + MAC_LEN;
/// lz4's largest expansion: a decompressed size above this many times the input is a lie.
const LZ4_MAX_RATIO: usize = 255;

type HmacSha256 = Hmac<Sha256>;

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
        rmp_serde::to_vec(value).map_err(CodecError::codec)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        rmp_serde::from_slice(bytes).map_err(CodecError::codec)
    }
}

/// JSON through `serde_json`: readable with `redis-cli`, larger and slower.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<V: Serialize + DeserializeOwned> Codec<V> for Json {
    const ID: u8 = 2;

    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(CodecError::codec)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        serde_json::from_slice(bytes).map_err(CodecError::codec)
    }
}

/// A value that could not be encoded, decoded or trusted.
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec failed: the value cannot be represented, or the bytes are not a value of this
    /// type (the serde error is the source). A custom [`Codec`] reports its failures so, through
    /// [`CodecError::codec`].
    Codec(Box<dyn std::error::Error + Send + Sync>),
    /// Not an envelope written by this cache: too short, or another magic number or version.
    Foreign,
    /// Written with another codec.
    OtherCodec {
        /// The codec in the envelope.
        written: u8,
        /// The codec reading it.
        read: u8,
    },
    /// A MAC key is set and the value is not signed.
    Unsigned,
    /// The value's MAC does not match: signed with another key, or altered.
    BadSignature,
    /// The value (stored, or its stated decompressed size) is above the tier's `max_value`.
    TooLarge {
        /// The value's size in bytes (at least this, for a stored value read in part).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A compressed payload that is truncated, states a size its bytes cannot hold, or does not
    /// decompress (the decompressor's error, if any, is the source).
    BadCompression(Option<lz4_flex::block::DecompressError>),
}

impl CodecError {
    /// A codec's own failure, for [`Codec`] implementations.
    pub fn codec(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Codec(error.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Codec(_) => f.write_str("cannot encode or decode a cached value"),
            Self::Foreign => {
                f.write_str("not a value written by this cache (bad envelope, magic or version)")
            }
            Self::OtherCodec { written, read } => {
                write!(f, "value written with codec {written}, read with codec {read}")
            }
            Self::Unsigned => f.write_str("value not signed, and a MAC key is set"),
            Self::BadSignature => f.write_str("the value's MAC does not match: not signed with this key"),
            Self::TooLarge { size, limit } => write!(f, "value of {size} bytes above the limit of {limit}"),
            Self::BadCompression(_) => f.write_str("bad compressed payload"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Codec(error) => Some(&**error),
            Self::BadCompression(Some(error)) => Some(error),
            _ => None,
        }
    }
}

/// The shared secret values are signed with.
#[derive(Clone)]
pub(crate) struct MacKey(Arc<[u8]>);

impl MacKey {
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Self(key.into())
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(***)")
    }
}

/// Wraps an encoded value, compressing it when it is larger than `compress_above` bytes and
/// compression helps, and signing it with `key`.
pub(crate) fn seal(codec_id: u8, payload: Vec<u8>, compress_above: usize, key: Option<&MacKey>) -> Vec<u8> {
    let mut flags = if key.is_some() { SIGNED } else { 0 };
    let mut out = Vec::with_capacity(HEADER + payload.len() + MAC_LEN);
    let compressed = (payload.len() > compress_above)
        .then(|| lz4_flex::compress_prepend_size(&payload))
        .filter(|compressed| compressed.len() < payload.len());
    if compressed.is_some() {
        flags |= COMPRESSED;
    }
    out.extend_from_slice(&[MAGIC, VERSION, codec_id, flags]);
    out.extend_from_slice(compressed.as_deref().unwrap_or(&payload));
    if let Some(key) = key {
        let mut mac = key.mac();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Unwraps a stored value, refusing foreign, damaged, unsigned (when `key` is set) and
/// oversized values before allocating for them. See the module docs.
pub(crate) fn open<'a>(
    codec_id: u8,
    bytes: &'a [u8],
    max_value: usize,
    key: Option<&MacKey>,
) -> Result<std::borrow::Cow<'a, [u8]>, CodecError> {
    let [magic, version, id, flags, ..] = bytes else {
        return Err(CodecError::Foreign);
    };
    if (*magic, *version) != (MAGIC, VERSION) {
        return Err(CodecError::Foreign);
    }
    if *id != codec_id {
        return Err(CodecError::OtherCodec { written: *id, read: codec_id });
    }
    let signed = flags & SIGNED != 0;
    let body = match (key, signed) {
        (Some(key), true) => {
            let split = bytes
                .len()
                .checked_sub(MAC_LEN)
                .filter(|&at| at >= HEADER)
                .ok_or(CodecError::BadSignature)?;
            let (signed_part, tag) = bytes.split_at(split);
            let mut mac = key.mac();
            mac.update(signed_part);
            mac.verify_slice(tag).map_err(|_| CodecError::BadSignature)?;
            &signed_part[HEADER..]
        }
        (Some(_), false) => return Err(CodecError::Unsigned),
        // Without a key, a signature cannot be checked: it is skipped.
        (None, true) => bytes.get(HEADER..bytes.len().saturating_sub(MAC_LEN)).unwrap_or_default(),
        (None, false) => &bytes[HEADER..],
    };
    if flags & COMPRESSED == 0 {
        if body.len() > max_value {
            return Err(CodecError::TooLarge { size: body.len(), limit: max_value });
        }
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let Some(size) = body.get(..4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize)
    else {
        return Err(CodecError::BadCompression(None));
    };
    if size > max_value {
        return Err(CodecError::TooLarge { size, limit: max_value });
    }
    if size > (body.len() - 4).saturating_mul(LZ4_MAX_RATIO) {
        return Err(CodecError::BadCompression(None));
    }
    lz4_flex::decompress_size_prepended(body)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| CodecError::BadCompression(Some(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        let small = seal(1, b"hello".to_vec(), 1024, None);
        assert_eq!(&*open(1, &small, 1 << 20, None).unwrap(), b"hello");
        let big = vec![7u8; 100_000];
        let sealed = seal(1, big.clone(), 1024, None);
        assert!(sealed.len() < 1000, "compressed");
        assert_eq!(&*open(1, &sealed, 1 << 20, None).unwrap(), &big[..]);
        assert!(
            matches!(open(1, &sealed, 1000, None), Err(CodecError::TooLarge { limit: 1000, .. })),
            "size limit"
        );
        assert!(
            matches!(open(2, &small, 1 << 20, None), Err(CodecError::OtherCodec { written: 1, read: 2 })),
            "other codec"
        );
        assert!(matches!(open(1, b"plain text", 1 << 20, None), Err(CodecError::Foreign)));
        assert!(
            matches!(
                open(1, &[0xBC, 1, 1, 1, 9, 0, 0, 0, 1, 2], 1 << 20, None),
                Err(CodecError::BadCompression(Some(_)))
            ),
            "damaged"
        );
        assert!(matches!(open(1, b"", 1 << 20, None), Err(CodecError::Foreign)));
        assert!(
            open(1, &seal(1, vec![1; 2000], 1 << 20, None), 1000, None).is_err(),
            "plain value above the limit"
        );
    }

    #[test]
    fn a_stated_size_its_bytes_cannot_hold_is_refused_before_allocating() {
        // 9 compressed bytes claiming 60 MiB: lz4 cannot expand that much.
        let mut lie = vec![0xBC, 1, 1, COMPRESSED];
        lie.extend_from_slice(&(60u32 << 20).to_le_bytes());
        lie.extend_from_slice(&[0x10, b'x', 0, 0, 0]);
        let err = open(1, &lie, 64 << 20, None).unwrap_err();
        assert!(matches!(err, CodecError::BadCompression(None)), "{err}");
    }

    #[test]
    fn macs_are_checked_with_a_key_and_skipped_without() {
        let (right, wrong) = (MacKey::new(b"right".to_vec()), MacKey::new(b"wrong".to_vec()));
        for payload in [b"short".to_vec(), vec![3u8; 50_000]] {
            let signed = seal(1, payload.clone(), 1024, Some(&right));
            assert_eq!(&*open(1, &signed, 1 << 20, Some(&right)).unwrap(), &payload[..]);
            assert!(
                matches!(open(1, &signed, 1 << 20, Some(&wrong)), Err(CodecError::BadSignature)),
                "another key"
            );
            assert_eq!(&*open(1, &signed, 1 << 20, None).unwrap(), &payload[..], "no key: not checked");
            let mut tampered = signed.clone();
            let mid = tampered.len() / 2;
            tampered[mid] ^= 1;
            assert!(
                matches!(open(1, &tampered, 1 << 20, Some(&right)), Err(CodecError::BadSignature)),
                "tampered"
            );
            let unsigned = seal(1, payload, 1024, None);
            assert!(
                matches!(open(1, &unsigned, 1 << 20, Some(&right)), Err(CodecError::Unsigned)),
                "unsigned under a key"
            );
        }
    }
}
