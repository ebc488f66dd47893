#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/mkdisk.sh (make disk): the genimage-made factory disk has the
# board's layout.sfdisk partitions, slot A byte-identical to the rootfs,
# an empty slot B, and a factory env libubootenv reads. Bad input is one
# error line and no output file. Booting it is tests/e2e's sc_genimage_disk.
. "$(dirname "$0")/lib.sh"

MKDISK=$TOP/scripts/mkdisk.sh

rootfs() { # rootfs OUT RELEASE
	rm -rf "$WORK/r.d" && mkdir -p "$WORK/r.d/etc" || fail "cannot make $WORK/r.d"
	echo "$2" >"$WORK/r.d/etc/tandem-release"
	mkfs.ext4 -q -F -d "$WORK/r.d" "$1" 65536k >/dev/null
}

# part N FIELD: start or size (sectors) of partition N in an sfdisk dump
part() { sfdisk -d "$1" | sed -n "s/.*img$2 : start= *\([0-9]*\), size= *\([0-9]*\).*/\\$3/p"; }

check_board() {
	local b=$1 disk=$WORK/$1.img n lay s e
	rootfs "$WORK/a.ext4" "factory-$b"
	"$MKDISK" "$b" "$WORK/a.ext4" "$disk" >/dev/null
	# Same partitions as layout.sfdisk, which the boot script's device
	# numbers and the guest's root= follow.
	n=1
	grep '^start=' "$TOP/board-configs/$b/layout.sfdisk" | while read -r lay; do
		s=$(echo "$lay" | sed -n 's/^start=\([0-9]*\),.*/\1/p')
		e=$(echo "$lay" | sed -n 's/.*size=\([0-9]*\),.*/\1/p')
		[ "$(part "$disk" $n 1)" = "$s" ] || fail "$b partition $n start" || exit 1
		[ "$(part "$disk" $n 2)" = "$e" ] || fail "$b partition $n size" || exit 1
		n=$((n + 1))
	done
	[ "$(sfdisk -d "$disk" | grep -c '^/')" = 4 ] || fail "$b: not 4 partitions"
	s=$(part "$disk" 2 1)
	dd if="$disk" bs=512 skip="$s" count=131072 status=none | cmp -s - "$WORK/a.ext4" ||
		fail "$b: slot A differs from the rootfs"
	s=$(part "$disk" 3 1)
	[ "$(dd if="$disk" bs=512 skip="$s" count=131072 status=none | tr -d '\0' | wc -c)" = 0 ] ||
		fail "$b: slot B not empty"
	mkdir -p "$WORK/env"
	mcopy -o -i "$disk@@$(($(part "$disk" 1 1) * 512))" ::/uboot.env ::/uboot-redund.env ::/boot.scr "$WORK/env/"
	printf '%s 0x0 0x4000\n' "$WORK/env/uboot.env" "$WORK/env/uboot-redund.env" >"$WORK/env/fw.cfg"
	[ "$(fw_printenv -c "$WORK/env/fw.cfg" | sort | tr '\n' ' ')" = \
		"BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B " ] || fail "$b: factory env"
	# Copy 0 has sequence 1, copy 1 is invalid (zeroes).
	[ "$(od -An -tu1 -j4 -N1 "$WORK/env/uboot.env" | tr -d ' ')" = 1 ] || fail "$b: env sequence"
	[ "$(tr -d '\0' <"$WORK/env/uboot-redund.env" | wc -c)" = 0 ] || fail "$b: redundant copy not zeroed"
	mkimage -l "$WORK/env/boot.scr" | grep -q Script || fail "$b: boot.scr is not a U-Boot script"
	mdir -i "$disk@@$(($(part "$disk" 4 1) * 512))" ::/ >/dev/null || fail "$b: data partition not FAT"
}

test_disk_qemu_x86_64() { check_board qemu-x86_64; }
test_disk_qemu_arm64() { check_board qemu-arm64; }

test_disk_refuses_bad_input() {
	local err
	rootfs "$WORK/a.ext4" x
	err=$("$MKDISK" beaglebone-black "$WORK/a.ext4" "$WORK/bb.img" 2>&1 >/dev/null) && fail "saveenv board accepted"
	[ "$(echo "$err" | wc -l)" = 1 ] || fail "not one error line: $err"
	"$MKDISK" nosuchboard "$WORK/a.ext4" "$WORK/x.img" 2>/dev/null && fail "unknown board accepted"
	"$MKDISK" qemu-arm64 "$WORK/missing.ext4" "$WORK/x.img" 2>/dev/null && fail "missing rootfs accepted"
	# A rootfs bigger than slot A: genimage refuses, no disk is written.
	truncate -s 65M "$WORK/big.ext4"
	"$MKDISK" qemu-arm64 "$WORK/big.ext4" "$WORK/x.img" 2>/dev/null && fail "oversized rootfs accepted"
	[ ! -e "$WORK/bb.img" ] && [ ! -e "$WORK/x.img" ] || fail "an output was left behind"
}

run_tests
