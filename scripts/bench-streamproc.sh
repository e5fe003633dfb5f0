#!/usr/bin/env bash
# streamproc against the real tools, side by side with hyperfine, on a 1 GiB file in the page
# cache: `lines -l` against `wc -l`, `rg -c` and `cat` (the cost of reading the file at all),
# `lines` against `wc`, `grep -c` against GNU grep and ripgrep, `stats` with 2 workers against 1;
# the same file through a pipe (`cat FILE | ...`) and gzip-compressed (against `zcat | wc -l` and
# `pigz -dc | wc -l`); and each streamproc command's peak RSS (GNU time).
#
#   scripts/bench-streamproc.sh [ROWS]      (default 68,000,000 rows: about 1 GiB)
#
# Installs hyperfine, ripgrep, pigz and GNU time (Debian packages) when missing. Prints markdown.
# Every tool runs in the C locale (byte semantics, as streamproc counts), with its output to a pipe
# (GNU grep stops at the first match when its output is /dev/null).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
rows="${1:-68000000}"

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v rg >/dev/null || need+=(ripgrep)
command -v pigz >/dev/null || need+=(pigz)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p streamproc --features cli
sp="$PWD/target/release/streamproc"
data_dir="target/bench-data"
mkdir -p "$data_dir"
file="$data_dir/measurements-$rows.txt"
[ -s "$file" ] || "$sp" gen "$rows" "$file" --seed 1
pattern='Kura22;'
gz="$file.gz"
[ -s "$gz" ] || pigz -1 -c "$file" > "$gz"
cat "$file" "$gz" > /dev/null # into the page cache

echo "## streamproc: FILE = $file, $(stat -c %s "$file") bytes, $rows rows; $(nproc) CPUs; $(date -u +%F)"
echo
echo "Versions: $(wc --version | head -1); $(grep --version | head -1); $(rg --version | head -1); $(pigz --version 2>&1); $(hyperfine --version)"
bench() {
    local title="$1"
    shift
    echo
    echo "### $title"
    echo
    local table
    table=$(mktemp)
    hyperfine --style none --output=pipe --warmup 2 --runs "${RUNS:-10}" --export-markdown "$table" "$@" >/dev/null
    sed "s|$sp|streamproc|; s|$gz|FILE.gz|g; s|$file|FILE|g" "$table"
    rm -f "$table"
}
bench "lines only" "$sp --no-progress lines -l $file" "wc -l $file" "rg -c '' $file" "cat $file"
bench "lines, words and bytes" "$sp --no-progress lines $file" "wc $file"
bench "count matching lines" "$sp --no-progress grep -c '$pattern' $file" "grep -c '$pattern' $file" \
    "rg -c '$pattern' $file"
bench "lines only, through a pipe" "cat $file | $sp --no-progress lines -l -" "cat $file | wc -l"
bench "lines only, gzip-compressed (pigz -1)" "$sp --no-progress lines -l $gz" "zcat $gz | wc -l" \
    "pigz -dc $gz | wc -l" "zcat $gz | $sp --no-progress lines -l -"
bench "stats (One Billion Row Challenge aggregation)" "$sp --no-progress --workers 2 stats $file" \
    "$sp --no-progress --workers 1 stats $file"

echo
echo "### peak RSS (GNU time), default chunk 1 MiB, buffer 10, $(nproc) workers"
echo
echo "| command | max RSS | bound (workers + buffer) x chunk + 16 MiB |"
echo "|---|---|---|"
bound_kib=$(( ($(nproc) + 10) * 1024 + 16 * 1024 ))
for cmd in "lines -l" "lines" "grep -c $pattern" "stats" "checksum" "checksum --algo crc32"; do
    # shellcheck disable=SC2086
    rss=$(/usr/bin/time -f '%M' "$sp" --no-progress $cmd "$file" 2>&1 >/dev/null | tail -1)
    echo "| streamproc $cmd | $((rss / 1024)) MiB | $((bound_kib / 1024)) MiB |"
done
