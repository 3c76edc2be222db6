#!/usr/bin/env python3
"""Turns a recording kept as a JSON list of AMI events (one object per
event, header names as keys, as the cacofonisk project stores its Asterisk 13
recordings) into the transcript format of tests/fixtures/ami/: NAME.ami (the
byte stream Asterisk would have sent, CRLF, `Event:` first, then the other
headers in the order of the object) and NAME.times (`<ns> <byte offset>` per
message).

Such recordings carry no arrival times. A channel's Uniqueid is
`[SystemName-]EPOCH.SEQ`, EPOCH being the second the channel was made, so a
message's time is taken as the newest channel-creation second it names (never
going back), plus 1 ms per message to keep the order: rings and answers keep
roughly their recorded seconds, but the length of a talk (which ends with a
Hangup naming old channels) is not known.

usage: events_json_to_ami.py IN.json OUT_BASENAME [BANNER]
"""
import json
import re
import sys

UID = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")


def epoch_of(event):
    best = None
    for k, v in event.items():
        if not (k.endswith("Uniqueid") or k.endswith("Linkedid")) or not isinstance(v, str):
            continue
        m = UID.search(v)
        if m:
            t = int(m.group(1))
            best = t if best is None else max(best, t)
    return best


def main():
    src, out = sys.argv[1], sys.argv[2]
    banner = sys.argv[3] if len(sys.argv) > 3 else "Asterisk Call Manager/2.10.3"
    events = json.load(open(src, encoding="utf-8"))
    ami = bytearray((banner + "\r\n").encode())
    times = ["0 0"]
    start = None
    now_s = None
    ns = 0
    for i, ev in enumerate(events):
        e = epoch_of(ev)
        if e is not None:
            if start is None:
                start = e
            now_s = e if now_s is None else max(now_s, e)
        base = 0 if now_s is None else (now_s - start) * 1_000_000_000
        ns = max(ns + 1_000_000, base + 1_000_000)
        times.append(f"{ns} {len(ami)}")
        lines = []
        for k in ("Event", "Privilege"):
            if k in ev:
                lines.append(f"{k}: {ev[k]}")
        for k, v in ev.items():
            if k in ("Event", "Privilege", "content"):
                continue
            lines.append(f"{k}: {v}")
        ami += ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    open(out + ".ami", "wb").write(ami)
    open(out + ".times", "w").write("\n".join(times) + "\n")


if __name__ == "__main__":
    main()
