#!/usr/bin/env bash
# Proves the published crates publishable: `cargo package` builds each one from its packaged
# files alone (workspace path dependencies resolved against the crates packaged before it, in
# dependency order), then `cargo publish --dry-run` runs every check short of the upload.
# Arguments go to both (`--allow-dirty` to try uncommitted changes).
set -euo pipefail
cd "$(dirname "$0")/.."
crates=(-p leanrt-objpool -p alloctrack -p streamproc -p leanrt-connpool -p bounded-cache)
rm -f target/package/*.crate
cargo package --locked "${crates[@]}" "$@"
cargo publish --dry-run --locked --no-verify "${crates[@]}" "$@" 2>&1 | tee target/publish-dry-run.log
# A name or version already on crates.io would be refused at the upload (a dry run only warns).
if grep -q "already exists on crates.io index" target/publish-dry-run.log; then
    echo "a crate's name and version are already taken on crates.io" >&2
    exit 1
fi
for file in target/package/*.crate; do
    # Each archive carries its README, changelog, licenses and examples.
    listing=$(tar -tzf "$file")
    for wanted in README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE examples/; do
        grep -q "/$wanted" <<<"$listing" || { echo "$file lacks $wanted" >&2; exit 1; }
    done
done
ls -l target/package/*.crate
