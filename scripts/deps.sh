#!/bin/sh
# SPDX-License-Identifier: MIT
# deps.sh [--missing] [--for GROUP[,GROUP...]] [PACKAGE...]
#
# The one list of the Debian packages Tandem needs, in groups:
#   kconfig  to configure (make <board>_defconfig, menuconfig, any build)
#   build    to build the programs
#   demo     for make demo's simulated device
#   check    for make check's tests
#   integrations  for make check-integrations (Buildroot's check-package
#            and make, bitbake's host tools); not part of the default
# Default: every group. Extra package names may be passed as arguments
# (the benchmark adds its own).
#
# As root it installs the missing packages, one line per group saying
# which and what for; as another user it prints the apt-get line and
# fails. --missing installs nothing: it prints the missing packages on
# one line (nothing when all are there, or when this is not a Debian
# system: without dpkg it cannot tell) and exits 0; the Makefile uses it
# to stop a build that could not work, before Kconfig runs.
set -eu

why() {
	case $1 in
	kconfig) echo "to configure (Kconfig)" ;;
	build) echo "to build (compiler, libraries)" ;;
	demo) echo "for make demo (ext4 images, the U-Boot environment)" ;;
	check) echo "for make check (unit tests, formatting, serial link, QEMU, HTTP, disk images, strace, GRUB)" ;;
	integrations) echo "for make check-integrations (Buildroot's check-package and make, bitbake)" ;;
	extra) echo "as the caller asked" ;;
	esac
}
pkgs() {
	case $1 in
	kconfig) echo "python3 python3-kconfiglib" ;;
	build) echo "build-essential pkg-config libmbedtls-dev nettle-dev zlib1g-dev libubootenv-dev
		libcjson-dev libcurl4-openssl-dev libdeflate-dev libssl-dev liblzma-dev" ;;
	# mkfs.ext4, mkenvimage, fw_printenv
	demo) echo "e2fsprogs u-boot-tools libubootenv-tool" ;;
	# QEMU for both e2e architectures (tests/e2e/deps.sh adds the arm64
	# cross build): a missing one fails make check-e2e, it is not skipped.
	check) echo "libcmocka-dev squashfs-tools clang-format socat lrzsz qemu-system-arm qemu-system-x86 u-boot-qemu
		fdisk nginx openssl curl genimage dosfstools mtools strace grub-common grub-pc-bin" ;;
	# check-package: python3-magic, flake8, shellcheck; Buildroot's make:
	# its host dependencies; bitbake: the HOSTTOOLS of poky's bitbake.conf
	integrations) echo "python3-magic flake8 shellcheck rsync bc bzip2 patch cpio unzip file wget
		gawk diffstat texinfo chrpath python3-pexpect xz-utils debianutils iputils-ping
		python3-git python3-jinja2 python3-subunit zstd lz4 locales libacl1 rpcsvc-proto" ;;
	extra) echo "$extra" ;;
	*) echo "deps: unknown group '$1' (kconfig, build, demo, check, integrations)" >&2; exit 2 ;;
	esac
}

mode=install groups="kconfig,build,demo,check" extra=""
while [ $# -gt 0 ]; do
	case $1 in
	--missing) mode=missing ;;
	--for) groups=${2:?--for needs groups}; shift ;;
	--for=*) groups=${1#--for=} ;;
	-*) echo "deps: unknown option $1" >&2; exit 2 ;;
	*) extra="$extra $1" ;;
	esac
	shift
done
groups=$(echo "$groups" | tr ',' ' ')
[ -z "$extra" ] || groups="$groups extra"

command -v dpkg-query >/dev/null || {
	[ "$mode" = missing ] && exit 0
	echo "deps: not a Debian system (no dpkg-query): install the equivalents of these by hand:" >&2
	for g in $groups; do echo "  $(why "$g"): $(echo $(pkgs "$g"))" >&2; done
	exit 1
}

all=""
for g in $groups; do all="$all $(pkgs "$g")"; done
# One dpkg-query for them all: the Makefile runs this on every build.
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' $all 2>/dev/null |
	awk '$(NF-2) == "install" && $NF == "installed" { print $1 }' | tr '\n' ' ') "

# Missing packages, each once, in the first group that names it.
missing="" lines=""
for g in $groups; do
	gm=""
	for p in $(pkgs "$g"); do
		case "$installed$missing " in *" $p "*) continue ;; esac
		gm="$gm $p"
		missing="$missing $p"
	done
	[ -z "$gm" ] || lines="$lines$(why "$g"):$gm
"
done

if [ "$mode" = missing ]; then
	[ -z "$missing" ] || echo $missing
	exit 0
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages:" >&2
	printf '%s' "$lines" | sed 's/^/  /' >&2
	echo "run as root: apt-get install$missing" >&2
	[ -n "$extra" ] || echo "(or, as root: make deps)" >&2
	exit 1
fi

printf '%s' "$lines" | sed 's/^/  DEPS    installing /'
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# An old or empty package list makes the install fail: refresh once.
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1 || {
	tail -n 20 "$log" >&2
	echo "deps: apt-get install failed for:$missing" >&2
	exit 1
}
