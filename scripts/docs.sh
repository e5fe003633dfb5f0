#!/usr/bin/env bash
# Documents the published crates as docs.rs does (`[package.metadata.docs.rs]`: every feature,
# `--cfg docsrs` for the feature badges, nightly rustdoc), warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo +nightly doc --no-deps --all-features \
    -p leanrt-objpool -p leanrt-connpool -p bounded-cache -p streamproc -p alloctrack
