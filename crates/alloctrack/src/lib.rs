#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Feature badges on docs.rs; the test-only cfgs (loom models, fuzzing) are not part of the API.
#![cfg_attr(docsrs, doc(auto_cfg(hide(alloctrack_loom))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(alloctrack_loom, allow(dead_code))]

// Under `--cfg alloctrack_loom` only the registry, the synchronisation that the loom models
// check, is built: everything else needs the static registry, which loom's atomics cannot
// initialise at compile time.
macro_rules! not_under_loom {
    ($($item:item)*) => { $( #[cfg(not(alloctrack_loom))] $item )* };
}

mod registry;
mod sync;

not_under_loom! {
    mod allocator;
    mod cgroup;
    #[cfg(feature = "dhat")]
    mod profile;
    mod pressure;
    mod rss;
    pub mod sampling;
    mod scope;
    #[cfg(feature = "tower")]
    mod requests;
    mod snapshot;
    #[cfg(feature = "tracing")]
    mod spans;
    mod thread;
    mod track;

    pub use allocator::Tracking;
    pub use cgroup::{Cgroup, CgroupVersion};
    pub use pressure::{
        Level, MonitorThread, PressureConfigError, PressureEvent, PressureMonitor, PressureMonitorBuilder, Source,
    };
    #[cfg(feature = "dhat")]
    pub use profile::HeapProfile;
    pub use rss::rss_bytes;
    pub use scope::{Scope, ScopeStats, assert_max_allocs, assert_no_alloc, measure};
    pub use snapshot::{Snapshot, snapshot};
    pub use thread::MAX_THREADS;
    #[cfg(feature = "tower")]
    pub use requests::{RequestAllocations, RouteAllocations, TrackRequests, TrackedResponse};
    #[cfg(feature = "tracing")]
    pub use spans::SpanAllocations;
    pub use track::{Tracked, track};
}

/// The allocator [`global_allocator!`] installs: [`Tracking`] over dhat's allocator with the
/// `dhat` feature, else over mimalloc with the `mimalloc` feature, else over the system
/// allocator.
#[cfg(all(not(alloctrack_loom), feature = "dhat"))]
pub type DefaultAllocator = Tracking<dhat::Alloc>;
/// The allocator [`global_allocator!`] installs: [`Tracking`] over dhat's allocator with the
/// `dhat` feature, else over mimalloc with the `mimalloc` feature, else over the system
/// allocator.
#[cfg(all(not(alloctrack_loom), not(feature = "dhat"), feature = "mimalloc"))]
pub type DefaultAllocator = Tracking<mimalloc::MiMalloc>;
/// The allocator [`global_allocator!`] installs: [`Tracking`] over dhat's allocator with the
/// `dhat` feature, else over mimalloc with the `mimalloc` feature, else over the system
/// allocator.
#[cfg(all(not(alloctrack_loom), not(feature = "dhat"), not(feature = "mimalloc")))]
pub type DefaultAllocator = Tracking<std::alloc::System>;

/// The value of [`DefaultAllocator`].
#[cfg(all(not(alloctrack_loom), feature = "dhat"))]
pub const DEFAULT_ALLOCATOR: DefaultAllocator = Tracking::new(dhat::Alloc);
/// The value of [`DefaultAllocator`].
#[cfg(all(not(alloctrack_loom), not(feature = "dhat"), feature = "mimalloc"))]
pub const DEFAULT_ALLOCATOR: DefaultAllocator = Tracking::new(mimalloc::MiMalloc);
/// The value of [`DefaultAllocator`].
#[cfg(all(not(alloctrack_loom), not(feature = "dhat"), not(feature = "mimalloc")))]
pub const DEFAULT_ALLOCATOR: DefaultAllocator = Tracking::new(std::alloc::System);

/// Installs [`DEFAULT_ALLOCATOR`] as the program's global allocator: counting always, and
/// underneath it dhat's profiling allocator when the `dhat` feature is on. With `sampling`, it
/// also records sampled allocation sites ([`Tracking::with_sampling`], [`sampling`]).
///
/// ```ignore
/// alloctrack::global_allocator!();
/// // or
/// alloctrack::global_allocator!(sampling);
/// ```
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[global_allocator]
        static ALLOCTRACK_GLOBAL: $crate::DefaultAllocator = $crate::DEFAULT_ALLOCATOR;
    };
    (sampling) => {
        #[global_allocator]
        static ALLOCTRACK_GLOBAL: $crate::DefaultAllocator = $crate::DEFAULT_ALLOCATOR.with_sampling();
    };
}
