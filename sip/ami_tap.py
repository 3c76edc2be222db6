#!/usr/bin/env python3
"""Records a raw AMI stream byte for byte, the way tests/fixtures/ami/ keeps it.

usage: ami_tap.py HOST PORT USER SECRET OUT_PREFIX

Writes OUT_PREFIX.ami (every byte received, from the banner on) and
OUT_PREFIX.times (`<ns since capture start> <byte offset>` per message: the
banner line, then each CRLF CRLF-terminated message, timed at the arrival of
the chunk that carried its first byte). Logs in with `Events: on` and records
until SIGTERM/SIGINT or until Asterisk closes the connection.
"""
import signal
import socket
import sys
import time


def main():
    host, port, user, secret, out = sys.argv[1:6]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.create_connection((host, int(port)))
    s.settimeout(0.2)
    t0 = time.monotonic_ns()
    ami = open(out + ".ami", "wb")
    times = open(out + ".times", "w")
    total = 0          # bytes received so far
    msg_start = 0      # offset of the message being read
    timed = False      # whether msg_start has its line in .times
    buf = b""          # bytes of that message received so far
    banner = True
    while not stop:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        now = time.monotonic_ns() - t0
        ami.write(chunk)
        ami.flush()
        total += len(chunk)
        buf += chunk
        while True:
            if not timed and msg_start < total:
                times.write(f"{now} {msg_start}\n")
                timed = True
            sep = b"\r\n" if banner else b"\r\n\r\n"
            i = buf.find(sep)
            if i < 0:
                break
            buf = buf[i + len(sep):]
            msg_start = total - len(buf)
            timed = False
            if banner:
                banner = False
                s.sendall(
                    f"Action: Login\r\nActionID: login-1\r\nUsername: {user}\r\n"
                    f"Secret: {secret}\r\nEvents: on\r\n\r\n".encode()
                )
        times.flush()
    ami.close()
    times.close()


if __name__ == "__main__":
    main()
