//! Compressed inputs (feature `compression`): recognised by their magic bytes, decoded on the way
//! in by `flate2` (gzip, every member of a multi-member file, as `zcat` reads it) or `zstd` (every
//! frame).

use std::io::{self, Read};

/// The bytes needed to recognise a format.
pub(crate) const MAGIC_LEN: usize = 4;

/// A compressed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Gzip,
    Zstd,
}

/// The format whose magic bytes `head` starts with.
pub(crate) fn detect(head: &[u8]) -> Option<Format> {
    match head {
        [0x1f, 0x8b, ..] => Some(Format::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Format::Zstd),
        _ => None,
    }
}

/// A reader of the decoded bytes of `raw`.
pub(crate) fn decoder(format: Format, raw: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    Ok(match format {
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_name_the_format() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Some(Format::Gzip));
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Some(Format::Zstd));
        assert_eq!(detect(b"1f8b"), None);
        assert_eq!(detect(&[0x28, 0xb5]), None, "too short to be zstd");
        assert_eq!(detect(&[]), None);
    }
}
