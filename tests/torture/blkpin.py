# SPDX-License-Identifier: MIT
"""Keeps one page of a block device in the page cache, as another reader
that has the device mapped would (tests/torture/README.md, "Slots on
loop devices").

    blkpin.py DEV READY   pins the page at PIN_OFFSET of DEV, creates the
                          file READY, and holds the pin until killed

tandem's slot writer drops a window's pages from the cache after its sync
and reads the window back through the cache only if none stayed there
(mincore); a page someone else holds sends the window to O_DIRECT reads
instead. With one page of a slot pinned, the torture test takes that
path on the slot; on the other slot, the buffered one. The mapping is
read-only and never touched: the page follows every write to the device
(the same page-cache page), and only a BLKZEROOUT over it would drop it
(the pinned offset lies outside the images' zero run).
"""
import ctypes
import os
import signal
import sys

PIN_OFFSET = 768 * 1024  # text part of the torture images, after their zero run
PAGE = 4096


def pin(dev, offset=PIN_OFFSET):
    """Maps the page at offset of dev read-only and locks it in memory.
    Returns the descriptor; the pin lasts as long as the process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    addr = libc.mmap(None, PAGE, 1, 1, fd, offset)  # PROT_READ, MAP_SHARED
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"mmap {dev}")
    # mlock faults the page in and keeps it there; a mapped page alone
    # already survives POSIX_FADV_DONTNEED, the lock survives memory
    # pressure too.
    if libc.mlock(addr, PAGE) != 0:
        raise OSError(ctypes.get_errno(), f"mlock {dev}")
    return fd


def main():
    dev, ready = sys.argv[1], sys.argv[2]
    pin(dev)
    open(ready, "w").close()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
