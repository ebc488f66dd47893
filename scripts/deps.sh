#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages Tandem needs to build and test, when run
# as root; otherwise prints the apt-get line. Extra package names may be
# passed as arguments (the benchmark and e2e suites add theirs).
set -eu

PKGS="build-essential pkg-config python3 python3-kconfiglib
libmbedtls-dev nettle-dev zlib1g-dev libubootenv-dev libcjson-dev libcurl4-openssl-dev
libcmocka-dev libdeflate-dev libssl-dev liblzma-dev squashfs-tools u-boot-tools libubootenv-tool e2fsprogs clang-format
socat lrzsz qemu-system-arm u-boot-qemu fdisk nginx openssl curl strace
genimage dosfstools mtools $*"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "  DEPS    installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# An old or empty package list makes the install fail: refresh once.
	apt-get update -qq >/dev/null 2>&1 || true
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		{ echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
	echo "deps: missing Debian packages; run as root:" >&2
	echo "  apt-get install$missing" >&2
	exit 1
fi
