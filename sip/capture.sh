#!/usr/bin/env bash
# Runs one call through the real Asterisk 22 bundle and records the AMI stream.
#
# usage: sip/capture.sh CASE OUT_PREFIX      e.g. sip/capture.sh attended_transfer /tmp/x/attended
# CASE is one of the functions case_* below. Writes OUT_PREFIX.ami / .times
# (see sip/ami_tap.py) and leaves the run's logs (Asterisk's full log, SIPp
# traces) in OUT_PREFIX.logs/.
#
# Each run: the bundle is unpacked once into target/asterisk/, the PBX
# configuration (shared/asterisk/conf) is copied into a temp dir with every
# port moved to a free one, Asterisk starts there and is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shared/ sits beside the checkout (or beside the folder of worktrees)
if [ -z "${RINGSIDE_SHARED:-}" ]; then
  for d in "$ROOT/../shared" "$ROOT/../../shared"; do
    [ -d "$d/asterisk" ] && { RINGSIDE_SHARED=$(cd "$d" && pwd); break; }
  done
fi
SHARED=${RINGSIDE_SHARED:?set RINGSIDE_SHARED to the folder holding asterisk/}
BUNDLE=$SHARED/asterisk/asterisk-22.10.1-bookworm-x86_64.tar.xz
AST=$ROOT/target/asterisk/asterisk-22.10.1
SC=$ROOT/sip/scenarios

CASE=${1:?case}; OUT=${2:?out prefix}
mkdir -p "$(dirname "$OUT")"; OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
LOGS=$OUT.logs; rm -rf "$LOGS"; mkdir -p "$LOGS"

if [ ! -x "$AST/start.sh" ]; then
  mkdir -p "$ROOT/target/asterisk"
  tar -xJf "$BUNDLE" -C "$ROOT/target/asterisk"
fi

# Free ports: AMI, PJSIP, the carrier, the trunk's outbound contact, agents 101-103,
# SIPp media ports, and an even RTP base for Asterisk (200 ports).
read -r AMI SIP CARRIER TRUNK P101 P102 P103 MC M101 M102 M103 <<<"$(python3 - <<'PY'
import socket
ports = []
socks = []
while len(ports) < 11:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    p = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", p))
    except OSError:
        u.close(); continue
    socks += [u, t]; ports.append(p)
print(*ports)
PY
)"
RTP=$(( (RANDOM % 900) * 20 + 40000 ))

RUN=$(mktemp -d /tmp/ringside-ast.XXXXXX)
CONF=$RUN/conf; STATE=$RUN/state
cp -r "$SHARED/asterisk/conf" "$CONF"; chmod -R u+w "$CONF"
sed -i "s/^port = 5038/port = $AMI/" "$CONF/manager.conf"
sed -i -e "s/^bind = 127.0.0.1:5062/bind = 127.0.0.1:$SIP/" \
       -e "s/127.0.0.1:6101/127.0.0.1:$P101/" -e "s/127.0.0.1:6102/127.0.0.1:$P102/" \
       -e "s/127.0.0.1:6103/127.0.0.1:$P103/" -e "s/127.0.0.1:6200/127.0.0.1:$TRUNK/" \
       -e "s/127.0.0.1:5070/127.0.0.1:$CARRIER/" "$CONF/pjsip.conf"
sed -i -e "s/^rtpstart = .*/rtpstart = $RTP/" -e "s/^rtpend = .*/rtpend = $((RTP + 199))/" "$CONF/rtp.conf"
# the full log is the run's record of what Asterisk did
printf '[logfiles]\nfull => notice,warning,error,verbose,dtmf\n' > "$CONF/logger.conf"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$STATE/run/asterisk.pid" ]; then
    "$STATE/cli" "core stop now" >/dev/null 2>&1 || kill "$(cat "$STATE/run/asterisk.pid")" 2>/dev/null || true
  fi
  cp "$STATE/log/full" "$LOGS/asterisk-full.log" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT

"$AST/start.sh" "$CONF" "$STATE" >"$LOGS/asterisk-start.log" 2>&1
for _ in $(seq 100); do "$STATE/cli" "core waitfullybooted" >/dev/null 2>&1 && break; sleep 0.1; done

python3 "$ROOT/sip/ami_tap.py" 127.0.0.1 "$AMI" crm crmsecret "$OUT" &
TAP=$!
for _ in $(seq 100); do grep -q "Authentication accepted" "$OUT.ami" 2>/dev/null && break; sleep 0.1; done

# agent EXT SCENARIO: a phone answering on the agent's contact port
agent() {
  local ext=$1 sc=$2 port media
  eval "port=\$P$ext; media=\$M$ext"
  (cd "$SC" && exec sipp -sf "$sc.xml" -s "$ext" -i 127.0.0.1 -p "$port" -mi 127.0.0.1 -mp "$media" -m 1 -aa \
    -nostdin -trace_err -trace_msg -message_file "$LOGS/sipp-$ext.msg" -error_file "$LOGS/sipp-$ext.err" \
    >"$LOGS/sipp-$ext.out" 2>&1) &
  AGENTS+=($!); PIDS+=($!)
}
# carrier DID NUMBER NAME: the outside caller, waits until the PBX hangs up
carrier() {
  sipp "127.0.0.1:$SIP" -sf "$SC/carrier.xml" -s "$1" -key caller_num "$2" -key caller_name "$3" \
    -i 127.0.0.1 -p "$CARRIER" -mi 127.0.0.1 -mp "$MC" -m 1 -aa -nostdin \
    -trace_err -trace_msg -message_file "$LOGS/sipp-carrier.msg" -error_file "$LOGS/sipp-carrier.err" \
    >"$LOGS/sipp-carrier.out" 2>&1
}

case_attended_transfer() {   # 101 answers, *2 102, consults, hangs up: the caller goes to 102
  agent 101 agent_attended_transferer; agent 102 agent_answer_hangup_12s
  carrier 74957654321 +4930123456 "Hans Mueller"
}
case_blind_transfer() {      # 101 answers, #1 102: the caller rings 102, who answers
  agent 101 agent_blind_transferer; agent 102 agent_answer_hangup_6s
  carrier 74957654321 +4930123456 "Hans Mueller"
}
case_attended_no_answer() { # 101 presses *2 102, 102 never answers: 101 gets the caller back
  agent 101 agent_attended_abandoned; agent 102 agent_ring_unanswered
  carrier 74957654321 +4930123456 "Hans Mueller"
}
case_hold() {                # 101 answers, holds the caller 4 s, takes them back, hangs up
  agent 101 agent_hold_unhold
  carrier 74957654321 +4930123456 "Hans Mueller"
}

AGENTS=()
sleep 0.5
"case_$CASE"
rc=0
for a in "${AGENTS[@]}"; do wait "$a" || rc=1; done
sleep 1   # the last Hangup/Cdr events
kill "$TAP"; wait "$TAP" || true
exit $rc
