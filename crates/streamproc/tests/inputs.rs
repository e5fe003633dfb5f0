//! Every kind of input gives the same chunks as the same bytes in a file: readers, bytes in
//! memory, sockets, compressed files, several inputs in one run; and the work runs where it is
//! told (scoped workers borrowing from the caller, a shared pool).

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use streamproc::{Config, Error, Input, Processor, Split};

/// Lines of uneven length, `n` of them, ending with a newline.
fn lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 17)).into_bytes()).collect()
}

fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    f
}

/// (index, offset, bytes) of every chunk of `input`, in order.
fn chunks(p: &Processor, input: impl Into<Input>) -> Vec<(u64, u64, Vec<u8>)> {
    p.run(input, |c| Ok::<_, ()>((c.index(), c.offset(), c.data().to_vec())))
        .unwrap()
        .map(|r| r.unwrap().value)
        .collect()
}

fn configs() -> Vec<Config> {
    let mut configs = Vec::new();
    for chunk in [1, 7, 300, 1 << 20] {
        configs.push(Config::new().chunk_size(chunk).workers(3).buffer(2));
        let max_record = chunk.max(4096);
        configs.push(
            Config::new()
                .chunk_size(chunk)
                .workers(3)
                .buffer(2)
                .split(Split::Records { delimiter: b'\n', max_record }),
        );
    }
    configs
}

#[test]
fn readers_and_bytes_in_memory_are_cut_as_the_file_is() {
    let content = lines(800);
    let file = file_with(&content);
    for config in configs() {
        let p = Processor::new(config.clone()).unwrap();
        let expected = chunks(&p, file.path());
        assert_eq!(expected.iter().flat_map(|c| c.2.clone()).collect::<Vec<_>>(), content);
        assert_eq!(chunks(&p, Input::bytes(content.clone())), expected, "bytes, {config:?}");
        // A reader that returns a few bytes at a time, as a socket or a decoder may.
        let trickle = std::io::Cursor::new(content.clone()).take(u64::MAX);
        let trickle = Trickle(trickle, 5);
        assert_eq!(chunks(&p, Input::reader("trickle", trickle)), expected, "reader, {config:?}");
    }
}

/// Reads at most `.1` bytes per call.
struct Trickle<R>(R, usize);

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn a_socket_is_read_as_a_stream() {
    let content = lines(20_000);
    let p = Processor::new(Config::new().chunk_size(4096).workers(2).buffer(2).lines()).unwrap();
    let expected = chunks(&p, Input::bytes(content.clone()));
    let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
    let writer = {
        let content = content.clone();
        std::thread::spawn(move || tx.write_all(&content).unwrap())
    };
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(rx));
    let results = p
        .run(Input::file("socket", file), |c| Ok::<_, ()>((c.index(), c.offset(), c.data().to_vec())))
        .unwrap();
    assert_eq!(results.total_bytes(), None, "a socket's length is unknown");
    assert_eq!(results.map(|r| r.unwrap().value).collect::<Vec<_>>(), expected);
    writer.join().unwrap();
}

#[test]
fn an_input_that_fails_to_read_names_itself() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("device gone"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(b'\n');
            self.0 -= n;
            Ok(n)
        }
    }
    let p = Processor::new(Config::new().chunk_size(10).workers(2).lines()).unwrap();
    let results: Vec<_> =
        p.run(Input::reader("sensor", Broken(25)), |c| Ok::<_, ()>(c.len())).unwrap().collect();
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    // Two whole chunks; the third had 5 bytes when the read failed (at offset 25).
    assert_eq!(ok.into_iter().map(|r| r.unwrap().value).sum::<usize>(), 20, "the chunks before the failure");
    match &err[..] {
        [Err(Error::Read { path, offset: 25, source })] => {
            assert_eq!(path, std::path::Path::new("sensor"));
            assert_eq!(source.to_string(), "device gone");
        }
        other => panic!("expected one read error at offset 25, got {other:?}"),
    }
}

