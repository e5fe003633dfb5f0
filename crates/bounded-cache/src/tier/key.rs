//! Short, stable keys from structured parts.

use std::fmt::Write as _;

use serde::Serialize;

/// Builds a key from parts joined by `:`: each structured part is serialised (MessagePack) and
/// hashed (XXH3, 64 bits, as 16 hex digits), so keys stay short and the same input gives the same
/// key in every process and version of the program; a raw part is kept readable with `%` and
/// `:` escaped (`%25`, `%3A`), so that where a part ends is never ambiguous:
/// `raw("a:b").raw("c")` is `a%3Ab:c`, `raw("a").raw("b:c")` is `a:b%3Ac`.
///
/// ```
/// use bounded_cache::tier::KeyBuilder;
///
/// let key = KeyBuilder::namespaced("ai:analysis", 1).part(&("user", 42)).part(&"some long prompt").build();
/// assert!(key.starts_with("ai:analysis:v1:"));
/// assert_eq!(key.len(), "ai:analysis:v1:".len() + 16 + 1 + 16);
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeyBuilder {
    key: String,
    /// Whether a part (possibly empty) was written: the next one needs a separator.
    started: bool,
}

impl KeyBuilder {
    /// An empty key (for [`TieredCache`](crate::tier::TieredCache), which adds its own namespace).
    pub fn new() -> Self {
        Self::default()
    }

    /// A key that starts with `<prefix>:v<version>`.
    pub fn namespaced(prefix: &str, version: u32) -> Self {
        Self { key: format!("{prefix}:v{version}"), started: true }
    }

    fn sep(&mut self) {
        if self.started {
            self.key.push(':');
        }
        self.started = true;
    }

    /// Appends the hash of a structured part.
    ///
    /// # Panics
    /// If the part cannot be serialised (a map with non-string keys, for example).
    pub fn part(mut self, part: &impl Serialize) -> Self {
        let bytes = rmp_serde::to_vec(part).expect("a key part must serialise");
        self.sep();
        let _ = write!(self.key, "{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
        self
    }

    /// Appends a readable part (an id, a name), with `%` and `:` escaped.
    pub fn raw(mut self, part: &str) -> Self {
        self.sep();
        for c in part.chars() {
            match c {
                '%' => self.key.push_str("%25"),
                ':' => self.key.push_str("%3A"),
                c => self.key.push(c),
            }
        }
        self
    }

    /// The key.
    pub fn build(self) -> String {
        self.key
    }
}
