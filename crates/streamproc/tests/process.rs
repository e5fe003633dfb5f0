//! The processor's behaviour: order, splitting, helpers, and every error case.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use streamproc::{Config, ConfigError, Error, Processor, Split};

fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    f
}

fn lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 37)).into_bytes()).collect()
}

fn collect(p: &Processor, path: &std::path::Path) -> Vec<(u64, u64, Vec<u8>)> {
    p.run(path, |c| Ok::<_, ()>((c.index(), c.offset(), c.data().to_vec())))
        .unwrap()
        .map(|r| r.unwrap().value)
        .collect()
}

#[test]
fn results_come_back_in_file_order_and_cover_the_file() {
    // 140 KiB, and 14 KiB for the byte-sized chunks: every chunk is a hand-off between threads,
    // and 143,000 of them took 11 s of the suite (a minute under ThreadSanitizer).
    let (large, small) = (lines(5000), lines(500));
    let (large_file, small_file) = (file_with(&large), file_with(&small));
    for (chunk, workers, buffer) in [(1, 1, 0), (7, 3, 1), (4096, 2, 10), (1 << 20, 4, 2)] {
        let (content, file) = if chunk < 64 { (&small, &small_file) } else { (&large, &large_file) };
        let p = Processor::new(Config::new().chunk_size(chunk).workers(workers).buffer(buffer)).unwrap();
        let got = collect(&p, file.path());
        let mut offset = 0;
        for (i, (index, off, data)) in got.iter().enumerate() {
            assert_eq!((*index, *off), (i as u64, offset));
            offset += data.len() as u64;
        }
        assert_eq!(&got.iter().flat_map(|c| c.2.clone()).collect::<Vec<_>>(), content);
    }
}

#[test]
fn record_aligned_chunks_end_on_a_newline() {
    let content = lines(3000);
    let file = file_with(&content);
    let p = Processor::new(Config::new().chunk_size(100).workers(2).buffer(3).lines()).unwrap();
    let got = collect(&p, file.path());
    assert!(got.iter().all(|c| c.2.ends_with(b"\n") && c.2.len() <= 100));
    assert_eq!(got.concat_data(), content);
}

trait Concat {
    fn concat_data(&self) -> Vec<u8>;
}
impl Concat for Vec<(u64, u64, Vec<u8>)> {
    fn concat_data(&self) -> Vec<u8> {
        self.iter().flat_map(|c| c.2.clone()).collect()
    }
}

#[test]
fn long_records_grow_the_chunk_up_to_the_maximum_and_fail_beyond() {
    let mut content = b"short\n".to_vec();
    content.extend(vec![b'a'; 500]);
    content.extend(b"\nend\n");
    let file = file_with(&content);
    let grows = Processor::new(
        Config::new().chunk_size(64).workers(2).split(Split::Records { delimiter: b'\n', max_record: 500 }),
    )
    .unwrap();
    assert_eq!(collect(&grows, file.path()).concat_data(), content);

    let strict = Processor::new(Config::new().chunk_size(64).workers(2).lines()).unwrap();
    let results: Vec<_> = strict.run(file.path(), |c| Ok::<_, std::io::Error>(c.len())).unwrap().collect();
    assert_eq!(results.len(), 2, "the chunk before the long record, then the error");
    match &results[1] {
        Err(Error::RecordTooLong { path, offset, max_record }) => {
            assert_eq!((path.as_path(), *offset, *max_record), (file.path(), 6, 64));
        }
        other => panic!("expected RecordTooLong, got {other:?}"),
    }
    assert!(results[1].as_ref().unwrap_err().to_string().contains("offset 6"));
}

#[test]
fn fold_reduce_and_write_ordered() {
    let content = lines(2000);
    let file = file_with(&content);
    let p = Processor::new(Config::new().chunk_size(256).workers(3).lines()).unwrap();
    let count = p
        .fold(file.path(), |c| Ok::<_, ()>(memchr::memchr_iter(b'\n', c.data()).count()), 0, |a, n| a + n)
        .unwrap();
    assert_eq!(count, 2000);
    let longest = p
        .reduce(
            file.path(),
            |c| Ok::<_, ()>(c.data().split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap()),
            usize::max,
        )
        .unwrap();
    assert_eq!(longest, Some(content.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap()));
    let mut out = Vec::new();
    let written =
        p.write_ordered(file.path(), |c| Ok::<_, ()>(c.data().to_ascii_uppercase()), &mut out).unwrap();
    assert_eq!(written as usize, content.len());
    assert_eq!(out, content.to_ascii_uppercase());
    let empty = file_with(b"");
    assert_eq!(p.reduce(empty.path(), |c| Ok::<_, ()>(c.len()), |a, b| a + b).unwrap(), None);
}

