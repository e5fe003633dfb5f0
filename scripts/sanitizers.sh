#!/usr/bin/env bash
# ThreadSanitizer over the concurrency and stress tests of objpool, connpool, bounded-cache and
# streamproc, and AddressSanitizer (with LeakSanitizer) over the test suites of the crates with
# unsafe code, on the nightly toolchain with the standard library rebuilt instrumented
# (`-Zbuild-std`, so that std's own synchronisation is visible to the sanitizer). Each sanitizer builds into its own
# target directory. The tests that need PostgreSQL or Redis run when the servers' variables are
# set (scripts/servers.sh).
#
#   scripts/sanitizers.sh [thread|address]...      (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add --toolchain nightly rust-src
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')

# `--target` keeps the sanitizer flags off build scripts and proc macros.
sanitized() {
    local sanitizer=$1
    shift
    RUSTFLAGS="-Zsanitizer=$sanitizer" RUSTDOCFLAGS="-Zsanitizer=$sanitizer" \
        cargo +nightly test -Zbuild-std --target "$host" --target-dir "target/sanitizer-$sanitizer" "$@"
}

thread() {
    # Any report fails the test binary (exit code 66) at the end of the run.
    export TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1}"
    # One build for all four crates: a build per crate resolves the dependencies' features
    # differently and compiles them again. A test name selects that test in every crate that has
    # one (`pool`, `stress` and `lifecycle` are in several, and each of those is meant).
    sanitized thread -p leanrt-objpool -p leanrt-connpool -p bounded-cache -p streamproc \
        --test pool --test stress --test lifecycle --test async_create --test async_reset \
        --test burst --test cancel \
        --test cache --test invalidation --test reentrant --test panics --test expiry --test compute --test refresh \
        --test process --test inputs
    # `--lib` would select every crate's unit tests; streamproc's are the ones with threads.
    sanitized thread -p streamproc --lib
}

address() {
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=1}"
    # The crates that hold unsafe code (connpool forbids it), with their default features: the
    # optional features add safe code over other crates, whose builds would double this step.
    sanitized address --lib --tests -p leanrt-objpool -p bounded-cache -p streamproc -p alloctrack
}

[ $# -gt 0 ] || set -- thread address
for sanitizer in "$@"; do
    case "$sanitizer" in
        thread | address) echo "==> $sanitizer sanitizer" && "$sanitizer" ;;
        *) echo "unknown sanitizer: $sanitizer (thread or address)" >&2 && exit 2 ;;
    esac
done
