#!/bin/bash
# SPDX-License-Identifier: MIT
# demo.sh BUILD_DIR: the main job on a simulated device made of files.
# Builds two real ext4 root filesystems, signs a bundle of each, installs
# one into the inactive slot of a device whose slots are files and whose
# boot environment is a real redundant U-Boot environment, and shows a
# tampered bundle being refused. Everything lives in BUILD_DIR/demo.
# TANDEM_BINDIR=/usr/bin runs the installed programs instead of
# BUILD_DIR's (tests/packaging/deb.sh, on the Debian packages).
set -euo pipefail

bindir=${TANDEM_BINDIR:-${1:-build}}
[ -x "$bindir/tandem" ] && [ -x "$bindir/tandem-image" ] ||
	{ echo "demo: no tandem and tandem-image in $bindir/ (make demo builds them)" >&2; exit 1; }
mkdir -p "${1:-build}"
build=$(cd "${1:-build}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
demo=$build/demo
export TANDEM_IMAGE=$bindir/tandem-image
tandem=$bindir/tandem
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

rm -rf "$demo"
mkdir -p "$demo"
say "A simulated device: slots A and B are files, A is booted, U-Boot's environment is two files"
"$top/tests/lib/simdev.sh" "$demo/device" 48M
cat "$demo/device/tandem.conf"

say "Two releases of a root filesystem (ext4, made from a small tree)"
for v in 1.0 1.1; do
	tree=$demo/tree-$v
	mkdir -p "$tree/etc" "$tree/usr/bin"
	echo "VERSION_ID=$v" >"$tree/etc/os-release"
	cp /bin/busybox "$tree/usr/bin/" 2>/dev/null || cp /bin/sh "$tree/usr/bin/"
	head -c 4M /dev/urandom >"$tree/usr/bin/payload-$v"
	mkfs.ext4 -q -F -d "$tree" -L rootfs "$demo/rootfs-$v.ext4" 32M
	printf '  rootfs-%s.ext4  %s\n' "$v" "$(sha256sum <"$demo/rootfs-$v.ext4" | cut -c1-16)..."
done

say "Signed bundles (the signing key stays on the build host)"
for v in 1.0 1.1; do
	run "$TANDEM_IMAGE" build --key "$demo/device/signing/key.pem" --image "$demo/rootfs-$v.ext4" \
		--version "$v" --compatible sim --out "$demo/update-$v.tnd"
done
run "$TANDEM_IMAGE" inspect "$demo/update-1.1.tnd"

say "Device status before the update"
run "$tandem" -c "$demo/device/tandem.conf" status

say "First, a copy of 1.0 with one byte changed in transit: refused, A still boots first"
cp "$demo/update-1.0.tnd" "$demo/tampered.tnd"
printf '\x00' | dd of="$demo/tampered.tnd" bs=1 seek=100000 conv=notrunc 2>/dev/null
if "$tandem" -c "$demo/device/tandem.conf" install --progress=none "$demo/tampered.tnd"; then
	echo "demo: the tampered bundle was installed: this is a bug" >&2
	exit 1
fi
run fw_printenv -c "$demo/device/fw_env.config" BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
echo "(B was partly overwritten before the bad chunk arrived, so it is out of the boot order's reach: 0 tries)"
say "Install 1.1 into the inactive slot (B)"
run "$tandem" -c "$demo/device/tandem.conf" install "$demo/update-1.1.tnd"
cmp -n "$(stat -c %s "$demo/rootfs-1.1.ext4")" "$demo/rootfs-1.1.ext4" "$demo/device/slotB.img"
echo "slot B holds rootfs 1.1, byte for byte"

say "Status and the U-Boot environment after it: B boots next, with 3 tries"
run "$tandem" -c "$demo/device/tandem.conf" status
run fw_printenv -c "$demo/device/fw_env.config" BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT

echo
echo "demo done: files are in $demo"
