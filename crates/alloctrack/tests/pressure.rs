//! The pressure monitor, driven by a custom source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloctrack::{Level, PressureConfigError, PressureMonitor, Source, Tracking, snapshot};

// The tests of this binary allocate little, so live bytes move only with `ballast` below.
#[global_allocator]
static GLOBAL: Tracking = Tracking::system();

fn monitor(used: &Arc<AtomicU64>) -> PressureMonitor {
    let sample = used.clone();
    PressureMonitor::builder(1000)
        .source(Source::Custom(Arc::new(move || sample.load(Ordering::SeqCst))))
        .build()
        .unwrap()
}

#[test]
fn callbacks_fire_once_per_change_without_flapping() {
    let used = Arc::new(AtomicU64::new(0));
    let monitor = monitor(&used);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    monitor.on_pressure(move |e| seen.lock().unwrap().push((e.level, e.used)));
    for value in [100, 800, 790, 810, 760, 800, 950, 940, 960, 700, 100] {
        used.store(value, Ordering::SeqCst);
        monitor.check();
    }
    assert_eq!(
        *events.lock().unwrap(),
        [(Level::Warning, 800), (Level::Critical, 950), (Level::Normal, 700)],
        "hovering around a threshold must not flap"
    );
    assert_eq!(monitor.level(), Level::Normal);
}

