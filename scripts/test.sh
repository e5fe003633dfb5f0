#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (which type-check every benchmark and
# example too), unit/integration/doc tests, the docs as docs.rs builds them, the loom models,
# Miri on the unsafe code (beside the later steps), a short run of the tour and a run of every
# crate's examples, the crates packaged as for publishing, the minimum supported Rust version, ThreadSanitizer and
# AddressSanitizer, and a short run of every fuzz target. Each step prints how long it took.
# Installs what it needs (rustfmt, clippy, Miri, rust-src, the MSRV toolchain, cargo-fuzz,
# PostgreSQL, Redis) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
last=$SECONDS
step() {
    printf '\n==> %s   [%ds since the previous step, %ds in all]\n' "$*" $((SECONDS - last)) $((SECONDS - started))
    last=$SECONDS
}

step "toolchain"
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
# Miri and the standard library's source (Miri, the sanitizers) for nightly, installed here once
# so that the steps running side by side below never install at the same time.
for component in miri rust-src; do
    if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add --toolchain nightly "$component"
    fi
done
rustc --version

step "servers"
# PostgreSQL and Redis on loopback for the connpool tests; stopped when this script exits.
source scripts/servers.sh
start_servers

step "cargo fmt --check"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
# Default features too: a test that only compiles with every feature on is a defect.
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
cargo test --workspace --all-features

step "docs, as docs.rs builds them"
scripts/docs.sh

step "loom models"
scripts/loom.sh

step "miri, started in the background"
# Miri interprets on one core for several minutes: it runs beside the steps below (each builds in
# its own target directory) and is waited for at the end, where its output is printed.
# In a process group of its own, so that if a later step fails, Miri stops with the suite.
setsid scripts/miri.sh >target/miri.out 2>&1 &
miri=$!
trap 'kill -- "-$miri" 2>/dev/null || true; stop_servers' EXIT

step "the tour (README's first command), shortened"
# A debug build with the test build's features, so that it reuses the test build instead of
# compiling the workspace once more in release mode; README's command runs it in release.
cargo build --workspace --all-features --example tour
target/debug/examples/tour --seconds 5 | tee target/tour.out
grep -q "^== report" target/tour.out
# The parsers' peak is exact: 64 handlers hold parsers at once, so it cannot read 0.
grep -Eq "^objpool +in use [0-9]+/[0-9]+ \(peak [1-9]" target/tour.out

step "each crate's examples"
# Built by the test step (cargo test builds examples); each checks its own results.
for example in objpool connpool http postgres redis cache logscan alloctrack; do
    echo "--> $example"
    "target/debug/examples/$example" >target/example-$example.out
    tail -n 2 target/example-$example.out
done

step "packaging"
scripts/package.sh

step "minimum supported Rust version"
scripts/msrv.sh

step "sanitizers"
scripts/sanitizers.sh thread address

step "fuzz targets"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "miri, waited for"
if ! wait "$miri"; then
    cat target/miri.out
    echo "Miri failed" >&2
    exit 1
fi
grep -E "^test result|^     Running" target/miri.out

step "all checks passed"