#[test]
fn progress_reports_bytes_done_up_to_the_total() {
    let content = lines(1000);
    let file = file_with(&content);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let p = Processor::new(
        Config::new()
            .chunk_size(512)
            .workers(2)
            .lines()
            .on_progress(move |done, total| log.lock().unwrap().push((done, total))),
    )
    .unwrap();
    p.fold(file.path(), |c| Ok::<_, ()>(c.len()), 0, |a, n| a + n).unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "bytes done only grows");
    assert_eq!(*seen.last().unwrap(), (content.len() as u64, Some(content.len() as u64)));
}

#[test]
fn open_errors_name_the_path() {
    let p = Processor::new(Config::new()).unwrap();
    let missing = std::path::Path::new("/nonexistent/streamproc/input");
    match p.run(missing, |c| Ok::<_, ()>(c.len())) {
        Err(Error::Open { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an open error, got {:?}", other.map(|_| ())),
    }
    let dir = tempfile::tempdir().unwrap();
    let err = p.run(dir.path(), |c| Ok::<_, std::io::Error>(c.len())).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn worker_errors_and_panics_stop_the_run_with_their_chunk_index() {
    let file = file_with(&vec![b'x'; 100 * 64]);
    let p = Processor::new(Config::new().chunk_size(64).workers(3).buffer(2)).unwrap();
    let results: Vec<_> = p
        .run(file.path(), |c| if c.index() == 5 { Err("bad chunk") } else { Ok(c.index()) })
        .unwrap()
        .collect();
    assert_eq!(results.len(), 6, "chunks 0-4, then the error, then nothing");
    for (i, r) in results[..5].iter().enumerate() {
        assert_eq!(r.as_ref().unwrap().value, i as u64);
    }
    let err = results[5].as_ref().unwrap_err();
    assert_eq!(err.chunk_index(), Some(5));
    assert!(matches!(err, Error::Worker { offset: 320, error: "bad chunk", .. }));

    let results: Vec<_> = p
        .run(file.path(), |c| {
            assert!(c.index() != 7, "boom at seven");
            Ok::<_, ()>(())
        })
        .unwrap()
        .collect();
    assert_eq!(results.len(), 8);
    match &results[7] {
        Err(Error::Panicked { index: 7, message, .. }) => assert!(message.contains("boom at seven")),
        other => panic!("expected a panic report, got {other:?}"),
    }
}

#[test]
fn a_file_that_shrinks_or_grows_while_read_is_detected() {
    let content = vec![b'y'; 200 * 64];
    let p = Processor::new(Config::new().chunk_size(64).workers(1).buffer(1)).unwrap();

    let file = file_with(&content);
    let handle = file.reopen().unwrap();
    let results: Vec<_> = p
        .run(file.path(), move |c| {
            if c.index() == 0 {
                handle.set_len(1000).unwrap();
            }
            Ok::<_, ()>(())
        })
        .unwrap()
        .collect();
    match results.last().unwrap() {
        Err(Error::FileChanged { expected, actual, .. }) => assert_eq!((*expected, *actual), (12800, 1000)),
        other => panic!("expected FileChanged, got {other:?}"),
    }

    let file = file_with(&content);
    let handle = std::fs::OpenOptions::new().append(true).open(file.path()).unwrap();
    let results: Vec<_> = p
        .run(file.path(), move |c| {
            if c.index() == 0 {
                (&handle).write_all(b"more").unwrap();
            }
            Ok::<_, ()>(())
        })
        .unwrap()
        .collect();
    match results.last().unwrap() {
        Err(Error::FileChanged { expected, actual, .. }) => assert_eq!((*expected, *actual), (12800, 12804)),
        other => panic!("expected FileChanged, got {other:?}"),
    }
}

#[test]
fn dropping_the_results_stops_reading_promptly() {
    let file = file_with(&vec![b'z'; 10_000 * 16]);
    let processed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&processed);
    let p = Processor::new(Config::new().chunk_size(16).workers(2).buffer(2)).unwrap();
    let mut results = p
        .run(file.path(), move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .unwrap();
    results.next().unwrap().unwrap();
    results.next().unwrap().unwrap();
    drop(results);
    std::thread::sleep(Duration::from_millis(100));
    let n = processed.load(Ordering::SeqCst);
    assert!(n <= 2 + 4 + 1, "{n} of 10000 chunks processed after the results were dropped");
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    assert_eq!(Processor::new(Config::new().chunk_size(0)).unwrap_err(), ConfigError::ZeroChunkSize);
    assert_eq!(Processor::new(Config::new().workers(0)).unwrap_err(), ConfigError::ZeroWorkers);
    let err = Processor::new(
        Config::new().chunk_size(100).split(Split::Records { delimiter: b'\n', max_record: 10 }),
    )
    .unwrap_err();
    assert_eq!(err, ConfigError::MaxRecordBelowChunkSize { max_record: 10, chunk_size: 100 });
    // An overflowing or absurd window is refused before anything is allocated for it.
    for (workers, buffer) in [(usize::MAX, 1), (4, usize::MAX), (4, 100_000_000)] {
        let err = Processor::new(Config::new().workers(workers).buffer(buffer)).unwrap_err();
        assert_eq!(err, ConfigError::WindowTooLarge { workers, buffer, max: streamproc::MAX_WINDOW });
        assert!(err.to_string().contains("chunks in flight"), "{err}");
    }
    assert!(Processor::new(Config::new().workers(4).buffer(streamproc::MAX_WINDOW - 4)).is_ok());
}

/// A FIFO at a fresh path, fed `content` by a thread that stops when the reader goes away.
fn fifo_with(content: Vec<u8>) -> (tempfile::TempDir, std::path::PathBuf, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut fifo = std::fs::OpenOptions::new().write(true).open(writer_path).unwrap();
        let _ = fifo.write_all(&content);
    });
    (dir, path, writer)
}

#[test]
fn a_fifo_is_read_as_a_stream_in_order_at_every_chunk_size() {
    for chunk_size in [1, 7, 100, 4096, 1 << 20] {
        // Many chunks at every size, few enough that a byte-sized chunk stays quick.
        let content = lines(if chunk_size < 100 { 200 } else { 3000 });
        for lines_mode in [false, true] {
            let (_dir, path, writer) = fifo_with(content.clone());
            let mut config = Config::new().chunk_size(chunk_size).workers(3).buffer(2);
            if lines_mode {
                config = config.split(Split::Records { delimiter: b'\n', max_record: 1 << 20 });
            }
            let p = Processor::new(config).unwrap();
            let results = p.run(&path, |c| Ok::<_, ()>((c.offset(), c.data().to_vec()))).unwrap();
            assert_eq!(results.total_bytes(), None, "a stream's length is not known");
            let mut data = Vec::new();
            for (i, item) in results.enumerate() {
                let item = item.unwrap();
                assert_eq!(item.index, i as u64);
                assert_eq!(item.value.0, data.len() as u64, "offsets count the bytes before");
                if lines_mode && data.len() + item.value.1.len() < content.len() {
                    assert_eq!(item.value.1.last(), Some(&b'\n'), "a record-aligned chunk ends on a newline");
                }
                data.extend_from_slice(&item.value.1);
            }
            writer.join().unwrap();
            assert_eq!(data, content, "chunk size {chunk_size}, lines {lines_mode}");
        }
    }
}

#[test]
fn a_proc_file_that_reports_no_length_is_read_whole() {
    let path = std::path::Path::new("/proc/cpuinfo");
    let Ok(expected) = std::fs::read(path) else { return };
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0, "the system reports no length");
    let records = Split::Records { delimiter: b'\n', max_record: 1 << 16 };
    let p = Processor::new(Config::new().chunk_size(256).workers(2).split(records)).unwrap();
    let lines = p.fold(path, |c| Ok::<_, ()>(memchr::memchr_iter(b'\n', c.data()).count()), 0, |a, n| a + n);
    assert!(!expected.is_empty());
    assert_eq!(lines.unwrap(), memchr::memchr_iter(b'\n', &expected).count());
}

