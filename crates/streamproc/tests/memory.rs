//! Bounded memory, proven with a counting global allocator: processing a file 200 times larger
//! than the chunk window holds no more memory than the window, and a file 8 times larger than
//! another costs no more allocations (the steady state allocates nothing per chunk); a stream
//! (a FIFO) 200 times larger than the window holds no more than the window and one chunk carried
//! over.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use streamproc::{Config, Processor};

alloctrack::global_allocator!();

const CHUNK: usize = 64 << 10;

/// The tests measure the whole process's allocations: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn file_of(bytes: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijk\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    for _ in 0..bytes / block.len() {
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    f
}

fn count_lines(p: &Processor, path: impl Into<streamproc::Input>) {
    let lines =
        p.fold(path, |c| Ok::<_, ()>(memchr::memchr_iter(b'\n', c.data()).count()), 0, |a, n| a + n).unwrap();
    assert!(lines > 0);
}

/// Allocations made by a line count over `path`.
fn allocations(p: &Processor, path: &std::path::Path) -> u64 {
    let before = alloctrack::snapshot().allocations;
    count_lines(p, path);
    alloctrack::snapshot().allocations - before
}

/// The most live bytes seen above the level before a line count over `path`, sampled every 100 µs
/// by another thread (whose sampling allocates, so allocations are counted separately).
fn peak(p: &Processor, path: impl Into<streamproc::Input>) -> u64 {
    let base = alloctrack::snapshot();
    let stop = AtomicBool::new(false);
    let max_live = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                max_live.fetch_max(alloctrack::snapshot().live_bytes, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        count_lines(p, path);
        stop.store(true, Ordering::Relaxed);
    });
    max_live.load(Ordering::Relaxed).saturating_sub(base.live_bytes)
}

#[test]
fn memory_does_not_grow_with_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = Config::new().chunk_size(CHUNK).workers(2).buffer(2).lines();
    let window = (config.max_chunks_in_memory() * config.max_chunk_bytes()) as u64;
    let p = Processor::new(config).unwrap();
    let small = file_of(8 << 20);
    let big = file_of(64 << 20);
    assert!(64 << 20 >= 200 * window, "the file is far bigger than the window");
    count_lines(&p, small.path()); // warm up lazily allocated runtime state
    let (small_allocs, big_allocs) = (allocations(&p, small.path()), allocations(&p, big.path()));
    let (small_live, big_live) = (peak(&p, small.path()), peak(&p, big.path()));
    eprintln!("8 MiB: {small_allocs} allocations, {small_live} B peak; 64 MiB: {big_allocs}, {big_live} B");
    // Threads, channels and the pool: a fixed set, whatever the file size.
    assert!(
        big_allocs <= small_allocs + 16,
        "64 MiB took {big_allocs} allocations, 8 MiB {small_allocs}: something allocates per chunk"
    );
    // The chunk window, plus thread stacks' bookkeeping and channel buffers (1 MiB of slack).
    assert!(big_live <= window + (1 << 20), "peak {big_live} B above the window of {window} B");
}

#[test]
fn a_stream_far_larger_than_the_window_stays_within_it() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = Config::new().chunk_size(CHUNK).workers(2).buffer(2).lines();
    let window = (config.max_chunks_in_memory() * config.max_chunk_bytes()) as u64;
    let p = Processor::new(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijk\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let total = 64usize << 20;
    assert!(total as u64 >= 200 * window, "the stream is far bigger than the window");
    let live = std::thread::scope(|s| {
        let writer_path = path.clone();
        let block = &block;
        s.spawn(move || {
            let mut fifo = std::fs::OpenOptions::new().write(true).open(writer_path).unwrap();
            for _ in 0..total / block.len() {
                fifo.write_all(block).unwrap();
            }
        });
        peak(&p, &path)
    });
    eprintln!("64 MiB through a FIFO: {live} B peak for a window of {window} B");
    // The window, the chunk carried over between reads, and 1 MiB of slack as above.
    assert!(live <= window + CHUNK as u64 + (1 << 20), "peak {live} B above the window of {window} B");
}

/// A gibibyte through an anonymous pipe (as `cat file | streamproc lines -`): the stream is read
/// sequentially and never holds more than the window and the chunk carried over.
#[test]
fn a_gibibyte_through_a_pipe_stays_within_the_window() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = Config::new().chunk_size(CHUNK).workers(2).buffer(2).lines();
    let window = (config.max_chunks_in_memory() * config.max_chunk_bytes()) as u64;
    let p = Processor::new(config).unwrap();
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijk\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let total = 1usize << 30;
    let (reader, mut writer) = testkit::pipe().unwrap();
    let live = std::thread::scope(|s| {
        let block = &block;
        s.spawn(move || {
            for _ in 0..total / block.len() {
                writer.write_all(block).unwrap();
            }
        });
        peak(&p, streamproc::Input::file("pipe", reader))
    });
    eprintln!("1 GiB through a pipe: {live} B peak for a window of {window} B");
    assert!(live <= window + CHUNK as u64 + (1 << 20), "peak {live} B above the window of {window} B");
}
