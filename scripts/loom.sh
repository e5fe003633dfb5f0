#!/usr/bin/env bash
# Runs every crate's loom models under the `loom` profile (loom optimised, debug assertions on,
# so that every `debug_assert!` is checked in the models), with LOOM_MAX_PREEMPTIONS=2 and a
# crate-specific cfg per crate (`objpool_loom`, `alloctrack_loom`, `connpool_loom`,
# `bounded_cache_loom`), since tokio and others read a bare `--cfg loom` themselves. All four cfgs
# are set at once, so that the dependencies are built once for every crate's models (a crate's
# cfg only matters inside a model: no model uses another crate's types). A separate target
# directory keeps the loom build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="--cfg objpool_loom --cfg alloctrack_loom --cfg connpool_loom --cfg bounded_cache_loom"
loom() { cargo test --profile loom --target-dir target/loom "$@"; }
# One build for the three crates whose models are integration tests (a build per crate resolves
# the dependencies' features differently and compiles them again); alloctrack's models are unit
# tests of its registry, which is all its library holds under its cfg.
loom -p leanrt-objpool -p leanrt-connpool -p bounded-cache --test loom
loom -p alloctrack --lib
