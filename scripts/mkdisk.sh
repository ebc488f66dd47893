#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds a board's flashable factory disk with Debian's genimage from
# board-configs/<board>/genimage.cfg: boot partition with boot.scr and the
# initialised U-Boot env, slot A = ROOTFS, slot B empty, data partition.
#
# usage: scripts/mkdisk.sh BOARD ROOTFS.img OUT.img
# The env starts as the factory state of docs/boot-protocol.md:
# BOOT_ORDER="A B", both counters full; copy 0 valid with sequence 1,
# copy 1 zeroed (invalid), which U-Boot and libubootenv both accept.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
board=${1:?usage: mkdisk.sh BOARD ROOTFS.img OUT.img}
rootfs=${2:?usage: mkdisk.sh BOARD ROOTFS.img OUT.img}
out=${3:?usage: mkdisk.sh BOARD ROOTFS.img OUT.img}
bdir=$top/board-configs/$board
cfg=$bdir/genimage.cfg
[ -f "$cfg" ] || { echo "mkdisk: $cfg: no genimage configuration for board $board" >&2; exit 1; }
[ -f "$rootfs" ] || { echo "mkdisk: $rootfs: no such rootfs image" >&2; exit 1; }

ENV_SIZE=0x4000
TRIES_DEFAULT=3
DEFAULT_ORDER="A B"
ENV_FILE0=uboot.env
ENV_FILE1=uboot-redund.env
# shellcheck source=/dev/null
. "$bdir/boot.conf"
if [ "${ENV_STORAGE:-file}" != file ]; then
	echo "mkdisk: $board: only ENV_STORAGE=file boards are supported" >&2
	exit 1
fi

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/in" "$w/out" "$w/tmp" "$w/root"
"$top/bootloader-hooks/uboot/mkbootscr.sh" "$bdir" "$w/in/boot.scr" >/dev/null
printf 'BOOT_ORDER=%s\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=%s\n' \
	"$DEFAULT_ORDER" "$TRIES_DEFAULT" "$TRIES_DEFAULT" >"$w/env.txt"
mkenvimage -r -s "$ENV_SIZE" -o "$w/in/$ENV_FILE0" "$w/env.txt"
# Flags byte (outside the CRC) = sequence 1.
printf '\001' | dd of="$w/in/$ENV_FILE0" bs=1 seek=4 conv=notrunc status=none
head -c $((ENV_SIZE)) /dev/zero >"$w/in/$ENV_FILE1"
# genimage takes input by name; a symlink avoids copying the rootfs.
ln -s "$(realpath "$rootfs")" "$w/in/rootfs-a.ext4"

genimage --config "$cfg" --inputpath "$w/in" --outputpath "$w/out" \
	--tmppath "$w/tmp" --rootpath "$w/root" >"$w/log" 2>&1 ||
	{ cat "$w/log" >&2; echo "mkdisk: genimage failed" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
mv "$w/out/disk.img" "$out"
echo "  DISK    $out"
