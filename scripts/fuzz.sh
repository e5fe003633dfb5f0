#!/usr/bin/env bash
# Runs each fuzz target for a fixed time (seconds, default 20). Needs the nightly toolchain;
# installs cargo-fuzz from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cd fuzz
for target in $(cargo +nightly fuzz list); do
    echo "fuzzing $target for ${seconds}s"
    # fuzz/seeds/<target> (tracked) holds inputs that once failed: every run replays them first.
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
