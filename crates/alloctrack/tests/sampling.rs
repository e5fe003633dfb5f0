//! Sampled allocation sites under a sampling global allocator: the estimates against known
//! workloads, live bytes through frees and reallocations, slot reuse, and the pprof output
//! read back by the `pprof` crate's reader.
//!
//! Not under Miri: every sample walks the stack through the system unwinder, a foreign call.
#![cfg(not(miri))]

use std::hint::black_box;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use alloctrack::sampling::{self, Profile, Site};
use alloctrack::{Level, PressureMonitor, Source};

#[global_allocator]
static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system().with_sampling();

/// The tests share the interval and the process's profile: one at a time.
fn serial(interval: u64) -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    sampling::set_interval(interval);
    // A thread keeps the countdown it drew at the old interval until its next sample: one
    // block far larger than any likely countdown takes it there.
    black_box(vec![0u8; 64 << 20]);
    guard
}

/// The sites whose stacks pass through `function`.
fn sites<'a>(profile: &'a Profile, function: &str) -> Vec<&'a Site> {
    profile
        .sites()
        .iter()
        .filter(|site| {
            site.frames.iter().any(|f| f.function.as_deref().is_some_and(|name| name.ends_with(function)))
        })
        .collect()
}

fn allocated(profile: &Profile, function: &str) -> u64 {
    sites(profile, function).iter().map(|site| site.allocated_bytes).sum()
}

fn live(profile: &Profile, function: &str) -> u64 {
    sites(profile, function).iter().map(|site| site.live_bytes).sum()
}

fn within(estimate: u64, truth: u64, tolerance: f64) -> bool {
    (estimate as f64 - truth as f64).abs() <= truth as f64 * tolerance
}

#[inline(never)]
fn nine_parts() {
    black_box(vec![9u8; 1000]);
}

#[inline(never)]
fn one_part() {
    black_box(vec![1u8; 1000]);
}

#[test]
fn two_sites_in_a_nine_to_one_byte_ratio_are_estimated_within_ten_percent() {
    let _serial = serial(8 * 1024);
    let rounds = 20_000;
    // Another test uses these sites too: compare what this one adds.
    let before = sampling::profile();
    for _ in 0..rounds {
        for _ in 0..9 {
            nine_parts();
        }
        one_part();
    }
    let profile = sampling::profile();
    let nine = allocated(&profile, "nine_parts") - allocated(&before, "nine_parts");
    let one = allocated(&profile, "one_part") - allocated(&before, "one_part");
    assert!(one > 0, "the small site was not sampled: {:?}", profile.stats());
    let ratio = nine as f64 / one as f64;
    assert!((8.1..=9.9).contains(&ratio), "ratio {ratio:.3} ({nine} B to {one} B)");
    assert!(within(one, rounds * 1000, 0.1), "{one} B estimated for {} B", rounds * 1000);
    assert!(within(nine, 9 * rounds * 1000, 0.1), "{nine} B estimated for {} B", 9 * rounds * 1000);
    // Nothing from either is live any more.
    assert_eq!(live(&profile, "nine_parts") + live(&profile, "one_part"), 0);
}

#[inline(never)]
fn held_small(into: &mut Vec<Vec<u8>>, count: usize) {
    for i in 0..count {
        into.push(vec![i as u8; 1024]);
    }
}

#[inline(never)]
fn held_large(into: &mut Vec<Vec<u8>>, count: usize) {
    for i in 0..count {
        into.push(vec![i as u8; 1 << 20]);
    }
}

#[test]
fn live_bytes_follow_the_blocks_until_they_are_freed() {
    let _serial = serial(8 * 1024);
    let (mut small, mut large) = (Vec::with_capacity(8192), Vec::with_capacity(8));
    held_small(&mut small, 8192);
    held_large(&mut large, 8);
    let profile = sampling::profile();
    let (small_live, large_live) = (live(&profile, "held_small"), live(&profile, "held_large"));
    assert!(within(small_live, 8 << 20, 0.1), "{small_live} B live estimated for 8 MiB");
    // A block of 128 intervals is sampled with certainty and stands for its own size.
    assert_eq!(large_live, 8 << 20);
    // The blocks are intact (sampled ones live in the sampler's slots).
    for (i, block) in small.iter().enumerate() {
        assert!(block.iter().all(|&b| b == i as u8));
    }
    drop((small, large));
    let profile = sampling::profile();
    assert_eq!(live(&profile, "held_small"), 0);
    assert_eq!(live(&profile, "held_large"), 0);
    assert_eq!(allocated(&profile, "held_large"), 8 << 20, "frees do not change what was allocated");
}

#[inline(never)]
fn grown_by_push(len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..len {
        v.push(i as u8);
    }
    v
}

#[test]
fn reallocations_are_sampled_and_keep_their_contents() {
    let _serial = serial(4 * 1024);
    let mut kept = Vec::new();
    for _ in 0..200 {
        let v = grown_by_push(50_000);
        assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8), "contents lost in a reallocation");
        kept.push(v);
    }
    let profile = sampling::profile();
    let live_now = live(&profile, "grown_by_push");
    // 200 vectors of 64 KiB capacity (the last doubling) are live: 12.5 MiB.
    assert!(within(live_now, 200 * 65_536, 0.1), "{live_now} B live estimated for {} B", 200 * 65_536);
    drop(kept);
    assert_eq!(live(&sampling::profile(), "grown_by_push"), 0);
}

#[inline(never)]
fn dirty_blocks() {
    for _ in 0..20_000 {
        black_box(vec![0xA5u8; 2000]);
    }
}