#[test]
fn a_background_thread_checks_until_dropped() {
    let used = Arc::new(AtomicU64::new(990));
    let monitor = monitor(&used);
    let thread = monitor.spawn(Duration::from_millis(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    while monitor.level() != Level::Critical {
        assert!(Instant::now() < deadline, "the monitor thread never checked");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(thread);
    used.store(0, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(monitor.level(), Level::Critical, "the thread kept checking after it was dropped");
}

#[test]
fn bad_configurations_are_typed_errors() {
    let err = PressureMonitor::builder(0).build().unwrap_err();
    assert_eq!(err, PressureConfigError::ZeroLimit);
    let err = PressureMonitor::builder(10).warning(1.5).build().unwrap_err();
    assert!(matches!(err, PressureConfigError::Threshold { level: Level::Warning, .. }), "{err}");
    let err = PressureMonitor::builder(10).warning(0.9).critical(0.8).build().unwrap_err();
    assert!(matches!(err, PressureConfigError::WarningNotBelowCritical { .. }));
    let err = PressureMonitor::builder(10).hysteresis(0.9).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pressure monitor: the hysteresis 0.9 is negative or not below the warning threshold"
    );
    let err = PressureMonitor::builder(10).warning(f64::NAN).build().unwrap_err();
    assert!(matches!(err, PressureConfigError::Threshold { .. }));
    let err = PressureMonitor::builder(10).critical(1.5).build().unwrap_err();
    assert!(matches!(err, PressureConfigError::Threshold { level: Level::Critical, .. }), "{err}");
    assert!(err.to_string().contains("critical threshold 1.5"), "{err}");
}

/// The error convention: a configuration error has no cause, so its chain is its own message.
#[test]
fn configuration_errors_stand_alone() {
    for builder in [
        PressureMonitor::builder(0),
        PressureMonitor::builder(10).warning(0.0),
        PressureMonitor::builder(10).warning(0.9).critical(0.8),
        PressureMonitor::builder(10).hysteresis(-0.1),
    ] {
        testkit::assert_error_chain(&builder.build().unwrap_err(), 1);
    }
}

#[test]
fn rss_source_reads_the_process() {
    let monitor = PressureMonitor::builder(u64::MAX / 2).source(Source::Rss).build().unwrap();
    assert_eq!(monitor.check(), Level::Normal);
    if cfg!(target_os = "linux") {
        let tiny = PressureMonitor::builder(1).source(Source::Rss).build().unwrap();
        assert_eq!(tiny.check(), Level::Critical, "RSS is above one byte");
    }
}

#[test]
fn live_bytes_drive_a_pressure_monitor() {
    let base = snapshot().live_bytes;
    // Live bytes are the whole process's, and the tests of this binary run at once: a panic
    // elsewhere (the panicking-callback test) symbolizes a backtrace when RUST_BACKTRACE is
    // set, caching megabytes of debug info. With the limit at 2 x base + 80 MiB, warning at
    // half and critical at all of it, the 48 MiB ballast reads Warning unless others free 8 MiB
    // or allocate base + 32 MiB meanwhile (a margin of under 2 MiB once failed under
    // AddressSanitizer: the ballast read Critical).
    let monitor = PressureMonitor::builder(2 * base + (80 << 20))
        .source(Source::LiveBytes)
        .warning(0.5)
        .critical(1.0)
        .build()
        .unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    monitor.on_pressure(move |e| seen.lock().unwrap().push((e.previous, e.level)));
    assert_eq!(monitor.check(), Level::Normal);
    let ballast = std::hint::black_box(vec![1u8; 48 << 20]);
    assert_eq!(monitor.check(), Level::Warning);
    drop(ballast);
    assert_eq!(monitor.check(), Level::Normal);
    assert_eq!(*events.lock().unwrap(), [(Level::Normal, Level::Warning), (Level::Warning, Level::Normal)]);
}

#[test]
fn a_panicking_callback_is_contained_and_the_monitor_thread_goes_on() {
    let used = Arc::new(AtomicU64::new(0));
    let monitor = monitor(&used);
    monitor.on_pressure(|e| {
        if e.level == Level::Warning {
            panic!("callback panics on warning");
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    monitor.on_pressure(move |e| tx.lock().unwrap().send(e.level).unwrap());
    let _thread = monitor.spawn(Duration::from_millis(1));
    used.store(900, Ordering::SeqCst);
    // A bound, not a pace: the panic (and its backtrace) takes long under an interpreter.
    let wait = Duration::from_secs(if cfg!(miri) { 600 } else { 10 });
    assert_eq!(rx.recv_timeout(wait), Ok(Level::Warning), "the callback after the panicking one ran");
    used.store(990, Ordering::SeqCst);
    assert_eq!(rx.recv_timeout(wait), Ok(Level::Critical), "the monitor thread survived the panic");
    assert_eq!(monitor.callback_panics(), 1);
}

#[test]
fn events_are_delivered_in_the_order_of_the_changes() {
    let used = Arc::new(AtomicU64::new(900));
    let monitor = monitor(&used);
    let events = Arc::new(Mutex::new(Vec::new()));
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let (entered_tx, go_rx) = (Mutex::new(entered_tx), Mutex::new(go_rx));
    let seen = events.clone();
    monitor.on_pressure(move |e| {
        if e.level == Level::Warning {
            // The first change's delivery stalls here until the test lets it go on.
            entered_tx.lock().unwrap().send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
        }
        seen.lock().unwrap().push((e.previous, e.level));
    });
    let first = {
        let monitor = monitor.clone();
        std::thread::spawn(move || monitor.check())
    };
    entered.recv().unwrap();
    // A second change while the first is being delivered.
    used.store(990, Ordering::SeqCst);
    let (done_tx, done) = std::sync::mpsc::channel();
    let second = {
        let monitor = monitor.clone();
        std::thread::spawn(move || {
            let level = monitor.check();
            done_tx.send(()).unwrap();
            level
        })
    };
    // If the second check can deliver while the first is still delivering, let it finish first.
    let _ = done.recv_timeout(Duration::from_millis(500));
    go.send(()).unwrap();
    assert_eq!(first.join().unwrap(), Level::Warning);
    assert_eq!(second.join().unwrap(), Level::Critical);
    assert_eq!(
        *events.lock().unwrap(),
        [(Level::Normal, Level::Warning), (Level::Warning, Level::Critical)],
        "each event follows the one before"
    );
}

#[test]
fn a_callback_may_check_without_deadlocking() {
    let used = Arc::new(AtomicU64::new(900));
    let monitor = monitor(&used);
    // The callback holds the monitor, which holds the callback: taken out at the end, so that
    // the cycle is broken (Miri checks for leaks).
    let inner = Arc::new(Mutex::new(Some(monitor.clone())));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (record, held) = (seen.clone(), inner.clone());
    monitor.on_pressure(move |e| {
        let level = held.lock().unwrap().as_ref().map(PressureMonitor::check);
        record.lock().unwrap().push((e.level, level));
    });
    assert_eq!(monitor.check(), Level::Warning);
    assert_eq!(*seen.lock().unwrap(), [(Level::Warning, Some(Level::Warning))]);
    inner.lock().unwrap().take();
}

#[test]
fn a_cgroup_source_reads_the_working_set_against_its_limit() {
    let dir = std::env::temp_dir().join(format!("alloctrack-pressure-cgroup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).unwrap();
    write("memory.max", "1000\n");
    write("memory.current", "700\n");
    write("memory.stat", "inactive_file 100\n");
    let cgroup = alloctrack::Cgroup::at(&dir, alloctrack::CgroupVersion::V2);
    let limit = cgroup.limit().unwrap().unwrap();
    let monitor = PressureMonitor::builder(limit).source(Source::Cgroup(cgroup)).build().unwrap();
    assert_eq!(monitor.check(), Level::Normal, "600 of 1000: the inactive cache does not count");
    write("memory.current", "1000\n");
    assert_eq!(monitor.check(), Level::Warning, "900 of 1000");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn detect_uses_the_cgroup_limit_or_else_the_machine() {
    let monitor = PressureMonitor::detect().unwrap().build().unwrap();
    match alloctrack::Cgroup::detect() {
        Some(cgroup) => {
            assert!(cgroup.working_set().unwrap() > 0, "this process is in {cgroup:?}");
            match cgroup.limit().unwrap() {
                Some(limit) => {
                    assert_eq!(monitor.limit(), limit);
                    assert!(matches!(monitor.source(), Source::Cgroup(_)));
                }
                None => assert!(matches!(monitor.source(), Source::Rss), "no cgroup limit: RSS"),
            }
        }
        None => assert!(matches!(monitor.source(), Source::Rss)),
    }
    if matches!(monitor.source(), Source::Rss) {
        // The machine's memory: more than this process's RSS.
        assert!(monitor.limit() > alloctrack::rss_bytes().unwrap());
    }
    monitor.check();
}
