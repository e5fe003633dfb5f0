//! Sampled allocation sites: where the heap's bytes come from, cheap enough to leave on.
//!
//! A [`Tracking`](crate::Tracking) allocator built [`with_sampling`](crate::Tracking::with_sampling)
//! records the stack of about one allocation per [`interval`] bytes allocated (a random
//! geometric interval, as jemalloc and tcmalloc sample) and keeps, per allocation site, the
//! estimated bytes and objects allocated and still live. [`profile`] returns them, symbolized,
//! and [`Profile::to_pprof`] encodes them as a `pprof` heap profile (`go tool pprof`, Grafana
//! Pyroscope, Polar Signals, Datadog read it).
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system().with_sampling();
//!
//! # fn main() -> std::io::Result<()> {
//! // ... later, on demand or from a pressure callback:
//! let profile = alloctrack::sampling::profile();
//! for site in profile.sites().iter().take(5) {
//!     println!("{site}");
//! }
//! profile.write_pprof("heap.pb")?;
//! # Ok(())
//! # }
//! ```
//!
//! Figures are estimates: each sampled block of `s` bytes stands for `s / (1 - exp(-s/N))`
//! bytes at interval `N`, so a site's estimate converges on its true bytes as its samples
//! grow (a site that allocated 100 intervals' worth is within about 10%). The sampler's own
//! cost is one load per allocation and a range check per free, both on the counter slot the
//! allocation path already holds, and a stack walk per sample; see `store.rs` and
//! `countdown.rs` for how a sampled block is found again when it is freed. Sampling needs a
//! Unix system (the blocks it records live in a reserved mapping); elsewhere nothing is sampled
//! and [`SamplingStats::available`] says so.

mod countdown;
mod pprof;
mod store;

use std::alloc::{GlobalAlloc, Layout};
use std::fmt;
use std::io;
use std::path::Path;

pub use countdown::DEFAULT_INTERVAL;
use store::{MAX_DEPTH, Placement, SLOT_SIZE};

pub(crate) use countdown::limit_reached;

use crate::registry::Slot;
use crate::thread::{REGISTRY, with_slot};

/// Sets the mean number of bytes between samples, for every thread from its next sample on;
/// 0 pauses sampling (threads look again every MiB they allocate).
pub fn set_interval(bytes: u64) {
    countdown::set_interval(bytes);
}

/// The mean number of bytes between samples; 0 while paused.
pub fn interval() -> u64 {
    countdown::interval()
}

/// Serves an allocation that [`due`] picked: records its stack and places the block where its
/// free will be recognised.
///
/// # Safety
/// As `GlobalAlloc::alloc`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn alloc<A: GlobalAlloc>(inner: &A, layout: Layout, zeroed: bool) -> *mut u8 {
    let mut frames = [0; MAX_DEPTH];
    let depth = countdown::capture(&mut frames);
    let weight = countdown::weight(layout.size());
    match store::sample(&frames[..depth], weight, layout.size(), layout.align()) {
        Placement::Slot(ptr) => {
            if zeroed {
                // SAFETY: the slot is at least `layout.size()` bytes, and ours alone.
                unsafe { ptr.write_bytes(0, layout.size()) };
            }
            ptr
        }
        Placement::Inner { site } => {
            // SAFETY: forwarded with the caller's guarantees.
            let ptr = unsafe { if zeroed { inner.alloc_zeroed(layout) } else { inner.alloc(layout) } };
            if layout.size() > SLOT_SIZE {
                store::track_large(ptr, site, weight);
            }
            ptr
        }
    }
}

/// Records the free of `ptr` on `slot`, the calling thread's own, for a sampling allocator, and
/// says whether the sampler may own the block: a region block, or a block larger than a slot
/// (which may be a sampled large block). Inlined into every free: a block of at most a slot
/// costs the packed count and one range compare, both on `slot`; [`release`] does the rest out
/// of line.
#[inline(always)]
pub(crate) fn record_dealloc(slot: &Slot, ptr: *mut u8, layout: Layout) -> bool {
    if layout.size() > SLOT_SIZE {
        REGISTRY.record_dealloc(slot, layout.size() as u64);
        return true;
    }
    REGISTRY.record_small_dealloc(slot, layout.size() as u64);
    store::in_region_of(slot, ptr)
}

/// Whether the free of `ptr` is one the sampler has nothing to do with and knows it at once: a
/// block of at most a slot, outside the region (`slot` is the calling thread's own).
#[inline(always)]
pub(crate) fn unconcerned(slot: &Slot, ptr: *mut u8, layout: Layout) -> bool {
    layout.size() <= SLOT_SIZE && !store::in_region_of(slot, ptr)
}

// A block of at most a slot is below the registry's large-block size: `record_dealloc` counts
// it with the packed word alone.
const _: () = assert!((SLOT_SIZE as u64) < crate::registry::SMALL);

/// As [`record_dealloc`]'s answer, for a thread without a slot of its own.
pub(crate) fn concerns(ptr: *mut u8, layout: Layout) -> bool {
    layout.size() > SLOT_SIZE || store::in_region(ptr)
}

