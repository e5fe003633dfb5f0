#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (which type-check every benchmark and
# example too), unit/integration/doc tests, docs, the loom models, Miri on the unsafe code, a
# short run of the tour example and of every fuzz target. Each step prints how long it took.
# Installs what it needs (rustfmt, clippy, Miri, cargo-fuzz, PostgreSQL, Redis) when missing.
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

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

step "loom models"
scripts/loom.sh

step "miri"
scripts/miri.sh

step "the tour (README's first command), shortened"
# A debug build with the test build's features, so that it reuses the test build instead of
# compiling the workspace once more in release mode; README's command runs it in release.
cargo build --workspace --all-features --example tour
target/debug/examples/tour --seconds 5 | tee target/tour.out
grep -q "^== report" target/tour.out
# The parsers' peak is exact: 64 handlers hold parsers at once, so it cannot read 0.
grep -Eq "^objpool +in use [0-9]+/[0-9]+ \(peak [1-9]" target/tour.out

step "fuzz targets"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "all checks passed"
