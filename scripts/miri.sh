#!/usr/bin/env bash
# Runs the tests that exercise unsafe code under Miri (nightly), installing Miri when missing.
# Isolation is off so that alloctrack can read /proc; heavy tests skip themselves under Miri.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
cargo +nightly miri test -p objpool --test pool --test no_alloc --test lifecycle --test async_create --test async_reset
cargo +nightly miri test -p alloctrack --test counting
# The slab under the cache (unsafe: entries in MaybeUninit nodes): its unit tests, and the public
# API tests that insert, replace, evict, expire, remove, clear and drop entries.
cargo +nightly miri test -p bounded-cache --lib
cargo +nightly miri test -p bounded-cache --test cache -- get_insert_remove lru_evicts budget_is_never shrinking invalidate_if iter_sees