#[test]
fn a_progress_callback_over_a_stream_gets_no_total() {
    let (_dir, path, writer) = fifo_with(lines(100));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let p =
        Processor::new(Config::new().chunk_size(64).workers(1).lines().on_progress(move |done, total| {
            log.lock().unwrap().push((done, total));
        }))
        .unwrap();
    let n = p.fold(&path, |c| Ok::<_, ()>(c.len()), 0, |a, n| a + n).unwrap();
    writer.join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.last(), Some(&(n as u64, None)));
}

#[tokio::test]
async fn the_stream_yields_in_order_and_stops_when_dropped() {
    use futures::StreamExt;
    let content = lines(3000);
    let file = file_with(&content);
    let p = Processor::new(Config::new().chunk_size(300).workers(2).lines()).unwrap();
    let chunks: Vec<_> = p.stream(file.path(), |c| Ok::<_, ()>(c.data().to_vec())).unwrap().collect().await;
    let data: Vec<u8> = chunks.into_iter().flat_map(|r| r.unwrap().value).collect();
    assert_eq!(data, content);

    let mut stream = p.stream(file.path(), |c| Ok::<_, ()>(c.index())).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().value, 0);
    drop(stream);
}

/// The records of `data` as the `csv` crate reads them (no header, any field count).
fn csv_records(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect()
}

