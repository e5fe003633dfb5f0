#!/usr/bin/env bash
# Runs every crate's loom models: release mode with debug assertions on (so that every
# `debug_assert!` is checked in the models), LOOM_MAX_PREEMPTIONS=2, and a crate-specific cfg per
# crate (`objpool_loom`, `alloctrack_loom`, `connpool_loom`, `bounded_cache_loom`), since tokio and
# others read a bare `--cfg loom` themselves. A separate target directory keeps the loom build
# from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
loom() {
    local cfg=$1
    shift
    RUSTFLAGS="--cfg $cfg -C debug-assertions" cargo test --release --target-dir target/loom "$@"
}
loom objpool_loom -p objpool --test loom
loom alloctrack_loom -p alloctrack --lib
loom connpool_loom -p connpool --test loom
loom bounded_cache_loom -p bounded-cache --test loom