#[test]
fn several_inputs_are_folded_each_in_one_run() {
    let (a, b) = (lines(500), lines(77));
    let (file_a, empty) = (file_with(&a), file_with(b""));
    let p = Processor::new(Config::new().chunk_size(256).workers(3).buffer(1).lines()).unwrap();
    let count = |c: &streamproc::Chunk| Ok::<_, ()>(memchr::memchr_iter(b'\n', c.data()).count());
    let inputs = vec![
        Input::path(file_a.path()),
        Input::path("/no/such/file"),
        Input::path(empty.path()),
        Input::bytes(b.clone()),
        Input::path(file_a.path()),
    ];
    let counts = p.fold_each(inputs, count, || 0, |a, n| a + n).unwrap();
    assert_eq!(counts.len(), 5);
    assert_eq!(*counts[0].as_ref().unwrap(), 500);
    assert!(
        matches!(&counts[1], Err(Error::Open { path, .. }) if path == std::path::Path::new("/no/such/file"))
    );
    assert_eq!(*counts[2].as_ref().unwrap(), 0);
    assert_eq!(*counts[3].as_ref().unwrap(), 77);
    assert_eq!(*counts[4].as_ref().unwrap(), 500);

    // The iterator form: results in order, each naming its input, the failed input in its place.
    let items: Vec<_> = p
        .run_many([file_a.path(), std::path::Path::new("/no/such/file"), file_a.path()], |c| {
            Ok::<_, ()>(c.len())
        })
        .unwrap()
        .collect();
    let inputs: Vec<_> = items.iter().map(|r| r.as_ref().map(|p| p.input).map_err(|_| "error")).collect();
    let first_error = inputs.iter().position(Result::is_err).unwrap();
    assert!(inputs[..first_error].iter().all(|i| *i == Ok(0)));
    assert!(inputs[first_error + 1..].iter().all(|i| *i == Ok(2)));
    let bytes: usize = items.iter().filter_map(|r| r.as_ref().ok()).map(|p| p.value).sum();
    assert_eq!(bytes, 2 * a.len());
}

/// Many inputs that fail or are empty: each attempt that finds no chunk gives its credit back,
/// so the run does not stall after `workers + buffer` of them.
#[test]
fn many_empty_or_missing_inputs_do_not_exhaust_the_window() {
    let p = Processor::new(Config::new().chunk_size(16).workers(1).buffer(0)).unwrap();
    let inputs = (0..50).map(|i| if i % 2 == 0 { Input::bytes(&b""[..]) } else { Input::path("/no/such") });
    let outcomes = p.fold_each(inputs, |c| Ok::<_, ()>(c.len()), || 0, |a, n| a + n).unwrap();
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 25);
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Ok(0))).count(), 25);
}

#[test]
fn scoped_runs_borrow_from_the_caller() {
    let content = lines(2000);
    let needle = String::from("line 1");
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let p = Processor::new(Config::new().chunk_size(512).workers(2).lines()).unwrap();
    let matches = p
        .fold(
            Input::bytes(content.clone()),
            |c| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, ()>(
                    c.data().split(|&b| b == b'\n').filter(|l| l.starts_with(needle.as_bytes())).count(),
                )
            },
            0,
            |a, n| a + n,
        )
        .unwrap();
    let expected = content.split(|&b| b == b'\n').filter(|l| l.starts_with(needle.as_bytes())).count();
    assert_eq!(matches, expected);
    assert!(seen.into_inner() > 1, "the borrowed counter was updated by the workers");
}

/// A scoped run whose consumer is done returns although the reader is blocked in a read that
/// never completes (a stalled pipe): the workers do not wait for the reader.
#[test]
fn a_scoped_run_returns_while_the_reader_is_blocked() {
    let (reader, mut writer) = testkit::pipe().unwrap();
    writer.write_all(&lines(100)).unwrap();
    // The writer stays open and silent: the reader's next read blocks.
    let (done_tx, done_rx) = mpsc::channel();
    let run = std::thread::spawn(move || {
        let p = Processor::new(Config::new().chunk_size(64).workers(2).buffer(1).lines()).unwrap();
        let file = reader;
        let first = p.scope(
            Input::file("pipe", file),
            |c| Ok::<_, ()>(c.len()),
            |results| results.next().map(|r| r.unwrap().value),
        );
        done_tx.send(first.unwrap()).unwrap();
    });
    let first = done_rx.recv_timeout(Duration::from_secs(30)).expect("the scoped run returned");
    assert!(first.is_some_and(|len| len > 0));
    run.join().unwrap();
    drop(writer);
}

