#!/usr/bin/env bash
# Runs every crate's loom models: release mode, LOOM_MAX_PREEMPTIONS=2, and a crate-specific
# cfg per crate (`objpool_loom`, `alloctrack_loom`, `connpool_loom`,
# `bounded_cache_loom`), since tokio and others
# read a bare `--cfg loom` themselves. A separate
# target directory keeps the loom build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
RUSTFLAGS="--cfg objpool_loom" cargo test --release --target-dir target/loom -p objpool --test loom
RUSTFLAGS="--cfg alloctrack_loom" cargo test --release --target-dir target/loom -p alloctrack --lib
RUSTFLAGS="--cfg connpool_loom" cargo test --release --target-dir target/loom -p connpool --test loom
RUSTFLAGS="--cfg bounded_cache_loom" cargo test --release --target-dir target/loom -p bounded-cache --test loom
