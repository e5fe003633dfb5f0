//! The error convention: each error's `Display` says its own layer's message, `source()` gives
//! the cause, so a reporter walking the chain prints every cause once.

use std::sync::atomic::{AtomicUsize, Ordering};

use objpool::{AddRefused, BuildError, GetError, Pool, TryGetError};
use testkit::assert_error_chain;

fn grammar_missing() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "grammar file missing")
}

#[test]
fn a_creator_error_is_the_source_of_the_build_error() {
    let error = Pool::<Vec<u8>>::builder()
        .max_size(4)
        .pre_create(2)
        .try_build(|| Err::<Vec<u8>, _>(grammar_missing()))
        .unwrap_err();
    assert!(matches!(error, BuildError::Create { created: 0, .. }));
    let chain = assert_error_chain(&error, 2);
    assert_eq!(chain[1], "grammar file missing");
}

#[test]
fn a_creator_error_is_the_source_of_the_get_errors() {
    let calls = AtomicUsize::new(0);
    let pool = Pool::<Vec<u8>>::builder()
        .max_size(2)
        .try_build(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<Vec<u8>, _>(grammar_missing())
        })
        .unwrap();
    let error = pool.get().unwrap_err();
    assert!(matches!(error, GetError::Create(_)));
    assert_eq!(assert_error_chain(&error, 2)[1], "grammar file missing");
    let error = pool.try_get().unwrap_err();
    assert!(matches!(error, TryGetError::Create(_)));
    assert_eq!(assert_error_chain(&error, 2)[1], "grammar file missing");
}

#[test]
fn errors_without_a_cause_stand_alone() {
    let error = Pool::<u8>::builder().max_size(0).build(|| 0).unwrap_err();
    assert!(matches!(error, BuildError::ZeroMaxSize));
    assert_error_chain(&error, 1);
    let pool = Pool::builder().max_size(1).build_unmanaged().unwrap();
    pool.add(1u8).unwrap();
    let error = pool.add(2).unwrap_err();
    assert_eq!((error.reason, error.object), (AddRefused::Full, 2));
    assert_error_chain(&error, 1);
    pool.close();
    assert_error_chain(&pool.get().unwrap_err(), 1);
}
