#!/usr/bin/env bash
# Screen-pop figures on loopback, release build, the real `ringside serve`:
#  (a) pop latency, 1,000 agents with one tab each, 100 calls/s from a
#      minimal AMI server in the load tool (DialBegin written -> call.ringing
#      read by the agent's tab);
#  (b) server RSS per idle WebSocket connection (~19,000 connections);
#  (c) (a) with two nodes sharing Redis, the tabs on the node without AMI.
# Usage: benches/push-figures.sh [a] [b] [c]     (default: all three)
# Env: CALLS (default 3000), DIAL_AFTER_MS (default 2), CONNS (default 19000), REDIS (redis://127.0.0.1:6379).
# (c) runs its two nodes under a Redis prefix of their own
# (RINGSIDE_REDIS_PREFIX), so a shared Redis server is fine.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 20000
cargo build --release --bin ringside --example push_load >&2
bin=target/release/ringside
tool=target/release/examples/push_load
calls=${CALLS:-3000}
# The PBX rings 2 ms after the call arrives, as the captured Asterisk did on
# a direct line; DIAL_AFTER_MS=0 sends DialBegin right behind Newchannel.
dial_after=${DIAL_AFTER_MS:-2}
conns=${CONNS:-19000}
redis=${REDIS:-redis://127.0.0.1:6379}
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(a b c)
for p in "${parts[@]}"; do
  case $p in
    a) echo "== (a) pop latency, one node =="
       "$tool" "$bin" pop --calls "$calls" --dial-after-ms "$dial_after" ;;
    b) echo "== (b) idle WebSocket connections =="
       "$tool" "$bin" idle --conns "$conns" ;;
    c) echo "== (c) pop latency, two nodes through Redis =="
       "$tool" "$bin" redis --calls "$calls" --dial-after-ms "$dial_after" --redis "$redis" ;;
    *) echo "unknown part $p (a, b or c)" >&2; exit 2 ;;
  esac
done
