#!/usr/bin/env bash
# Builds and tests the published crates with the minimum supported Rust version declared in
# Cargo.toml (`rust-version`), every feature on, with the committed Cargo.lock. Installs that
# toolchain when missing. A separate target directory keeps its artifacts apart. The tests that
# need PostgreSQL or Redis run when the servers' variables are set (scripts/servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal
fi
rustup run "$msrv" rustc --version
crates=(-p leanrt-objpool -p leanrt-connpool -p bounded-cache -p streamproc -p alloctrack)
cargo "+$msrv" test --locked --target-dir target/msrv "${crates[@]}" --all-features --all-targets
cargo "+$msrv" test --locked --target-dir target/msrv "${crates[@]}" --all-features --doc
