#!/bin/bash
# SPDX-License-Identifier: MIT
# The bricked-board recovery of docs/bench-guide.md on real U-Boot (Debian's
# u-boot-qemu under qemu-system-aarch64, the qemu-arm64 board's disk
# layout): at the U-Boot prompt on the serial console, `loady` receives a
# slot image sent with lrzsz's `sb --ymodem`, `crc32` checks it, and
# `virtio write` puts it on slot A's partition. The disk is compared after
# QEMU exits: slot A holds the image, slot B's first blocks are untouched.
. "$(dirname "$0")/lib.sh"

UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin

test_uboot_loady_writes_slot() {
	local q s i
	# A slot image of 200 kB: YMODEM through U-Boot under TCG moves
	# about 16 kB/s, and the steps are the same for any size.
	head -c 200000 /dev/urandom >"$WORK/slot.img"
	truncate -s 300M "$WORK/disk.img"
	sfdisk -q "$WORK/disk.img" <"$TOP/board-configs/qemu-arm64/layout.sfdisk"
	timeout 240 qemu-system-aarch64 -M virt -cpu cortex-a57 -m 512 -smp 1 -nographic \
		-nic none -no-reboot -bios "$UBOOT" -monitor none \
		-drive if=none,format=raw,file="$WORK/disk.img",id=d0 \
		-device virtio-blk-device,drive=d0 \
		-serial unix:"$WORK/sock",server=on,wait=off >"$WORK/qemu.out" 2>&1 &
	q=$!
	for i in $(seq 100); do [ -S "$WORK/sock" ] && break; sleep 0.1; done
	# The console as a pty, as a USB-serial adapter would be.
	timeout 240 socat PTY,raw,echo=0,link="$WORK/console" UNIX-CONNECT:"$WORK/sock" \
		2>"$WORK/socat.log" &
	s=$!
	for i in $(seq 100); do [ -e "$WORK/console" ] && break; sleep 0.1; done
	local rc=0
	LOADY_LOG=$WORK/console.log timeout 200 /usr/bin/python3 "$TOP/tests/serial/uboot_loady.py" \
		"$WORK/console" "$WORK/slot.img" 2 || rc=$?
	kill "$q" "$s" 2>/dev/null || true
	wait "$q" 2>/dev/null || true
	wait "$s" 2>/dev/null || true
	[ "$rc" -eq 0 ] || fail "recovery steps failed; console: $(tail -c 600 "$WORK/console.log")"
	# slot A starts at sector 34816, slot B at 165888 (layout.sfdisk)
	cmp -n 200000 "$WORK/slot.img" <(dd if="$WORK/disk.img" bs=512 skip=34816 count=391 2>/dev/null) ||
		fail "slot A does not hold the image"
	[ "$(dd if="$WORK/disk.img" bs=512 skip=165888 count=64 2>/dev/null | tr -d '\0' | wc -c)" -eq 0 ] ||
		fail "slot B was written"
}

# make check installs these (scripts/deps.sh): their absence is a failure,
# not a skip.
for need in qemu-system-aarch64 sb socat sfdisk; do
	command -v "$need" >/dev/null || { echo "${0##*/}: $need is missing (make deps)" >&2; exit 1; }
done
[ -r "$UBOOT" ] || { echo "${0##*/}: $UBOOT is missing (u-boot-qemu; make deps)" >&2; exit 1; }
run_tests
