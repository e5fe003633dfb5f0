//! `streamproc lines`: lines, words and bytes, counted as `wc` counts them (a word is a maximal run
//! of bytes that are not ASCII whitespace; chunks end on a newline, so no word spans two chunks).

use std::convert::Infallible;
use std::path::Path;

use crate::Run;

#[derive(Default, Clone, Copy)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn count_words(data: &[u8]) -> u64 {
    let mut words = 0;
    let mut in_word = false;
    for &b in data {
        let space = is_space(b);
        words += u64::from(in_word && space);
        in_word = !space;
    }
    words + u64::from(in_word)
}

pub(crate) fn run(run: &Run, file: &Path, lines_only: bool) -> Result<(), String> {
    let counts = run
        .processor
        .fold(
            run.input(file),
            move |chunk| {
                let data = chunk.data();
                Ok::<_, Infallible>(Counts {
                    lines: memchr::memchr_iter(b'\n', data).count() as u64,
                    words: if lines_only { 0 } else { count_words(data) },
                    bytes: data.len() as u64,
                })
            },
            Counts::default(),
            |a, c| Counts { lines: a.lines + c.lines, words: a.words + c.words, bytes: a.bytes + c.bytes },
        )
        .map_err(|e| e.to_string())?;
    if lines_only {
        println!("{} {}", counts.lines, file.display());
    } else {
        println!("{} {} {} {}", counts.lines, counts.words, counts.bytes, file.display());
    }
    Ok(())
}
