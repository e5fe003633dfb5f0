//! `streamproc`: chunked parallel processing of large files from the command line.
//!
//! ```text
//! streamproc [--chunk-size 1MiB] [--workers N] [--buffer 10] <command> ...
//!   lines FILE [-l]            lines, words and bytes, as wc counts them (-l: lines only)
//!   grep PATTERN FILE [-c]     lines containing PATTERN (a literal), in file order (-c: count them)
//!   checksum FILE [--algo A]   xxh3 (64-bit, default) or crc32 of the whole file
//!   stats FILE                 min/mean/max per name of `name;value` lines, sorted by name
//!   gen ROWS FILE [--seed S]   writes ROWS `name;value` lines for `stats`
//! ```
//!
//! A FILE to read may be `-` (standard input), a pipe or a FIFO: it is read as a stream.

mod checksum;
mod generate;
mod grep;
mod lines;
mod stats;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use streamproc::{Config, Processor};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Count lines, words and bytes, as `wc` does.
    Lines {
        file: PathBuf,
        /// Count lines only.
        #[arg(short = 'l', long)]
        lines_only: bool,
    },
    /// Print the lines that contain a literal pattern, in file order.
    Grep {
        pattern: String,
        file: PathBuf,
        /// Print the number of matching lines instead.
        #[arg(short = 'c', long)]
        count: bool,
    },
    /// Checksum the whole file.
    Checksum {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Algo::Xxh3)]
        algo: Algo,
    },
    /// Min, mean and max per name of `name;value` lines (the One Billion Row Challenge).
    Stats { file: PathBuf },
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

/// What every command needs: the processor (record-aligned on newlines) and the file.
pub(crate) struct Run {
    pub(crate) processor: Processor,
}

impl Run {
    /// The path to read for `file`: standard input for `-`.
    pub(crate) fn input(&self, file: &std::path::Path) -> PathBuf {
        if file.as_os_str() == "-" { PathBuf::from("/dev/stdin") } else { file.to_path_buf() }
    }
}

fn processor(cli: &Cli, records: bool) -> Result<Run, String> {
    let workers = cli.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut config = Config::new().chunk_size(cli.chunk_size).workers(workers).buffer(cli.buffer);
    if records {
        config = config.lines();
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
    Ok(Run { processor: Processor::new(config).map_err(|e| e.to_string())? })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Lines { file, lines_only } => {
            processor(&cli, true).and_then(|run| lines::run(&run, file, *lines_only))
        }
        Command::Grep { pattern, file, count } => {
            processor(&cli, true).and_then(|run| grep::run(&run, pattern, file, *count))
        }
        Command::Checksum { file, algo } => {
            processor(&cli, false).and_then(|run| checksum::run(&run, file, *algo))
        }
        Command::Stats { file } => processor(&cli, true).and_then(|run| stats::run(&run, file)),
        Command::Gen { rows, file, seed } => generate::run(*rows, file, *seed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streamproc: {message}");
            ExitCode::FAILURE
        }
    }
}
