//! `streamproc`: chunked parallel processing of large files from the command line.
//!
//! ```text
//! streamproc [--chunk-size 1MiB] [--workers N] [--buffer 10] [--csv] [--json] <command> ...
//!   lines FILE... [-l]            lines, words and bytes, as wc counts them (-l: lines only)
//!   grep PATTERN FILE... [-c]     lines containing PATTERN (a literal), in order (-c: count them)
//!   checksum FILE... [--algo A]   xxh3 (64-bit, default) or crc32 of each file
//!   stats FILE...                 min/mean/max per name of `name;value` lines, sorted by name
//!   gen ROWS FILE [--seed S]      writes ROWS `name;value` lines for `stats`
//! ```
//!
//! A FILE to read may be `-` (standard input), a pipe or a FIFO: it is read as a stream. gzip and
//! zstd files are decoded (recognised by their magic bytes) by every command but `checksum`, which
//! sums the bytes as stored. Several files are read in one pipeline and reported one by one, with
//! a total, as `wc` and `grep` do; a file that cannot be read is reported and skipped.
//!
//! Exit status, as `wc` and `grep` use it: 0 on success; 1 if a file could not be read (for
//! `grep`: 1 if no line matched, 2 if a file could not be read); 2 for invalid arguments.

mod checksum;
mod generate;
mod grep;
mod lines;
mod stats;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use streamproc::{Config, Input, Processor};

#[derive(Parser, Debug)]
#[command(
    name = "streamproc",
    version,
    about = "Chunked parallel processing of large files, in bounded memory"
)]
struct Cli {
    /// Bytes per chunk (suffixes K, M, G, KiB, MiB, GiB).
    #[arg(long, global = true, default_value = "1MiB", value_parser = parse_size)]
    chunk_size: usize,
    /// Worker threads (default: one per CPU).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Chunks that may wait beyond one per worker.
    #[arg(long, global = true, default_value_t = 10)]
    buffer: usize,
    /// Never show a progress bar (one is shown when stderr is a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
    /// Records are CSV records (RFC 4180): a newline inside a quoted field does not end one.
    /// `lines` counts records; `grep` prints whole records.
    #[arg(long, global = true)]
    csv: bool,
    /// Print the results as JSON (one document; JSON Lines for `grep`'s matches).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Count lines, words and bytes, as `wc` does.
    Lines {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Count lines only.
        #[arg(short = 'l', long)]
        lines_only: bool,
    },
    /// Print the lines that contain a literal pattern, in file order.
    Grep {
        pattern: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the number of matching lines instead.
        #[arg(short = 'c', long)]
        count: bool,
    },
    /// Checksum the whole file.
    Checksum {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Algo::Xxh3)]
        algo: Algo,
    },
    /// Min, mean and max per name of `name;value` lines (the One Billion Row Challenge).
    Stats {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write `rows` lines of `name;value` for `stats`.
    Gen {
        rows: u64,
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Algo {
    Xxh3,
    Crc32,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(|| format!("{s:?} is not a usable size"))
}

/// What every command needs: the processor and the output mode.
pub(crate) struct Run {
    pub(crate) processor: Processor,
    pub(crate) json: bool,
    pub(crate) csv: bool,
}

impl Run {
    /// The inputs for `files`: standard input for `-`.
    pub(crate) fn inputs(&self, files: &[PathBuf]) -> Vec<Input> {
        files
            .iter()
            .map(|file| {
                if file.as_os_str() == "-" {
                    Input::stdin().unwrap_or_else(|_| Input::reader("-", std::io::stdin()))
                } else {
                    Input::path(file)
                }
            })
            .collect()
    }
}

/// Reports a failure on standard error with its causes, each once: `streamproc: a: b: c`.
pub(crate) fn report(error: &dyn std::error::Error) {
    let mut line = format!("streamproc: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{line}");
}

/// Reports a failure that is a message, not an error value, on standard error.
pub(crate) fn report_message(message: impl std::fmt::Display) {
    eprintln!("streamproc: {message}");
}

/// How a command records the chunks of its input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Fixed-size chunks of the bytes as stored (checksums).
    Raw,
    /// Whole records (lines or CSV records) of the decoded text.
    Records,
}

fn processor(cli: &Cli, cut: Cut) -> Result<Run, String> {
    let workers = cli.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut config = Config::new().chunk_size(cli.chunk_size).workers(workers).buffer(cli.buffer);
    if cut == Cut::Records {
        config = if cli.csv { config.csv() } else { config.lines() }.decompress(true);
    }
    if !cli.no_progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .expect("a valid template"),
        );
        config = config.on_progress(move |done, total| {
            // A stream's length is not known: the bar shows bytes and speed only.
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
            if Some(done) == total {
                bar.finish_and_clear();
            }
        });
    }
    Ok(Run { processor: Processor::new(config).map_err(|e| e.to_string())?, json: cli.json, csv: cli.csv })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let grep = matches!(cli.command, Command::Grep { .. });
    let cut = match cli.command {
        Command::Checksum { .. } => Cut::Raw,
        _ => Cut::Records,
    };
    let run = match processor(&cli, cut) {
        Ok(run) => run,
        Err(message) => {
            report_message(message);
            return ExitCode::from(2);
        }
    };
    let status = match &cli.command {
        Command::Lines { files, lines_only } => lines::run(&run, files, *lines_only),
        Command::Grep { pattern, files, count } => grep::run(&run, pattern, files, *count),
        Command::Checksum { files, algo } => checksum::run(&run, files, *algo),
        Command::Stats { files } => stats::run(&run, files),
        Command::Gen { rows, file, seed } => match generate::run(*rows, file, *seed) {
            Ok(()) => Status::Ok,
            Err(message) => {
                report_message(message);
                Status::Failed
            }
        },
    };
    ExitCode::from(status.code(grep))
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// `grep` only: nothing matched.
    NoMatch,
    /// An input could not be read (reported already).
    Failed,
}

impl Status {
    /// The exit code, as `wc` (0, or 1 on a failure) and `grep` (0, 1 for no match, 2 on a
    /// failure) give it.
    fn code(self, grep: bool) -> u8 {
        match (self, grep) {
            (Status::Ok, _) => 0,
            (Status::NoMatch, _) => 1,
            (Status::Failed, true) => 2,
            (Status::Failed, false) => 1,
        }
    }
}
