//! `streamproc checksum`: a checksum of each file's bytes as stored, equal to a one-thread
//! computation.
//!
//! CRC-32 is computed per chunk on the workers and the chunk values combined in order
//! (`crc32fast::Hasher::combine`). XXH3 cannot be combined, so the workers only hand the chunk's
//! bytes (a reference count) back and the hash runs over them in order on the calling thread, while
//! the reader keeps reading ahead. Several files go through one pipeline, each with its own sum.

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;

use crate::{Algo, Run, Status, report};

/// A checksum under way.
enum Sum {
    Crc32(crc32fast::Hasher),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
}

/// What a worker hands back for a chunk.
enum Part {
    Crc32(crc32fast::Hasher),
    Bytes(Bytes),
}

pub(crate) fn run(run: &Run, files: &[PathBuf], algo: Algo) -> Status {
    let outcomes = run.processor.fold_each(
        run.inputs(files),
        |chunk| {
            Ok::<_, Infallible>(match algo {
                Algo::Crc32 => {
                    let mut h = crc32fast::Hasher::new();
                    h.update(chunk.data());
                    Part::Crc32(h)
                }
                Algo::Xxh3 => Part::Bytes(chunk.bytes().clone()),
            })
        },
        || match algo {
            Algo::Crc32 => Sum::Crc32(crc32fast::Hasher::new()),
            Algo::Xxh3 => Sum::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
        },
        |mut sum, part| {
            match (&mut sum, part) {
                (Sum::Crc32(acc), Part::Crc32(h)) => acc.combine(&h),
                (Sum::Xxh3(acc), Part::Bytes(bytes)) => acc.update(&bytes),
                _ => unreachable!("one algorithm per run"),
            }
            sum
        },
    );
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            report(&error);
            return Status::Failed;
        }
    };
    let mut status = Status::Ok;
    let mut json = Vec::new();
    for (file, outcome) in files.iter().zip(outcomes) {
        let name = file.display().to_string();
        match outcome {
            Ok(sum) => {
                let hex = match sum {
                    Sum::Crc32(h) => format!("{:08x}", h.finalize()),
                    Sum::Xxh3(h) => format!("{:016x}", h.digest()),
                };
                if run.json {
                    json.push(serde_json::json!({ "name": name, "checksum": hex }));
                } else {
                    println!("{hex}  {name}");
                }
            }
            Err(error) => {
                status = Status::Failed;
                report(&error);
                json.push(serde_json::json!({ "name": name, "error": error.to_string() }));
            }
        }
    }
    if run.json {
        let algo = match algo {
            Algo::Crc32 => "crc32",
            Algo::Xxh3 => "xxh3",
        };
        println!("{}", serde_json::json!({ "algo": algo, "inputs": json }));
    }
    status
}
