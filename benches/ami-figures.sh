#!/usr/bin/env bash
# Runs the AMI benchmark (release, one thread, 64 KiB reads, >= 100 MB burst)
# and prints events/s for Ringside and its peers, with the ratios.
# Usage: benches/ami-figures.sh            # with the peer crates
#        PEERS=0 benches/ami-figures.sh    # Ringside only
set -euo pipefail
cd "$(dirname "$0")/.."
features=(--features peer-bench)
[ "${PEERS:-1}" = 0 ] && features=()
out=$(cargo bench "${features[@]}" --bench ami -- --noplot 2>&1 | tee /dev/stderr)
echo
echo "== AMI figures (events/s, best run) =="
echo "$out" | grep -m1 "^burst:" || true
echo "$out" | awk '
  /^figure:/ { rate[$2] = $3; order[n++] = $2 }
  END {
    ours = rate["codec/ringside"]
    for (i = 0; i < n; i++) {
      k = order[i]
      line = sprintf("%-28s %14.0f", k, rate[k])
      if (k !~ /ringside/ && ours > 0 && rate[k] > 0)
        line = line sprintf("   ringside codec is %.1fx this", ours / rate[k])
      print line
    }
    if (ours > 0) printf "codec budget 2,500,000/s: %s\n", (ours >= 2500000 ? "met" : "NOT met")
    t = rate["tracker/ringside"]
    if (t > 0) printf "tracker budget 1,000,000/s: %s\n", (t >= 1000000 ? "met" : "NOT met")
  }'
