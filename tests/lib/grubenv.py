#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""GRUB's environment block and grub.cfg's choice, as a model for the
simulated-device tests (torture, integration) of the GRUB backend.

    grubenv.py list FILE      the variables, one name=value a line
    grubenv.py boot DIR       one power-on of the simulated device in DIR
                              as bootloader-hooks/grub/grub.cfg does it

The block: 1024 bytes, "# GRUB Environment Block\\n", then name=value
lines (a backslash escapes the next byte), '#' lines are comments, '#'
fills the rest. parse() is strict where the updater is (a damaged block
raises ValueError); save() rewrites values in place as GRUB's save_env
does (grub_envblk_set: an existing variable is replaced where it is, a
new one appended into the padding, the size never changes).

The choice is the U-Boot model's (bootmodel.select) on the translated
view: tries left of X = TANDEM_BOOT_TRIES - X_TRY when X_OK is 1, else 0,
which is what grub.cfg and the updater's backend (updater/boot/grub.c)
both read. tests/e2e runs the real grub.cfg on GRUB.
"""
import os
import sys

SIZE = 1024
SIG = b"# GRUB Environment Block\n"
OWNED = ("ORDER", "A_OK", "A_TRY", "B_OK", "B_TRY", "TANDEM_BOOT_TRIES")


def _lines(block):
    """(name, value, start, end) of each variable line; end: its newline."""
    if len(block) != SIZE:
        raise ValueError(f"{len(block)} bytes, not {SIZE}")
    if not block.startswith(SIG):
        raise ValueError("no GRUB header")
    p, out = len(SIG), []
    while p < SIZE:
        if block[p:p + 1] == b"#":
            n = block.find(b"\n", p)
            p = SIZE if n < 0 else n + 1
            continue
        q, val, eq = p, bytearray(), -1
        while q < SIZE and block[q:q + 1] != b"\n":
            c = block[q:q + 1]
            if c == b"\0":
                raise ValueError(f"NUL byte at {q}")
            if c == b"\\" and q + 1 < SIZE:
                q += 1
                if eq >= 0:
                    val += block[q:q + 1]
            elif c == b"=" and eq < 0:
                eq = q
            elif eq >= 0:
                val += c
            q += 1
        if q >= SIZE:
            raise ValueError(f"line at {p} has no end")
        if eq <= p:
            raise ValueError(f"line at {p} is not name=value")
        out.append((block[p:eq].decode("latin-1"), val.decode("latin-1"), p, q))
        p = q + 1
    return out


def parse(path):
    with open(path, "rb") as f:
        block = f.read()
    env = {}
    for name, value, _, _ in _lines(block):
        if name in env and name in OWNED:
            raise ValueError(f"{name} set twice")
        env.setdefault(name, value)
    return env


def save(path, updates):
    """GRUB's save_env of these name=value pairs (one-character values
    replace one-character values in place), one write of the block."""
    with open(path, "r+b") as f:
        block = bytearray(f.read())
        for name, value in updates.items():
            line = f"{name}={value}\n".encode()
            hit = next((ln for ln in _lines(bytes(block)) if ln[0] == name), None)
            if hit:
                _, _, s, e = hit
                block[s:e + 1] = line
            else:
                end = len(block.rstrip(b"#"))
                block[end:end] = line
            if len(block) > SIZE:
                if block[SIZE:].strip(b"#"):
                    raise ValueError("environment block too small")
            block = block[:SIZE] + b"#" * (SIZE - len(block))
        f.seek(0)
        f.write(block)


def view(env):
    """The U-Boot model's variables for this block (bootmodel.select)."""
    try:
        top = int(env.get("TANDEM_BOOT_TRIES", "3"))
    except ValueError:
        top = 0
    v = {k: env[k] for k in env if k.startswith("TANDEM_")}
    v["BOOT_ORDER"] = env.get("ORDER", "A B")
    for s in "AB":
        ok, t = env.get(f"{s}_OK", "1"), env.get(f"{s}_TRY", "0")
        v[f"BOOT_{s}_LEFT"] = str(top - int(t)) if ok == "1" and t.isdigit() and \
            int(t) < top else "0"
    return v


def boot(d):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bootmodel
    path = os.path.join(d, "grubenv")
    env = parse(path)
    slot, after = bootmodel.select(view(env))
    top = env.get("TANDEM_BOOT_TRIES", "3")
    new = {}
    for s in "AB":
        left = int(after[f"BOOT_{s}_LEFT"])
        before = int(view(env)[f"BOOT_{s}_LEFT"])
        if left == before:
            continue  # not the chosen slot, no reset: grub.cfg saves the same value
        # the reset (both slots full) and the chosen slot's try
        new[f"{s}_OK"] = "1"
        new[f"{s}_TRY"] = str(int(top) - left)
    # grub.cfg saves all four; unchanged ones are the same characters
    for s in "AB":
        new.setdefault(f"{s}_OK", env.get(f"{s}_OK", "1"))
        new.setdefault(f"{s}_TRY", env.get(f"{s}_TRY", "0"))
    save(path, new)
    return bootmodel.powered_on(d, slot)


def main(argv):
    if len(argv) == 3 and argv[1] == "list":
        for k, v in parse(argv[2]).items():
            print(f"{k}={v}")
    elif len(argv) == 3 and argv[1] == "boot":
        print(boot(argv[2]))
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main(sys.argv)
