#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drives the recovery steps of docs/bench-guide.md on a U-Boot prompt.

    uboot_loady.py CONSOLE IMAGE PARTITION

CONSOLE is the board's serial console (here a socat pty bridged to QEMU's
serial port), IMAGE the slot image to write, PARTITION the slot's
partition number on virtio 0. The steps, as an engineer types them:

    => loady ${kernel_addr_r}          (then on the host: sb --ymodem IMAGE)
    => crc32 ${kernel_addr_r} ${filesize}
    => part start virtio 0 PARTITION slot_start
    => setexpr slot_blocks ${filesize} + 1ff
    => setexpr slot_blocks ${slot_blocks} / 200
    => virtio write ${kernel_addr_r} ${slot_start} ${slot_blocks}

It checks U-Boot's CRC-32 of what arrived against the image's, and that
the write reports success. The disk itself is compared by the caller after
QEMU exits. Every wait is bounded; exit status 0 only if all steps passed.
"""
import os
import re
import subprocess
import sys
import termios
import time
import tty
import zlib


class Console:
    def __init__(self, path):
        self.path = path
        self.fd = None
        self.buf = b""
        self.log = open(os.environ.get("LOADY_LOG", os.devnull), "ab")
        self.open()

    def open(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)

    def expect(self, pattern, timeout):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            import select
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                data = os.read(self.fd, 4096)
                self.log.write(data)
                self.log.flush()
                self.buf += data
        raise TimeoutError("no %r within %d s; last output: %r" % (pattern, timeout, self.buf[-300:]))

    def command(self, cmd, timeout=20):
        self.buf = b""
        # U-Boot echoes what it reads; type slowly enough for its FIFO.
        for ch in (cmd + "\r").encode():
            os.write(self.fd, bytes([ch]))
            time.sleep(0.002)
        out = self.expect(rb"\n=> ", timeout)
        return self.buf_before(out)

    def buf_before(self, m):
        return m.string[:m.start()].decode("latin-1")


def main():
    con_path, image, part = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(image, "rb").read()
    con = Console(con_path)
    # Interrupt autoboot, or find the prompt after a failed boot.
    end = time.monotonic() + 120
    while True:
        os.write(con.fd, b"\r")
        try:
            con.expect(rb"=> ", 2)
            break
        except TimeoutError:
            if time.monotonic() > end:
                raise
    time.sleep(0.5)
    con.buf = b""
    # loady waits for the sender; U-Boot polls with 'C'.
    for ch in b"loady ${kernel_addr_r}\r":
        os.write(con.fd, bytes([ch]))
        time.sleep(0.002)
    con.expect(rb"Ready for binary \(ymodem\) download", 20)
    # lrzsz's sb on the console, as the engineer's terminal program runs
    # it. Our descriptor stays open (unread) meanwhile: the last close of
    # a pty makes socat end the connection.
    with open(con_path, "r+b", buffering=0) as tty_io:
        t0 = time.monotonic()
        rc = subprocess.call(["sb", "--ymodem", "-q", image], stdin=tty_io, stdout=tty_io,
                             timeout=300)
        secs = time.monotonic() - t0
    if rc != 0:
        print("sb --ymodem failed with status %d" % rc)
        return 1
    con.buf = b""
    m = con.expect(rb"Total Size\s*=\s*0x([0-9a-fA-F]+)\s*=\s*(\d+) Bytes", 30)
    size = int(m.group(2))
    con.expect(rb"=> ", 20)
    if size != len(data):
        print("U-Boot received %d bytes, the image has %d" % (size, len(data)))
        return 1
    out = con.command("crc32 ${kernel_addr_r} ${filesize}")
    m = re.search(r"==> ([0-9a-f]{8})", out)
    want = "%08x" % (zlib.crc32(data) & 0xffffffff)
    if not m or m.group(1) != want:
        print("U-Boot's CRC-32 %s, the image's %s: %r" % (m.group(1) if m else None, want, out))
        return 1
    con.command("part start virtio 0 %s slot_start" % part)
    con.command("setexpr slot_blocks ${filesize} + 1ff")
    con.command("setexpr slot_blocks ${slot_blocks} / 200")
    out = con.command("virtio write ${kernel_addr_r} ${slot_start} ${slot_blocks}", 60)
    if not re.search(r"blocks written: OK", out):
        print("virtio write failed: %r" % out)
        return 1
    print("loady: %d bytes in %.1f s, crc32 %s, written to partition %s" % (size, secs, want, part))
    return 0


if __name__ == "__main__":
    sys.exit(main())
