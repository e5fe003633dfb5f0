#!/usr/bin/env bash
# Runs the test suites of the crates with unsafe code under Miri (nightly), installing Miri when
# missing. Isolation is off so that alloctrack can read /proc. A test Miri cannot run (a stress
# test, a trace replay) is marked `#[cfg_attr(miri, ignore = "why")]` where it is written, and
# loops shrink under `cfg!(miri)`; this script names no tests. Default features: the Redis tier's
# tests need a server and sockets, which Miri does not run.
#
# streamproc is not here: its only unsafe code is the raw `read`/`pread` calls into a buffer's
# spare capacity, which foreign calls into libc and file-sized tests put out of Miri's reach;
# AddressSanitizer runs its tests instead (scripts/sanitizers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
cargo +nightly miri test -p leanrt-objpool -p alloctrack -p bounded-cache --lib --tests