#[test]
fn an_unterminated_quoted_field_is_an_error_naming_its_offset() {
    let file = file_with(b"a,b\nc,\"never closed\nd,e\n");
    let p = Processor::new(Config::new().chunk_size(4).workers(1).split(Split::Csv {
        delimiter: b',',
        quote: b'"',
        max_record: 64,
    }))
    .unwrap();
    let err =
        p.fold(file.path(), |c| Ok::<_, std::convert::Infallible>(c.len()), 0, |a, n| a + n).unwrap_err();
    assert!(matches!(err, Error::MalformedCsv { offset: 6, .. }), "{err:?}");
    assert!(err.to_string().contains("offset 6"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// CSV with quoted newlines, delimiters and doubled quotes, cut at any chunk size: each chunk
    /// parses on its own into exactly the records the `csv` crate reads from the whole input.
    #[test]
    fn csv_chunks_hold_whole_records(
        records in proptest::collection::vec(
            proptest::collection::vec("[ab,\"\n\r ]{0,12}", 1..5),
            0..120,
        ),
        chunk in prop_oneof![1usize..64, Just(1024usize), Just(1usize << 20)],
        workers in 1usize..4,
    ) {
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let content = writer.into_inner().unwrap();
        let file = file_with(&content);
        let split = Split::Csv { delimiter: b',', quote: b'"', max_record: 1 << 20 };
        let p = Processor::new(Config::new().chunk_size(chunk).workers(workers).buffer(1).split(split)).unwrap();
        let mut got = Vec::new();
        for item in p.run(file.path(), |c| Ok::<_, ()>(csv_records(c.data()))).unwrap() {
            got.extend(item.unwrap().value);
        }
        prop_assert_eq!(got, csv_records(&content));
    }

    /// For any input and chunk size, record-aligned chunks concatenate to the input, each ends on
    /// the delimiter but the last, and the results come back in order.
    #[test]
    fn record_chunks_reassemble_the_input(
        content in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'b')], 0..2000),
        chunk in 1usize..300,
        workers in 1usize..4,
    ) {
        let file = file_with(&content);
        let p = Processor::new(
            Config::new().chunk_size(chunk).workers(workers).buffer(1)
                .split(Split::Records { delimiter: b'\n', max_record: 4000 }),
        ).unwrap();
        let got = collect(&p, file.path());
        for (i, c) in got.iter().enumerate() {
            prop_assert_eq!(c.0, i as u64);
            prop_assert!(!c.2.is_empty());
            if i + 1 < got.len() {
                prop_assert!(c.2.ends_with(b"\n"));
            }
        }
        prop_assert_eq!(got.concat_data(), content);
    }
}
