# SPDX-License-Identifier: MIT
# Sourced by tests that reboot a simulated device (tests/lib/simdev.sh).
#
# sim_boot DIR: one power-on of the device in DIR, as the U-Boot script in
# bootloader-hooks/uboot does it (tests/lib/bootmodel.py, the one model
# of it, checked against the real script on U-Boot by tests/e2e): the
# first slot of BOOT_ORDER with tries left is chosen and its counter
# decremented before it boots; when every counter is spent, both are
# reset and the first slot of the order boots. Writes the kernel command
# line (tandem.slot=) and a new boot ID, and prints the slot.
SIMBOOT_MODEL=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootmodel.py
sim_boot() {
	python3 "$SIMBOOT_MODEL" boot "$1"
}
