#!/bin/sh
# Regenerates the agents' SIPp scenarios in sip/scenarios/ (see agent_scenario.py).
set -eu
cd "$(dirname "$0")/scenarios"
g() { name=$1; shift; python3 ../agent_scenario.py "$name" "$@" > "agent_$name.xml"; }
g answer_hangup_12s   ring 2000 wait 12000 bye
g answer_hangup_6s    ring 2000 wait 6000 bye
g attended_transferer ring 2000 wait 3000 dtmf '*2' wait 1000 dtmf 102 wait 8000 bye
g blind_transferer    ring 2000 wait 3000 dtmf '#1' wait 1000 dtmf 102 await_bye
g hold_unhold         ring 2000 wait 3000 hold wait 4000 unhold wait 3000 bye
g ring_unanswered     ring_unanswered
g attended_abandoned  ring 2000 wait 3000 dtmf '*2' wait 1000 dtmf 102 wait 20000 bye
g busy                busy
g answer_hangup_3s    ring 500 wait 3000 bye
g answer_await_bye    ring 1000 await_bye
