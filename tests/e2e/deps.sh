#!/bin/bash
# SPDX-License-Identifier: MIT
# deps.sh [arm64] [x86] [grub]: the packages the QEMU end-to-end test needs
# for these architectures (default: both), and for the GRUB backend. As root it installs what is
# missing, and enables the arm64 foreign architecture, without which
# `apt-get download ...:arm64` finds nothing. As another user it prints
# the lines to run as root and fails: run.sh then fails too, it does not
# skip.
set -euo pipefail

arches=${*:-arm64 x86}
PKGS="u-boot-qemu u-boot-tools mtools dosfstools fdisk e2fsprogs libubootenv-tool
busybox-static cpio kmod gzip jq file"
need_arch=0
for a in $arches; do
	case $a in
	# The updater scenarios (tandem.sh) run a tandem cross-built for the
	# arm64 guest against Debian's arm64 libraries (multiarch).
	arm64)
		PKGS="$PKGS qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross
		binutils-aarch64-linux-gnu libmbedtls-dev:arm64 zlib1g-dev:arm64 libcjson-dev:arm64
		libubootenv-dev:arm64 libdeflate-dev:arm64 nettle-dev:arm64 liblzma-dev:arm64
		libcurl4-openssl-dev:arm64 socat"
		dpkg --print-foreign-architectures | grep -qx arm64 || need_arch=1
		;;
	# The x86 guest runs the native build (the host's libraries).
	x86) PKGS="$PKGS qemu-system-x86" ;;
	# run.sh --backend grub: GRUB for BIOS (boot.img, core.img's
	# modules), grub-mkimage and grub-editenv, QEMU's SeaBIOS.
	grub) PKGS="$PKGS grub-pc-bin grub-common seabios qemu-system-x86" ;;
	*) echo "e2e deps: unknown architecture '$a' (arm64, x86 or grub)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && [ "$need_arch" = 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "e2e deps: missing for $arches; run as root:" >&2
	[ "$need_arch" = 0 ] || echo "  dpkg --add-architecture arm64 && apt-get update" >&2
	[ -z "$missing" ] || echo "  apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
[ "$need_arch" = 0 ] || dpkg --add-architecture arm64
echo "  E2E     installing:${missing:- (arm64 package lists)}"
# A new foreign architecture or an old list needs a refresh.
apt-get update -qq >/dev/null 2>&1 || true
[ -z "$missing" ] || apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
	{ echo "e2e deps: apt-get install failed for:$missing" >&2; exit 1; }
