//! The workspace's error convention, checked: an error's `Display` states its own layer's
//! message only and `source()` returns the cause, so that a reporter walking the chain (anyhow,
//! eyre, tracing, a CLI's `error: a: b: c`) prints each cause once.

use std::error::Error;

/// The messages of `error` and of every cause down its `source()` chain, outermost first.
pub fn error_chain(error: &dyn Error) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// The chain as a reporter prints it: every message once, outermost first, joined by `": "`.
pub fn report(error: &dyn Error) -> String {
    error_chain(error).join(": ")
}

/// Checks `error` against the convention and returns its chain (outermost first): the chain is
/// exactly `depth` errors long, no message is empty, and no message contains the message of a
/// cause further down (a layer that prints its cause and also returns it from `source()` would
/// have a reporter print the cause twice).
///
/// # Panics
/// If the error breaks the convention, naming the layers at fault.
#[track_caller]
pub fn assert_error_chain(error: &dyn Error, depth: usize) -> Vec<String> {
    let chain = error_chain(error);
    assert_eq!(chain.len(), depth, "the error's source chain is not {depth} long: {chain:#?}");
    for (i, outer) in chain.iter().enumerate() {
        assert!(!outer.trim().is_empty(), "layer {i} of the chain has an empty message: {chain:#?}");
        for (j, inner) in chain.iter().enumerate().skip(i + 1) {
            assert!(
                !outer.contains(inner.as_str()),
                "layer {i} repeats the message of its cause at layer {j}: {chain:#?}"
            );
        }
    }
    chain
}

/// An error with a message of its own and a cause, following the convention: what a user's
/// error (a loader's, a per-chunk function's) often looks like, for the chain tests.
#[derive(Debug)]
pub struct Caused {
    message: &'static str,
    cause: Box<dyn Error + Send + Sync>,
}

impl Caused {
    /// An error saying `message`, caused by `cause`.
    pub fn new(message: &'static str, cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self { message, cause: cause.into() }
    }
}

impl std::fmt::Display for Caused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl Error for Caused {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.cause)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>, bool);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)?;
            match (&self.1, self.2) {
                (Some(cause), true) => write!(f, ": {cause}"),
                _ => Ok(()),
            }
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn a_chain_that_follows_the_convention_passes() {
        let error =
            Layer("reading the config failed", Some(Box::new(Layer("file not found", None, false))), false);
        assert_eq!(assert_error_chain(&error, 2), ["reading the config failed", "file not found"]);
    }

    #[test]
    #[should_panic(expected = "repeats the message of its cause")]
    fn a_layer_that_prints_its_cause_is_caught() {
        let error =
            Layer("reading the config failed", Some(Box::new(Layer("file not found", None, false))), true);
        assert_error_chain(&error, 2);
    }

    #[test]
    #[should_panic(expected = "is not 3 long")]
    fn a_chain_of_the_wrong_depth_is_caught() {
        assert_error_chain(&Layer("alone", None, false), 3);
    }
}
