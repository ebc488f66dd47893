#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""timed.py [--match REGEX] [--timeout S] [--log FILE] -- CMD...

Runs CMD on a pseudo-terminal (so that it line-buffers its log as on a
console) and prints one JSON object: seconds until the first output line
matching REGEX (match_s; null when none matched), seconds until it exited
(exit_s), its exit status, and its resource usage from wait4 (user and
system CPU seconds and the peak RSS in KiB, which covers the process and
the descendants it waited for, like /usr/bin/time).

Why: SWUpdate's client keeps polling for up to a second after the update
is done; the honest install time is when it logs success. CMD runs in its
own session, and on timeout the whole session is killed, so that a helper
it forked cannot linger."""
import argparse
import json
import os
import pty
import re
import select
import signal
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--match")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    pat = re.compile(a.match.encode()) if a.match else None

    t0 = time.monotonic()
    pid, fd = pty.fork()  # the child is a session leader on the new pty
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    match_s = None
    buf = b""
    status = ru = None
    timed_out = False
    with open(a.log, "wb") as log:
        while True:
            left = a.timeout - (time.monotonic() - t0)
            if left <= 0:
                timed_out = True
                break
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if fd in r:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the pty
                    data = b""
                if not data:
                    break
                now = time.monotonic()
                log.write(data)
                buf += data
                lines = buf.split(b"\n")
                buf = lines.pop()
                if pat and match_s is None and any(pat.search(x) for x in lines):
                    match_s = now - t0
                if len(buf) > 65536:
                    buf = buf[-4096:]
            else:
                w = os.wait4(pid, os.WNOHANG)
                if w[0] == pid:
                    status, ru = w[1], w[2]
                    break
        if pat and match_s is None and buf and pat.search(buf):
            match_s = time.monotonic() - t0
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    if status is None:
        _, status, ru = os.wait4(pid, 0)
    exit_s = time.monotonic() - t0
    # The session may hold helpers that outlived the main process.
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        pass
    os.close(fd)
    rc = os.waitstatus_to_exitcode(status)
    print(json.dumps(dict(match_s=match_s, exit_s=round(exit_s, 4), rc=rc, timed_out=timed_out,
                          user_s=round(ru.ru_utime, 3), sys_s=round(ru.ru_stime, 3),
                          maxrss_kib=ru.ru_maxrss)))
    return 0 if rc == 0 and not timed_out else 1


if __name__ == "__main__":
    sys.exit(main())