#[test]
fn reused_slots_are_zeroed_for_zeroed_allocations() {
    let _serial = serial(4 * 1024);
    dirty_blocks();
    for _ in 0..20_000 {
        let v = black_box(vec![0u8; 2000]);
        assert!(v.iter().all(|&b| b == 0));
    }
    assert!(sampling::profile().stats().samples > 1000);
}

#[inline(never)]
fn churn(seed: usize) -> usize {
    let mut held: Vec<Vec<u64>> = Vec::new();
    let mut checksum = 0;
    for i in 0..40_000usize {
        let len = 1 + (i.wrapping_mul(seed) * 7919) % 900;
        held.push(vec![(i ^ seed) as u64; len]);
        if held.len() > 64 {
            let gone = held.swap_remove((i * 31) % held.len());
            assert!(gone.iter().all(|&x| x == gone[0]), "a block changed under its owner");
            checksum += gone.len();
        }
    }
    checksum
}

#[test]
fn threads_allocating_and_freeing_at_once_keep_blocks_and_totals_intact() {
    let _serial = serial(2 * 1024);
    let threads: Vec<_> = (1..=4).map(|seed| std::thread::spawn(move || churn(seed))).collect();
    for thread in threads {
        assert!(thread.join().unwrap() > 0);
    }
    let profile = sampling::profile();
    assert!(allocated(&profile, "churn") > 0);
    assert_eq!(live(&profile, "churn"), 0, "every block of the threads was freed");
}

#[inline(never)]
fn paused_site() {
    for _ in 0..16_384 {
        black_box(vec![0u8; 1024]);
    }
}

#[test]
fn an_interval_of_zero_pauses_sampling() {
    let _serial = serial(0);
    // Threads notice the pause at their next draw: let this one reach it.
    black_box(vec![0u8; 4 << 20]);
    paused_site();
    assert_eq!(allocated(&sampling::profile(), "paused_site"), 0);
    sampling::set_interval(8 * 1024);
    paused_site();
    paused_site();
    assert!(allocated(&sampling::profile(), "paused_site") > 0, "sampling resumed");
}

#[test]
fn the_pprof_profile_reads_back_with_the_pprof_reader() {
    use pprof::protos::Message;

    let _serial = serial(8 * 1024);
    for _ in 0..2000 {
        nine_parts();
        one_part();
    }
    let profile = sampling::profile();
    let path = std::env::temp_dir().join(format!("alloctrack-sampling-{}.pb", std::process::id()));
    profile.write_pprof(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let decoded = pprof::protos::Profile::decode(bytes.as_slice()).expect("a valid profile.proto message");

    let string = |i: i64| decoded.string_table[i as usize].as_str();
    assert_eq!(string(0), "");
    let types: Vec<_> = decoded.sample_type.iter().map(|t| (string(t.ty), string(t.unit))).collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    assert_eq!(string(decoded.default_sample_type), "inuse_space");
    assert_eq!(decoded.period, 8 * 1024);
    assert_eq!(decoded.sample.len(), profile.sites().len());

    // The sample whose stack passes through `one_part` carries the site's figures.
    let function = |id: u64| decoded.function.iter().find(|f| f.id == id).unwrap();
    let location = |id: u64| decoded.location.iter().find(|l| l.id == id).unwrap();
    let through = |sample: &pprof::protos::Sample, name: &str| {
        sample.location_id.iter().any(|&l| {
            location(l).line.iter().any(|line| string(function(line.function_id).name).ends_with(name))
        })
    };
    let samples: Vec<_> = decoded.sample.iter().filter(|s| through(s, "one_part")).collect();
    let expected = allocated(&profile, "one_part") as i64;
    assert_eq!(allocated(&profile, "one_part"), sites(&profile, "one_part")[0].allocated_bytes, "one stack");
    assert!(expected > 0);
    assert_eq!(samples.iter().map(|s| s.value[1]).sum::<i64>(), expected);
    // Its innermost location is the allocator API's caller, not the sampler.
    let innermost = location(samples[0].location_id[0]);
    let name = string(function(innermost.line[0].function_id).name);
    assert!(!name.contains("alloctrack") && !name.contains("backtrace"), "{name}");
}

#[inline(never)]
fn ballast() -> Vec<Vec<u8>> {
    (0..64).map(|_| vec![7u8; 256 * 1024]).collect()
}

#[test]
fn a_pressure_callback_can_dump_the_profile_at_a_threshold() {
    let _serial = serial(64 * 1024);
    // The live bytes this test adds, whatever the other tests left behind.
    let before = alloctrack::snapshot().live_bytes;
    let added = Source::Custom(Arc::new(move || alloctrack::snapshot().live_bytes.saturating_sub(before)));
    let monitor = PressureMonitor::builder(24 << 20).warning(0.5).source(added).build().unwrap();
    let dumped = Arc::new(Mutex::new(None));
    let slot = dumped.clone();
    monitor.on_pressure(move |event| {
        if event.level >= Level::Warning {
            *slot.lock().unwrap() = Some(sampling::profile().to_pprof());
        }
    });
    assert_eq!(monitor.check(), Level::Normal);
    let held = ballast();
    assert!(monitor.check() >= Level::Warning);
    let dump = dumped.lock().unwrap().take().expect("the callback dumped a profile");
    let decoded = <pprof::protos::Profile as pprof::protos::Message>::decode(dump.as_slice()).unwrap();
    let names: Vec<_> =
        decoded.function.iter().map(|f| decoded.string_table[f.name as usize].as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("ballast")), "the heavy site is in the dump");
    drop(held);
}
