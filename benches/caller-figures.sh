#!/usr/bin/env sh
# Runs the caller-index benchmark in release and prints its figures:
# lookup p50/p99, memory per number, build time, and the ratios against the
# same lookup as an indexed SQL query on SQLite and PostgreSQL.
#
#   benches/caller-figures.sh            figures, then a short criterion run
#   CALLER_BENCH_PG=postgres://… benches/caller-figures.sh
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench --bench caller_index -- --warm-up-time 1 --measurement-time 3 >"$out" 2>&1 || {
    cat "$out"
    exit 1
}
sed -n '/== caller index figures ==/,/== end of figures ==/p' "$out" | sed 's/^figure: //'
echo "criterion (mean per iteration):"
grep -A1 -E '^(lookup_raw|build)' "$out" | grep -E 'time:|^(lookup|build)' | sed 's/^/  /'
