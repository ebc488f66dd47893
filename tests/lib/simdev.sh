#!/bin/bash
# SPDX-License-Identifier: MIT
#
# simdev.sh DIR [SLOT_SIZE]: makes a simulated device out of files in DIR
#   DIR/tandem.conf        runtime configuration
#   DIR/keys/              keyring (public key); DIR/signing/ the private key
#   DIR/slotA.img slotB.img  file-backed slots of SLOT_SIZE (default 64M)
#   DIR/env/uboot.env, uboot-redund.env  a redundant U-Boot environment made
#                          with mkenvimage -r, read and written by libubootenv
#   DIR/fw_env.config      pointing at both copies
#   DIR/grubenv            with SIM_BOOTLOADER=grub instead of the above: a
#                          GRUB environment block (grub-editenv), the
#                          configuration's "grub" backend
#   DIR/cmdline            kernel command line with tandem.slot=A
#   DIR/boot_id            this boot's ID (a test "reboots" by changing it)
#   DIR/health.d/          health checks (none at first)
#   DIR/state/             state directory
# Sourced or run; prints nothing on success. Needs build/tandem-image.
set -euo pipefail

dir=${1:?usage: simdev.sh DIR [SLOT_SIZE]}
size=${2:-64M}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
img_tool=${TANDEM_IMAGE:-$top/build/tandem-image}
env_size=0x4000

mkdir -p "$dir"/keys "$dir"/signing "$dir"/state "$dir"/env
dir=$(cd "$dir" && pwd)
[ -f "$dir/signing/key.pem" ] ||
	"$img_tool" keygen --out "$dir/signing/key.pem" --pub "$dir/keys/release.pem"
truncate -s "$size" "$dir/slotA.img" "$dir/slotB.img"

# The environment U-Boot would have: our boot variables plus a bootcmd.
cat >"$dir/env/env.txt" <<ENV
bootcmd=run tandem_boot
BOOT_ORDER=A B
BOOT_A_LEFT=3
BOOT_B_LEFT=3
ENV
mkenvimage -r -s "$env_size" -o "$dir/env/uboot.env" "$dir/env/env.txt"
mkenvimage -r -s "$env_size" -o "$dir/env/uboot-redund.env" "$dir/env/env.txt"
cat >"$dir/fw_env.config" <<CFG
# device                  offset  size
$dir/env/uboot.env        0x0     $env_size
$dir/env/uboot-redund.env 0x0     $env_size
CFG
bootloader="{\"type\": \"uboot\", \"env_config\": \"$dir/fw_env.config\"}"
if [ "${SIM_BOOTLOADER:-uboot}" = grub ]; then
	# What a factory makes with grub-editenv; the updater reads and writes
	# it itself, tests/lib/grubenv.py boots it as grub.cfg would.
	rm -rf "$dir/env" "$dir/fw_env.config"
	rm -f "$dir/grubenv"
	grub-editenv "$dir/grubenv" create
	grub-editenv "$dir/grubenv" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=1 B_TRY=0
	bootloader="{\"type\": \"grub\", \"grubenv\": \"$dir/grubenv\"}"
fi
echo "console=ttyS0 root=/dev/mmcblk0p2 tandem.slot=A" >"$dir/cmdline"
cat /proc/sys/kernel/random/uuid >"$dir/boot_id"
mkdir -p "$dir/health.d"
cat >"$dir/tandem.conf" <<CONF
{
	"compatible": "${SIM_COMPATIBLE:-sim}",
	"keyring": "$dir/keys",
	"state_dir": "$dir/state",
	"cmdline": "$dir/cmdline",
	"boot_id": "$dir/boot_id",
	"health_dir": "$dir/health.d",
	"bootloader": $bootloader,
	"slots": {"A": "$dir/slotA.img", "B": "$dir/slotB.img"},
	"boot_tries": 3
}
CONF
