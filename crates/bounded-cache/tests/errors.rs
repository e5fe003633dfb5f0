//! The error convention: each error's `Display` says its own layer's message, `source()` gives
//! the cause, so a reporter walking the chain (anyhow, eyre, tracing) prints every cause once.

use bounded_cache::{Cache, ConfigError, InsertErrorKind, LoadError};
use testkit::{Caused, assert_error_chain};

#[test]
fn a_loader_error_and_its_cause_are_each_one_layer() {
    let cache: Cache<u32, String> = Cache::new(1 << 20);
    let error = cache
        .try_get_or_insert_with(7, || {
            Err(Caused::new("fetching the profile failed", std::io::Error::other("connection reset")))
        })
        .unwrap_err();
    assert!(matches!(error, LoadError::Failed(_)));
    let chain = assert_error_chain(&error, 3);
    assert_eq!(chain[1..], ["fetching the profile failed", "connection reset"]);
}

#[test]
fn errors_without_a_cause_stand_alone() {
    let cache: Cache<u32, String> = Cache::new(64);
    let error = cache.insert(1, "x".repeat(1000)).unwrap_err();
    assert_eq!(error.kind, InsertErrorKind::TooHeavy);
    assert_error_chain(&error, 1);
    let error = Cache::<u32, String>::builder(0).build().unwrap_err();
    assert_eq!(error, ConfigError::ZeroBudget);
    assert_error_chain(&error, 1);
}

#[cfg(feature = "redis")]
mod tier {
    use bounded_cache::tier::{Codec, CodecError, Json, MsgPack};
    use testkit::assert_error_chain;

    #[test]
    fn a_value_that_does_not_decode_gives_the_serde_error_as_its_source() {
        let error = <Json as Codec<Vec<u32>>>::decode(&Json, b"{not json").unwrap_err();
        assert!(matches!(error, CodecError::Codec(_)));
        let chain = assert_error_chain(&error, 2);
        assert!(chain[1].contains("line 1"), "serde_json's own message: {chain:?}");
        let error = <MsgPack as Codec<String>>::decode(&MsgPack, &[0xc1]).unwrap_err();
        assert_error_chain(&error, 2);
    }

    #[test]
    fn a_custom_codec_reports_its_failure_with_its_cause() {
        let error = CodecError::codec(std::io::Error::other("schema 3 unknown"));
        assert_eq!(assert_error_chain(&error, 2)[1], "schema 3 unknown");
    }
}