#[cfg(feature = "rayon")]
#[test]
fn workers_run_on_a_shared_pool() {
    let pool = std::sync::Arc::new(rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap());
    let p =
        Processor::new(Config::new().chunk_size(100).workers(2).lines().thread_pool(pool.clone())).unwrap();
    let content = lines(1000);
    for _ in 0..20 {
        // Scoped (borrowing) and detached runs alike run every chunk on the pool's threads.
        let on_pool = p.fold(
            Input::bytes(content.clone()),
            |_| Ok::<_, ()>(rayon::current_thread_index().is_some()),
            true,
            |a, b| a && b,
        );
        assert!(on_pool.unwrap());
        let on_pool = p
            .run(Input::bytes(content.clone()), |_| Ok::<_, ()>(rayon::current_thread_index().is_some()))
            .unwrap()
            .all(|r| r.unwrap().value);
        assert!(on_pool);
    }
}

#[cfg(feature = "compression")]
mod compressed {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_and_zstd_inputs_give_the_plain_chunks() {
        let content = lines(1500);
        let (half, rest) = content.split_at(content.len() / 2);
        // Two gzip members, as `cat a.gz b.gz` makes: zcat reads both.
        let gz = [gzip(half), gzip(rest)].concat();
        let zst = zstd::encode_all(&content[..], 1).unwrap();
        for config in configs() {
            let p = Processor::new(config.clone().decompress(true)).unwrap();
            let expected = chunks(&p, Input::bytes(content.clone()));
            let (gz_file, zst_file) = (file_with(&gz), file_with(&zst));
            assert_eq!(chunks(&p, gz_file.path()), expected, "gzip file, {config:?}");
            assert_eq!(chunks(&p, zst_file.path()), expected, "zstd file, {config:?}");
            assert_eq!(chunks(&p, Input::bytes(gz.clone())), expected, "gzip bytes");
            assert_eq!(
                chunks(&p, Input::reader("zst", Trickle(std::io::Cursor::new(zst.clone()), 3))),
                expected
            );
        }
        // Off by default: the stored bytes.
        let p = Processor::new(Config::new().chunk_size(1 << 20)).unwrap();
        assert_eq!(chunks(&p, Input::bytes(gz.clone()))[0].2, gz);
    }

    #[test]
    fn a_compressed_pipe_is_decoded() {
        let content = lines(3000);
        let (reader, mut writer) = testkit::pipe().unwrap();
        let gz = gzip(&content);
        let feed = std::thread::spawn(move || writer.write_all(&gz).unwrap());
        let p = Processor::new(Config::new().chunk_size(1000).workers(2).lines().decompress(true)).unwrap();
        let file = reader;
        let got: Vec<u8> = chunks(&p, Input::file("pipe", file)).into_iter().flat_map(|c| c.2).collect();
        assert_eq!(got, content);
        feed.join().unwrap();
    }

    #[test]
    fn a_corrupt_compressed_input_is_a_read_error() {
        let content = lines(3000);
        let mut gz = gzip(&content);
        let middle = gz.len() / 2;
        gz[middle..middle + 16].fill(0xAA);
        let file = file_with(&gz);
        let p = Processor::new(Config::new().chunk_size(1000).workers(2).lines().decompress(true)).unwrap();
        let results: Vec<_> = p.run(file.path(), |c| Ok::<_, ()>(c.len())).unwrap().collect();
        assert!(
            matches!(results.last(), Some(Err(Error::Read { path, .. })) if path == file.path()),
            "expected a read error naming the file, got {:?}",
            results.last()
        );
        // A truncated stream too: never a silent short result.
        let truncated = file_with(&gzip(&content)[..middle]);
        let results: Vec<_> = p.run(truncated.path(), |c| Ok::<_, ()>(c.len())).unwrap().collect();
        assert!(matches!(results.last(), Some(Err(Error::Read { .. }))), "got {:?}", results.last());
    }
}
