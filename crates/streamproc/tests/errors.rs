//! The error convention: each error's `Display` says its own layer's message, `source()` gives
//! the cause, so a reporter walking the chain (the CLI's `streamproc: a: b`) prints every cause
//! once.

use std::fmt;
use std::io::Read;

use streamproc::{Config, ConfigError, Error, Input, Processor};
use testkit::{Caused, assert_error_chain};

#[test]
fn an_unopenable_file_names_the_file_and_gives_the_os_error_as_source() {
    let p = Processor::new(Config::new().workers(1)).unwrap();
    let error = p.run(Input::path("/nonexistent/streamproc/input"), |c| Ok::<_, Never>(c.len())).unwrap_err();
    assert!(matches!(error, Error::Open { .. }));
    let chain = assert_error_chain(&error, 2);
    assert!(chain[0].contains("/nonexistent/streamproc/input"), "{chain:?}");
    assert!(chain[1].contains("No such file"), "{chain:?}");
}

#[test]
fn a_failed_read_gives_the_reader_error_as_source() {
    struct Gone;
    impl Read for Gone {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("device gone"))
        }
    }
    let p = Processor::new(Config::new().chunk_size(10).workers(1).lines()).unwrap();
    let error = p
        .run(Input::reader("sensor", Gone), |c| Ok::<_, Never>(c.len()))
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, Error::Read { offset: 0, .. }));
    assert_eq!(assert_error_chain(&error, 2)[1], "device gone");
}

#[test]
fn a_worker_error_and_its_own_cause_are_each_one_layer() {
    let p = Processor::new(Config::new().chunk_size(4).workers(1).lines()).unwrap();
    let error = p
        .run(Input::bytes(&b"1\nx\n"[..]), |c| {
            std::str::from_utf8(c.data())
                .unwrap()
                .trim()
                .parse::<u32>()
                .map_err(|e| Caused::new("not a count", e))
        })
        .unwrap()
        .find_map(Result::err)
        .unwrap();
    assert!(matches!(error, Error::Worker { .. }));
    let chain = assert_error_chain(&error, 3);
    assert_eq!(chain[1], "not a count");
    assert_eq!(chain[2], "invalid digit found in string");
}

#[test]
fn configuration_errors_stand_alone() {
    let error = Processor::new(Config::new().workers(0)).unwrap_err();
    assert_eq!(error, ConfigError::ZeroWorkers);
    assert_error_chain(&error, 1);
}

/// A worker error that never happens (`Error<()>` is no `std::error::Error`).
#[derive(Debug)]
enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}