/// Frees a block for which [`record_dealloc`] or [`concerns`] held: true if the sampler owned it (freed), false if
/// it belongs to the inner allocator (forgotten here if it was a sampled large block; the
/// caller frees it).
#[cold]
#[inline(never)]
pub(crate) fn release(ptr: *mut u8) -> bool {
    if store::in_region(ptr) {
        store::free_slot(ptr);
        return true;
    }
    if store::maybe_large(ptr) {
        store::forget_large(ptr);
    }
    false
}

/// `GlobalAlloc::realloc` for a sampling allocator, out of line: reallocations are rarer than
/// allocations and frees, and keeping this off the inlined allocator functions keeps them
/// small.
///
/// # Safety
/// As `GlobalAlloc::realloc`.
#[inline(never)]
pub(crate) unsafe fn realloc_sampling<A: GlobalAlloc>(inner: &A, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let due = with_slot(|own| countdown::consume(own, new_size as u64), |_| false);
    if due || store::in_region(ptr) || (layout.size() > SLOT_SIZE && store::maybe_large(ptr)) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { realloc(inner, ptr, layout, new_size, due) }
    } else {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { inner.realloc(ptr, layout, new_size) }
    }
}

/// Reallocates a block when the sampler is involved: the old block is a region block or a
/// sampled large block, or the new one is due for a sample.
///
/// # Safety
/// As `GlobalAlloc::realloc`.
#[cold]
#[inline(never)]
unsafe fn realloc<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    due: bool,
) -> *mut u8 {
    // SAFETY: `realloc`'s caller guarantees that the new size, rounded to the alignment, does
    // not overflow `isize`.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    let owned_by_sampler = store::in_region(ptr);
    if !due && !owned_by_sampler {
        // A sampled large block that the inner allocator moves: it is no longer recorded.
        store::forget_large(ptr);
        // SAFETY: forwarded with the caller's guarantees.
        return unsafe { inner.realloc(ptr, layout, new_size) };
    }
    let new = if due {
        // SAFETY: `new_layout` has a non-zero size (the caller's guarantee).
        unsafe { alloc(inner, new_layout, false) }
    } else {
        // SAFETY: as above.
        unsafe { inner.alloc(new_layout) }
    };
    if new.is_null() {
        return new;
    }
    // SAFETY: both blocks are valid for the smaller of the two sizes, and distinct.
    unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
    if !release(ptr) {
        // SAFETY: the block belongs to the inner allocator, with this layout.
        unsafe { inner.dealloc(ptr, layout) };
    }
    new
}

/// One frame of an allocation site's stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The return address (or, for inlined functions, the address they were inlined at).
    pub address: usize,
    /// The demangled function name, without its hash, when symbols are available.
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The line in `file`.
    pub line: Option<u32>,
    /// Whether this function was inlined into the next frame's (they share the address).
    pub inlined: bool,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.function {
            Some(function) => f.write_str(function)?,
            None => write!(f, "{:#x}", self.address)?,
        }
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            write!(f, " ({file}:{line})")?;
        }
        Ok(())
    }
}

/// One allocation site: a stack, innermost frame first, and the estimated allocations made
/// from it since sampling began.
#[derive(Debug, Clone)]
pub struct Site {
    /// The stack, innermost first, the sampler's and the allocator's own frames left out
    /// (inlined functions are frames of their own, sharing an address). Empty for the site
    /// that collects samples once the site table is full.
    pub frames: Vec<Frame>,
    /// Allocations sampled here.
    pub samples: u64,
    /// Estimated bytes allocated here.
    pub allocated_bytes: u64,
    /// Estimated allocations made here.
    pub allocations: u64,
    /// Estimated bytes allocated here and not yet freed.
    pub live_bytes: u64,
    /// Estimated allocations made here and not yet freed.
    pub live_allocations: u64,
}

impl Site {
    /// The innermost frame outside Rust's standard library (`alloc`, `core`, `std`): the code
    /// that asked for the memory, for a one-line summary.
    pub fn caller(&self) -> Option<&Frame> {
        self.frames.iter().find(|frame| frame.function.is_some() && !is_std(frame))
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B allocated, {} B live: ", self.allocated_bytes, self.live_bytes)?;
        match self.caller().or(self.frames.first()) {
            Some(frame) => write!(f, "{frame}"),
            None => f.write_str("(sites beyond the table's capacity)"),
        }
    }
}

/// Whether a frame is in Rust's standard library. Inlined functions carry short names
/// (`alloc_impl`), so their source path decides.
fn is_std(frame: &Frame) -> bool {
    let std_path = |file: &str| ["/library/alloc/", "/library/core/", "/library/std/"].iter().any(|p| file.contains(p));
    let std_name = |name: &str| {
        let name = name.trim_start_matches('<');
        ["alloc::", "core::", "std::", "hashbrown::"].iter().any(|p| name.starts_with(p))
    };
    frame.file.as_deref().is_some_and(std_path) || frame.function.as_deref().is_some_and(std_name)
}

