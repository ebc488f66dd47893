#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A serial "wire" between two pseudo-terminals, for the serial tests.

Pseudo-terminals have no baud rate: bytes pass as fast as the kernel
copies them. This relay sits between two socat pty pairs

    tandem-image send <-> HOST ==socat== A  <relay>  B ==socat== DEV <-> tandem receive

and moves bytes in both directions at the rate of a real 8N1 line
(baud/10 bytes per second). Reading only as fast as the line would carry
the bytes makes the writer block as it would on a UART. It can also
damage the traffic: flip bits, drop bytes, and pull the cable (for a
while, forward nothing and discard what is sent, as a wire that is
unplugged does). Faults are placed by a seeded random generator, so a run
can be repeated. On SIGTERM or SIGINT it writes counters (JSON) to
--stats, which the tests use to prove the faults really happened.
"""
import argparse
import json
import os
import random
import signal
import sys
import termios
import time
import tty

TICK = 0.002


def open_raw(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    return fd


class Direction:
    def __init__(self, name, src, dst, rate, args, rng):
        self.name, self.src, self.dst, self.rate = name, src, dst, rate
        self.rng = rng
        self.flip_rate, self.drop_rate = args.flip_rate, args.drop_rate
        self.allowance = 0.0
        self.pending = bytearray()
        self.moved = 0          # bytes taken off the source
        self.delivered = 0      # bytes written to the destination
        self.discarded = 0      # lost to a pulled cable
        self.flips = self.drops = 0
        self.next_flip = self._gap(self.flip_rate)
        self.next_drop = self._gap(self.drop_rate)

    def _gap(self, p):
        # Geometric gaps: the next faulty byte, without a draw per byte.
        if p <= 0:
            return float("inf")
        return self.moved + 1 + int(self.rng.expovariate(p))

    def damage(self, data):
        out = bytearray()
        base = self.moved - len(data)
        for i, b in enumerate(data):
            pos = base + i + 1
            if pos >= self.next_drop:
                self.drops += 1
                self.next_drop = pos + 1 + int(self.rng.expovariate(self.drop_rate))
                continue
            if pos >= self.next_flip:
                b ^= 1 << self.rng.randrange(8)
                self.flips += 1
                self.next_flip = pos + 1 + int(self.rng.expovariate(self.flip_rate))
            out.append(b)
        return out

    def step(self, dt, pulled):
        # A line carries at most rate bytes per second; an idle line
        # does not save up capacity (at most 10 ms worth).
        self.allowance = min(self.allowance + dt * self.rate, self.rate * 0.01 + 16)
        n = int(self.allowance)
        if n <= 0:
            return
        try:
            data = os.read(self.src, n)
        except BlockingIOError:
            data = b""
        except OSError:
            data = b""  # the far end is closed for a moment
        if not data:
            return
        self.allowance -= len(data)
        self.moved += len(data)
        if pulled:
            self.discarded += len(data)
            return
        if self.flip_rate or self.drop_rate:
            # Only the fault positions are visited when there are few.
            if self.next_flip > self.moved and self.next_drop > self.moved:
                self.pending += data
            else:
                self.pending += self.damage(data)
        else:
            self.pending += data
        self.flush()

    def flush(self):
        while self.pending:
            try:
                n = os.write(self.dst, self.pending)
            except (BlockingIOError, OSError):
                return
            self.delivered += n
            del self.pending[:n]

    def stats(self):
        return {"moved": self.moved, "delivered": self.delivered,
                "discarded": self.discarded, "flips": self.flips, "drops": self.drops}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="pty on the host's side")
    ap.add_argument("--b", required=True, help="pty on the device's side")
    ap.add_argument("--baud", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flip-rate", type=float, default=0.0,
                    help="probability that a byte gets one bit flipped")
    ap.add_argument("--drop-rate", type=float, default=0.0,
                    help="probability that a byte is lost")
    ap.add_argument("--pull-at", type=int, default=0,
                    help="pull the cable after this many host->device bytes")
    ap.add_argument("--pull-for", type=float, default=0.0, help="seconds unplugged")
    ap.add_argument("--stats", help="write counters (JSON) here on exit")
    ap.add_argument("--ready", help="create this file once both ptys are open")
    args = ap.parse_args()

    rate = args.baud / 10.0
    a, b = open_raw(args.a), open_raw(args.b)
    fwd = Direction("host->device", a, b, rate, args, random.Random(args.seed))
    rev = Direction("device->host", b, a, rate, args, random.Random(args.seed + 1))
    pulls = []
    pull_until = None
    state = {"run": True}

    def stop(*_):
        state["run"] = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready:
        open(args.ready, "w").close()

    last = time.monotonic()
    while state["run"]:
        time.sleep(TICK)
        now = time.monotonic()
        dt, last = now - last, now
        if args.pull_for and not pulls and fwd.moved >= args.pull_at:
            pull_until = now + args.pull_for
            pulls.append({"at_byte": fwd.moved, "seconds": args.pull_for})
        pulled = pull_until is not None and now < pull_until
        fwd.step(dt, pulled)
        rev.step(dt, pulled)
        fwd.flush()
        rev.flush()

    if args.stats:
        with open(args.stats, "w") as f:
            json.dump({"baud": args.baud, "forward": fwd.stats(),
                       "reverse": rev.stats(), "pulls": pulls}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
