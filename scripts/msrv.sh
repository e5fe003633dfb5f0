#!/usr/bin/env bash
# Type-checks the published crates with the minimum supported Rust version declared in Cargo.toml
# (`rust-version`): every target (library, tests, examples, benchmarks), every feature on, with the
# committed Cargo.lock. Installs that toolchain when missing. A separate target directory keeps its
# artifacts apart.
#
# `cargo check`, not `cargo test`: what the version promises is that the crates compile there, and
# the language and library features that would break that are all caught by the type checker. The
# tests run on stable (and instrumented, under the sanitizers and Miri); building them once more
# here, code generation for every dependency included, took ten minutes of the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal
fi
rustup run "$msrv" rustc --version
crates=(-p leanrt-objpool -p leanrt-connpool -p bounded-cache -p streamproc -p alloctrack)
cargo "+$msrv" check --locked --target-dir target/msrv "${crates[@]}" --all-features --all-targets
