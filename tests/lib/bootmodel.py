#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What Tandem's U-Boot script does at power-on, as a model for the tests.

    bootmodel.py boot DIR        one power-on of the simulated device in DIR
                                 (tests/lib/simdev.sh): reads its environment
                                 with fw_printenv, chooses the slot, stores the
                                 counters in one fw_setenv -s (as the script's
                                 one save), writes DIR/cmdline (tandem.slot=)
                                 and a new DIR/boot_id; prints the slot
    bootmodel.py select VAR=VALUE...
                                 the choice for these variables (absent ones
                                 unset), printed as the script prints it:
                                 "slot=X BOOT_ORDER=.. BOOT_A_LEFT=.. BOOT_B_LEFT=.."

The model follows bootloader-hooks/uboot/select.cmd line by line, with
U-Boot's own semantics where they matter: `test -gt/-eq` compare
numbers with U-Boot's radix rules (strtol() below), hush splits
BOOT_ORDER on blanks, an empty variable is an unset one. tests/e2e checks
it against the real script on Debian's U-Boot for a table of environments
(sc_boot_model), so the torture and integration tests that reboot with it
boot as a device would.
"""
import os
import re
import subprocess
import sys
import tempfile
import uuid

DEFAULT_ORDER = "A B"  # board-configs/*/boot.conf: DEFAULT_ORDER
TRIES_DEFAULT = 3      # ... TRIES_DEFAULT


def strtol(s):
    """A number as `test -gt/-eq` reads it on Debian's U-Boot 2023.01, as
    measured there (arm64 and x86 alike): an optional '-' (no '+', no
    leading blank), then "0x" for hex, a leading 0 for octal, else
    decimal; the leading digits of that base, 0 for none. So "010" is 8,
    "08" is 0, "0x10" is 16, "3x" is 3, "+2" and " 2" are 0."""
    m = re.match(r"(-?)(?:0[xX]([0-9a-fA-F]*)|(0[0-7]*)|([0-9]*))", s or "")
    sign, hexa, octal, dec = m.groups()
    if hexa is not None:
        n = int(hexa or "0", 16)
    elif octal is not None:
        n = int(octal, 8)
    else:
        n = int(dec or "0")
    return -n if sign else n


def select(env):
    """env: the variables before the script (missing: unset). Returns the
    chosen slot and the variables after it."""
    e = {k: v for k, v in env.items() if v != ""}
    e.setdefault("BOOT_ORDER", DEFAULT_ORDER)
    e.setdefault("BOOT_A_LEFT", str(TRIES_DEFAULT))
    e.setdefault("BOOT_B_LEFT", str(TRIES_DEFAULT))
    order = e["BOOT_ORDER"].split()
    slot = next((s for s in order if s in ("A", "B") and strtol(e[f"BOOT_{s}_LEFT"]) > 0), None)
    if slot is None:
        e["BOOT_A_LEFT"] = e["BOOT_B_LEFT"] = str(TRIES_DEFAULT)
        slot = next((s for s in order if s in ("A", "B")), None)
    if slot is None:
        e["BOOT_ORDER"] = DEFAULT_ORDER
        slot = "A"
    left = strtol(e[f"BOOT_{slot}_LEFT"])
    e[f"BOOT_{slot}_LEFT"] = str(9 if left >= 10 else max(left - 1, 0))
    return slot, e


def show(slot, e):
    return (f"slot={slot} BOOT_ORDER={e['BOOT_ORDER']} BOOT_A_LEFT={e['BOOT_A_LEFT']} "
            f"BOOT_B_LEFT={e['BOOT_B_LEFT']}")


def boot(d):
    if os.path.exists(os.path.join(d, "grubenv")):
        # A GRUB device (simdev.sh, SIM_BOOTLOADER=grub): the same choice,
        # on grub.cfg's variables.
        import grubenv
        return grubenv.boot(d)
    conf = os.path.join(d, "fw_env.config")
    # Bounded: libubootenv takes one machine-wide lock
    # (/run/lock/fw_printenv.lock) whatever the configuration, and a
    # process elsewhere that leaks it would hang a boot for good.
    out = subprocess.run(["fw_printenv", "-c", conf], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    env = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    slot, after = select(env)
    changed = {k: v for k, v in after.items()
               if k in ("BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT") and env.get(k) != v}
    if changed:
        with tempfile.NamedTemporaryFile("w", dir=d, suffix=".env", delete=False) as f:
            f.write("".join(f"{k}={v}\n" for k, v in changed.items()))
        try:
            subprocess.run(["fw_setenv", "-c", conf, "-s", f.name], check=True, timeout=60)
        finally:
            os.unlink(f.name)
    return powered_on(d, slot)


def powered_on(d, slot):
    """What the kernel then sees on the device in d: tandem.slot= on its
    command line, a new boot ID. Returns slot."""
    with open(os.path.join(d, "cmdline"), "w") as f:
        f.write(f"console=ttyS0 tandem.slot={slot}\n")
    with open(os.path.join(d, "boot_id"), "w") as f:
        f.write(f"{uuid.uuid4()}\n")
    return slot


def main(argv):
    if len(argv) == 3 and argv[1] == "boot":
        print(boot(argv[2]))
    elif len(argv) >= 2 and argv[1] == "select":
        env = dict(a.split("=", 1) for a in argv[2:])
        print(show(*select(env)))
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main(sys.argv)
