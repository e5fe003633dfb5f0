//! `streamproc checksum`: a checksum of the whole file, equal to a one-thread computation.
//!
//! CRC-32 is computed per chunk on the workers and the chunk values combined in order
//! (`crc32fast::Hasher::combine`). XXH3 cannot be combined, so the workers only hand the chunk's
//! bytes (a reference count) back and the hash runs over them in order on the calling thread, while
//! the reader keeps reading ahead.

use std::convert::Infallible;
use std::path::Path;

use crate::{Algo, Run};

pub(crate) fn run(run: &Run, file: &Path, algo: Algo) -> Result<(), String> {
    let hex = match algo {
        Algo::Crc32 => {
            let crc = run
                .processor
                .fold(
                    run.input(file),
                    |chunk| {
                        let mut h = crc32fast::Hasher::new();
                        h.update(chunk.data());
                        Ok::<_, Infallible>(h)
                    },
                    crc32fast::Hasher::new(),
                    |mut acc, h| {
                        acc.combine(&h);
                        acc
                    },
                )
                .map_err(|e| e.to_string())?;
            format!("{:08x}", crc.finalize())
        }
        Algo::Xxh3 => {
            let hasher = run
                .processor
                .fold(
                    run.input(file),
                    |chunk| Ok::<_, Infallible>(chunk.bytes().clone()),
                    xxhash_rust::xxh3::Xxh3::new(),
                    |mut acc, bytes| {
                        acc.update(&bytes);
                        acc
                    },
                )
                .map_err(|e| e.to_string())?;
            format!("{:016x}", hasher.digest())
        }
    };
    println!("{hex}  {}", file.display());
    Ok(())
}
