//! The switch to dhat's heap profiler (feature `dhat`).

use std::path::Path;

/// A running dhat heap profile; when dropped it writes the profile (by default to
/// `dhat-heap.json` in the working directory) for the DHAT viewer
/// (<https://nnethercote.github.io/dh_view/dh_view.html>).
///
/// It needs the `dhat` feature and dhat's allocator underneath the global one, which
/// [`global_allocator!`](crate::global_allocator) installs when the feature is on: the same
/// program counts cheaply without the feature and profiles in depth with it. Tracking counters
/// keep working while profiling.
#[derive(Debug)]
pub struct HeapProfile {
    _profiler: dhat::Profiler,
}

impl HeapProfile {
    /// Starts profiling; the profile is written to `dhat-heap.json` when this is dropped.
    ///
    /// # Panics
    /// If a profile is already running (dhat allows one at a time).
    pub fn start() -> Self {
        Self { _profiler: dhat::Profiler::new_heap() }
    }

    /// Starts profiling; the profile is written to `path` when this is dropped.
    ///
    /// # Panics
    /// If a profile is already running.
    pub fn to_file(path: impl AsRef<Path>) -> Self {
        Self { _profiler: dhat::Profiler::builder().file_name(path.as_ref()).build() }
    }
}