/// The source files whose frames open every sampled stack: the stack walk, the sampler and
/// the global allocator.
const OWN_FILES: [&str; 4] = [file!(), countdown::SOURCE, store::SOURCE, crate::allocator::SOURCE];

/// Whether a frame is the stack walk's, the sampler's or the global allocator's own (inlined
/// functions carry short names, so their source path decides).
fn is_own(frame: &Frame) -> bool {
    let own_file = |file: &str| {
        OWN_FILES.iter().any(|own| file.ends_with(own))
            || file.contains("/backtrace-0.")
            || file.contains("/backtrace/src/")
    };
    let own_name = |name: &str| {
        ["__rustc::__rust_", "__rust_alloc", "__rust_realloc", "__rust_dealloc", "__rdl_", "__rg_", "_Unwind", "backtrace::"]
            .iter()
            .any(|p| name.starts_with(p))
    };
    match &frame.function {
        None => true,
        Some(name) => own_name(name) || frame.file.as_deref().is_some_and(own_file),
    }
}

/// The sampler's own figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamplingStats {
    /// Allocations sampled since the process started.
    pub samples: u64,
    /// Sampled allocations whose frees cannot be recognised (the sampler's region or table of
    /// large blocks was full, or could not be mapped): counted as allocated, never as live.
    pub untracked: u64,
    /// New stacks charged to the overflow site because the site table was full.
    pub overflowed_sites: u64,
    /// Whether sampled blocks can be recorded on this system (false where the reserved mapping
    /// failed or the platform has none).
    pub available: bool,
}

/// A heap profile: every allocation site sampled so far, heaviest first.
#[derive(Debug, Clone)]
pub struct Profile {
    interval: u64,
    sites: Vec<Site>,
    stats: SamplingStats,
}

/// Takes a profile: the sites sampled since the process started, symbolized.
///
/// Symbolizing reads the binary's debug information on the first call and keeps it: a one-off
/// cost of milliseconds to a second, and heap memory of the order of the debug information's
/// size (some tens of MiB for a large binary built with full debug information; a release
/// build with `debug = "line-tables-only"` needs far less). Take profiles on demand, not on a
/// tight schedule, and leave that headroom under a pressure monitor's limit.
pub fn profile() -> Profile {
    let mut raw = Vec::new();
    let counters = countdown::busy(|| store::sites(&mut raw));
    let mut sites: Vec<Site> = raw
        .iter()
        .map(|entry| Site {
            // The symbolizer's caches live as long as the process: not sampled, they stay out
            // of the region and out of the profile.
            frames: countdown::busy(|| symbolize(&entry.frames[..entry.depth as usize])),
            samples: entry.samples,
            allocated_bytes: entry.total.bytes,
            allocations: entry.total.objects,
            live_bytes: entry.live.bytes,
            live_allocations: entry.live.objects,
        })
        .collect();
    sites.sort_by(|a, b| b.allocated_bytes.cmp(&a.allocated_bytes).then(b.live_bytes.cmp(&a.live_bytes)));
    Profile {
        interval: interval(),
        sites,
        stats: SamplingStats {
            samples: counters.samples,
            untracked: counters.untracked,
            overflowed_sites: counters.overflowed_sites,
            available: cfg!(unix) && !counters.map_failed,
        },
    }
}

fn symbolize(addresses: &[usize]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for &address in addresses {
        let first = frames.len();
        // A return address points after the call: look up the byte before it. Inlined
        // functions come first, the function they were inlined into last.
        backtrace::resolve(address.wrapping_sub(1) as *mut std::ffi::c_void, |symbol| {
            frames.push(Frame {
                address,
                function: symbol.name().map(|name| format!("{name:#}")),
                file: symbol.filename().map(|file| file.display().to_string()),
                line: symbol.lineno(),
                inlined: true,
            });
        });
        if frames.len() > first {
            let outermost = frames.len() - 1;
            frames[outermost].inlined = false;
        } else {
            frames.push(Frame { address, function: None, file: None, line: None, inlined: false });
        }
    }
    // Leave out the innermost frames: the unwinder's, the sampler's and those of the allocator
    // API that reached it.
    let first_caller = frames.iter().position(|frame| !is_own(frame)).unwrap_or(frames.len());
    frames.drain(..first_caller);
    frames
}

impl Profile {
    /// The sites, the most bytes allocated first.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The sampling interval when the profile was taken.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// The sampler's own figures.
    pub fn stats(&self) -> SamplingStats {
        self.stats
    }

    /// The estimated bytes live across all sites.
    pub fn live_bytes(&self) -> u64 {
        self.sites.iter().map(|site| site.live_bytes).sum()
    }

    /// The profile as an uncompressed `pprof` protobuf (`profile.proto`), with the four sample
    /// types of a Go heap profile (`alloc_objects`, `alloc_space`, `inuse_objects`,
    /// `inuse_space`; `inuse_space` the default).
    pub fn to_pprof(&self) -> Vec<u8> {
        pprof::encode(self)
    }

    /// Writes [`to_pprof`](Self::to_pprof) to `path`.
    pub fn write_pprof(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_pprof())
    }
}
