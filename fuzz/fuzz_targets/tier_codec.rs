//! The Redis tier's envelope and codecs against what a hostile or buggy writer can put in Redis.
//!
//! - Round trip (the model is the identity): whatever the tier seals, with or without
//!   compression and a MAC key, opens to the same bytes under the same settings; under another
//!   MAC key, or unsigned under a key, it is refused.
//! - Arbitrary bytes: `open` never panics, never returns more than `max_value` bytes, and never
//!   makes a single allocation larger than `max_value` plus the envelope; the serde codecs
//!   (MessagePack and JSON) decode what it returns without panicking, allocating at most that or
//!   serde's 1 MiB cap on preallocating a sequence of stated length, whichever is larger.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::Arbitrary;
use bounded_cache::tier::fuzzing::{open, seal};
use bounded_cache::tier::{Codec, Json, MsgPack};
use libfuzzer_sys::fuzz_target;

/// The system allocator, remembering the largest single request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is an
// atomic maximum, which allocates nothing.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Treated as a stored value found in Redis.
    raw: Vec<u8>,
    /// Sealed and opened again.
    payload: Vec<u8>,
    compress_above: u16,
    key: Option<[u8; 4]>,
    other_key: [u8; 4],
    max_value: u16,
    codec_id: u8,
}

/// The most serde preallocates for one sequence from a stated length (its "cautious" hint).
const SERDE_PREALLOCATION: usize = 1 << 20;

/// What a read may allocate at most in one piece: the limit, and the envelope around it.
fn bound(max_value: usize) -> usize {
    max_value + 64
}

fuzz_target!(|input: Input| {
    let max_value = usize::from(input.max_value);
    let key = input.key.as_ref().map(|k| &k[..]);

    // Arbitrary bytes, as a hostile writer leaves them.
    LARGEST.store(0, Ordering::Relaxed);
    let opened = open(input.codec_id, &input.raw, max_value, key);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= bound(max_value).max(4096),
        "a {largest}-byte allocation under a limit of {max_value}"
    );
    if let Some(bytes) = &opened {
        assert!(bytes.len() <= max_value, "{} bytes opened under a limit of {max_value}", bytes.len());
        let _ = Codec::<Vec<String>>::decode(&MsgPack, bytes);
        let _ = Codec::<std::collections::BTreeMap<String, u64>>::decode(&Json, bytes);
        // serde preallocates a sequence from its stated length, capped at 1 MiB ("cautious"
        // size hints), whatever the input's size: a decode is bounded by that, not by the limit.
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= bound(max_value).max(SERDE_PREALLOCATION),
            "a {largest}-byte allocation while decoding"
        );
    }

    // What the tier writes comes back exactly, and only under the right key.
    let sealed = seal(input.codec_id, input.payload.clone(), usize::from(input.compress_above), key);
    let limit = input.payload.len();
    assert_eq!(open(input.codec_id, &sealed, limit, key).as_deref(), Some(&input.payload[..]));
    assert_eq!(open(input.codec_id.wrapping_add(1), &sealed, limit, key), None, "another codec's value");
    if limit > 0 {
        assert_eq!(open(input.codec_id, &sealed, limit - 1, key), None, "above the limit");
    }
    if let Some(k) = input.key
        && k != input.other_key
    {
        assert_eq!(open(input.codec_id, &sealed, limit, Some(&input.other_key)), None, "another key");
    }
    if key.is_none() {
        assert_eq!(
            open(input.codec_id, &sealed, limit, Some(&input.other_key)),
            None,
            "unsigned under a key"
        );
    }
});
