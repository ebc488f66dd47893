# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared functions of the QEMU end-to-end test; sourced by run.sh (and by
# later tests that need a guest). Real parts only: Debian's kernels,
# busybox and libubootenv tools, Debian's U-Boot, the project's boot
# script. Nothing here needs loop devices, mounts or network in the guest.
#
# Layout:
#   build/e2e-cache/debs/          downloaded .debs (kept between runs)
#   build/e2e-cache/root-<arch>/   the .debs unpacked
#   build/e2e/<arch>/              images and logs of the last run

E2E_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_CACHE=${E2E_CACHE:-$E2E_TOP/build/e2e-cache}
# What the caller set, taken once: e2e_setup runs once per architecture,
# and its per-architecture defaults must not leak from one to the next (a
# full run left x86 with arm64's 60 s boot timeout and its work directory
# under build/e2e/arm64/x86).
E2E_WORK_BASE=${E2E_WORK:-$E2E_TOP/build/e2e}
E2E_BOOT_TIMEOUT_SET=${E2E_BOOT_TIMEOUT:-}

# e2e_setup ARCH: ARCH is arm64 or x86. Sets the E2E_* variables.
# E2E_BACKEND (uboot, the default, or grub) chooses the bootloader: grub
# is x86 only (SeaBIOS and GRUB for BIOS, board-configs/qemu-x86_64-grub).
e2e_setup() {
	E2E_ARCH=$1
	E2E_BACKEND=${E2E_BACKEND:-uboot}
	case $E2E_BACKEND/$E2E_ARCH in
	uboot/* | grub/x86) ;;
	grub/*)
		echo "e2e: the GRUB backend runs on x86 only (not $E2E_ARCH)" >&2
		return 1
		;;
	*)
		echo "e2e: unknown backend '$E2E_BACKEND' (uboot or grub)" >&2
		return 1
		;;
	esac
	case $E2E_ARCH in
	arm64)
		E2E_DEBARCH=arm64
		E2E_BOARD=$E2E_TOP/board-configs/qemu-arm64
		E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT_SET:-60}
		E2E_BOOT_SLOWEST=0
		;;
	x86)
		E2E_DEBARCH=amd64
		E2E_BOARD=$E2E_TOP/board-configs/qemu-x86_64
		E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT_SET:-90}
		E2E_BOOT_SLOWEST=0
		;;
	*)
		echo "e2e: unknown arch '$E2E_ARCH' (arm64 or x86)" >&2
		return 1
		;;
	esac
	local suffix=""
	if [ "$E2E_BACKEND" = grub ]; then
		E2E_BOARD=$E2E_TOP/board-configs/qemu-x86_64-grub
		suffix=-grub
	fi
	E2E_WORK=$E2E_WORK_BASE/$E2E_ARCH$suffix
	E2E_ROOTFS=$E2E_CACHE/root-$E2E_DEBARCH
	mkdir -p "$E2E_WORK" "$E2E_CACHE/debs"
	# E2E_LAYOUT: the partition table (sfdisk script) of the disk in use;
	# the systemd guest (sysd.sh) keeps the board's partition numbers but
	# needs larger slots and sets its own.
	E2E_LAYOUT=$E2E_BOARD/layout.sfdisk
	E2E_ENV_SIZE=$(. "$E2E_BOARD/boot.conf" && echo "$ENV_SIZE")
	E2E_KERNEL_NAME=$(. "$E2E_BOARD/boot.conf" && basename "$KERNEL")
}

# e2e_can_run: 0 if QEMU and U-Boot for this arch are installed; else
# prints what is missing (one line) and returns 1.
e2e_can_run() {
	local qemu pkg fw
	case $E2E_ARCH in
	arm64) qemu=qemu-system-aarch64 pkg=qemu-system-arm fw=/usr/lib/u-boot/qemu_arm64/u-boot.bin ;;
	x86) qemu=qemu-system-x86_64 pkg=qemu-system-x86 fw=/usr/lib/u-boot/qemu-x86/u-boot.rom ;;
	esac
	if ! command -v "$qemu" >/dev/null; then
		echo "$qemu is not installed (package $pkg; tests/e2e/deps.sh $E2E_ARCH as root)"
		return 1
	fi
	if [ "$E2E_BACKEND" = grub ]; then
		if [ ! -r /usr/lib/grub/i386-pc/boot.img ] || ! command -v grub-mkimage >/dev/null ||
			! command -v grub-editenv >/dev/null; then
			echo "GRUB for BIOS is missing (packages grub-pc-bin grub-common; tests/e2e/deps.sh --backend grub as root)"
			return 1
		fi
		return 0
	fi
	if [ ! -r "$fw" ]; then
		echo "Debian's U-Boot $fw is missing (package u-boot-qemu; tests/e2e/deps.sh as root)"
		return 1
	fi
}

# e2e_fetch: download (once) and unpack the guest's Debian packages.
# Returns 1 (with a message) when they cannot be had.
e2e_fetch() {
	local debs=$E2E_CACHE/debs a=$E2E_DEBARCH kpkg stamp
	kpkg=$(cd "$debs" && ls linux-image-*-cloud-"$a"_*_"$a".deb 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$kpkg" ]; then
		# The metapackage only depends on the versioned image package.
		kpkg=$(apt-cache depends "linux-image-cloud-$a:$a" 2>/dev/null |
			sed -n 's/.*Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
		[ -n "$kpkg" ] || { echo "e2e: cannot resolve linux-image-cloud-$a" >&2; return 1; }
		echo "  E2E     downloading $kpkg and the guest userland ($a)"
		# apt-get download fetches into the current directory; the
		# _apt sandbox warning for root-owned dirs is harmless.
		(cd "$debs" && apt-get download -q "$kpkg:$a" busybox-static:"$a" \
			libubootenv-tool:"$a" libubootenv0.1:"$a" libc6:"$a" zlib1g:"$a" \
			>/dev/null 2>&1) ||
			{ echo "e2e: apt-get download failed (arm64 needs: dpkg --add-architecture arm64; apt-get update)" >&2; return 1; }
		kpkg=$(cd "$debs" && ls linux-image-*-cloud-"$a"_*_"$a".deb | sort -V | tail -n1)
	fi
	stamp=$E2E_ROOTFS/.unpacked-$kpkg
	if [ ! -e "$stamp" ]; then
		rm -rf "$E2E_ROOTFS"
		mkdir -p "$E2E_ROOTFS"
		local d
		for d in "$debs/$kpkg" "$debs"/busybox-static_*_"$a".deb "$debs"/libubootenv-tool_*_"$a".deb \
			"$debs"/libubootenv0.1_*_"$a".deb "$debs"/libc6_*_"$a".deb "$debs"/zlib1g_*_"$a".deb; do
			dpkg-deb -x "$d" "$E2E_ROOTFS" || { echo "e2e: cannot unpack $d" >&2; return 1; }
		done
		touch "$stamp"
	fi
	E2E_KVER=$(ls "$E2E_ROOTFS/lib/modules" | head -n1)
	[ -n "$E2E_KVER" ] || { echo "e2e: no kernel modules in $E2E_ROOTFS" >&2; return 1; }
}

# Copy an ELF file of the guest root plus every library it needs, found
# by readelf (the guest's loader cannot run on the host).
_e2e_copy_elf() {
	local src=$1 dst=$2 lib interp f
	mkdir -p "$dst/$(dirname "$src")"
	cp -L "$E2E_ROOTFS/$src" "$dst/$src"
	interp=$(readelf -l "$E2E_ROOTFS/$src" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
	if [ -n "$interp" ] && [ ! -e "$dst/$interp" ]; then
		mkdir -p "$dst/$(dirname "$interp")"
		cp -L "$E2E_ROOTFS/$interp" "$dst/$interp"
	fi
	for lib in $(readelf -d "$E2E_ROOTFS/$src" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
		for f in "$E2E_ROOTFS"/lib/*-linux-gnu*/"$lib" "$E2E_ROOTFS"/usr/lib/*-linux-gnu*/"$lib"; do
			f=${f#"$E2E_ROOTFS"/}
			if [ -e "$E2E_ROOTFS/$f" ] && [ ! -e "$dst/$f" ]; then
				_e2e_copy_elf "$f" "$dst"
			fi
		done
	done
}

# e2e_elf_extra BIN DST: SRC:DST pairs for E2E_INITRD_EXTRA that put the
# host-built BIN (cross-built for arm64) at DST in the guest, with its
# loader and every shared library it needs, resolved recursively in the
# build machine's multiarch directories: these are the very files the
# binary was linked against (Debian's :arm64 packages for the cross build).
e2e_elf_extra() {
	local bin=$1 dst=$2 triplet readelf interp f lib d found seen=" "
	local -a queue
	case $E2E_ARCH in
	arm64) triplet=aarch64-linux-gnu ;;
	x86) triplet=x86_64-linux-gnu ;;
	esac
	readelf=$triplet-readelf
	command -v "$readelf" >/dev/null || readelf=readelf
	echo "$bin:$dst"
	interp=$("$readelf" -l "$bin" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
	[ -z "$interp" ] || echo "$(readlink -f "$interp"):$interp"
	queue=("$bin")
	while [ ${#queue[@]} -gt 0 ]; do
		f=${queue[0]}
		queue=("${queue[@]:1}")
		for lib in $("$readelf" -d "$f" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
			case $seen in *" $lib "*) continue ;; esac
			seen="$seen$lib "
			found=""
			for d in /lib/$triplet /usr/lib/$triplet; do
				if [ -e "$d/$lib" ]; then
					found=$d/$lib
					break
				fi
			done
			if [ -z "$found" ]; then
				echo "e2e: $lib (needed by $f) not found in /lib/$triplet or /usr/lib/$triplet" >&2
				return 1
			fi
			# The guest's loader searches /lib/<triplet> by default.
			echo "$(readlink -f "$found"):/lib/$triplet/$lib"
			queue+=("$found")
		done
	done
}

# e2e_build_initrd OUT [SRC:DST ...]: the guest system as a gzip cpio.
# Extra SRC:DST pairs are copied in (a cross-built tandem, its config).
# TANDEM_E2E_BIN, if set, is installed as /usr/bin/tandem.
# E2E_INITRD_INIT (default guest/init) is the /init; E2E_INITRD_MODULES
# adds modules to the ones loaded at boot (the systemd guest's network).
e2e_build_initrd() {
	local out=$1 dir m p
	shift
	dir=$E2E_WORK/initrd.d
	rm -rf "$dir"
	mkdir -p "$dir"/{bin,etc,lib/modules/e2e,usr/bin,root}
	cp "$E2E_ROOTFS/bin/busybox" "$dir/bin/busybox"
	cp "${E2E_INITRD_INIT:-$E2E_TOP/tests/e2e/guest/init}" "$dir/init"
	_e2e_copy_elf usr/bin/fw_printenv "$dir"
	_e2e_copy_elf usr/bin/fw_setenv "$dir"
	# GRUB boards have none: the updater reads the block itself.
	[ ! -e "$E2E_BOARD/fw_env.config" ] || cp "$E2E_BOARD/fw_env.config" "$dir/etc/fw_env.config"
	# The debs ship no modules.dep; build it to get the load order.
	[ -e "$E2E_ROOTFS/lib/modules/$E2E_KVER/modules.dep" ] ||
		depmod -b "$E2E_ROOTFS" "$E2E_KVER"
	: >"$dir/etc/e2e-modules"
	for m in virtio_pci virtio_mmio virtio_blk vfat nls_cp437 nls_iso8859_1 nls_ascii ext4 \
		${E2E_INITRD_MODULES:-}; do
		modprobe -d "$E2E_ROOTFS" -S "$E2E_KVER" --show-depends "$m" 2>/dev/null |
			sed -n 's/^insmod \([^ ]*\).*/\1/p'
	done | awk '!seen[$0]++' | while read -r p; do
		cp "$p" "$dir/lib/modules/e2e/"
		basename "$p" >>"$dir/etc/e2e-modules"
	done
	# Loaded on demand with `e2e-load MODULE` (the watchdog test).
	cp "$E2E_TOP/tests/e2e/guest/e2e-load" "$dir/bin/e2e-load"
	for m in softdog; do
		modprobe -d "$E2E_ROOTFS" -S "$E2E_KVER" --show-depends "$m" |
			sed -n 's/^insmod \([^ ]*\).*/\1/p' | while read -r p; do
			cp "$p" "$dir/lib/modules/e2e/"
			basename "$p" >>"$dir/etc/e2e-modules.$m"
		done
	done
	if [ -n "${TANDEM_E2E_BIN:-}" ]; then
		cp "$TANDEM_E2E_BIN" "$dir/usr/bin/tandem"
	fi
	for p in "$@"; do
		mkdir -p "$dir/$(dirname "${p#*:}")"
		# -L: a library is usually a symlink; -p keeps a check's x bit.
		cp -L -p "${p%%:*}" "$dir/${p#*:}"
	done
	(cd "$dir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$out"
}

# e2e_build_slot OUT RELEASE INITRD: one slot as an ext4 image holding
# /boot/<kernel>, /boot/initrd.img and /etc/tandem-release (which tells
# the test which image booted).
e2e_build_slot() {
	local out=$1 release=$2 initrd=$3 dir=$E2E_WORK/slot.d size p
	rm -rf "$dir"
	mkdir -p "$dir/boot" "$dir/etc"
	cp "$E2E_ROOTFS"/boot/vmlinuz-* "$dir/boot/$E2E_KERNEL_NAME"
	cp "$initrd" "$dir/boot/initrd.img"
	echo "$release" >"$dir/etc/tandem-release"
	# E2E_SLOT_EXTRA="SRC:DST ...": more files in the slot (the updater
	# test pads a slot with random data so that its install takes long
	# enough to be cut in the middle).
	for p in ${E2E_SLOT_EXTRA:-}; do
		mkdir -p "$dir/$(dirname "${p#*:}")"
		cp "${p%%:*}" "$dir/${p#*:}"
	done
	size=$(_e2e_part_sectors 2)
	rm -f "$out"
	mkfs.ext4 -q -F -L "rootfs" -d "$dir" "$out" $((size / 2))k >/dev/null
}

# Partition N of the board's layout: start and size in 512-byte sectors.
_e2e_part_start() { sed -n "s/^start=\([0-9]*\).*/\1/p" "$E2E_LAYOUT" | sed -n "${1}p"; }
_e2e_part_sectors() { sed -n "s/^start=[0-9]*, *size=\([0-9]*\).*/\1/p" "$E2E_LAYOUT" | sed -n "${1}p"; }
# mtools image spec for FAT partition N of the disk.
_e2e_mt() { echo "$E2E_DISK@@$(($(_e2e_part_start "$1") * 512))"; }

# e2e_env_image OUT SEQ VAR=VALUE...: one env copy in libubootenv's
# redundant format (CRC, flags=SEQ, data).
e2e_env_image() {
	local out=$1 seq=$2 txt
	shift 2
	txt=$(mktemp)
	printf '%s\n' "$@" >"$txt"
	mkenvimage -r -s "$E2E_ENV_SIZE" -o "$out" "$txt"
	rm -f "$txt"
	# The flags byte is outside the CRC: patch it to the wanted sequence.
	printf "$(printf '\\x%02x' "$seq")" | dd of="$out" bs=1 seek=4 conv=notrunc status=none
}

# e2e_build_disk OUT [RELEASE_A [RELEASE_B]]: the whole virtual disk.
# Both slots get the same initramfs (TANDEM_E2E_BIN and E2E_INITRD_EXTRA
# go into it) and differ in /etc/tandem-release.
# The env starts as a factory image: copy 0 valid with sequence 1,
# copy 1 zeroed (invalid) - the state U-Boot must cope with first.
# E2E_SLOT_IMAGES="A.ext4 B.ext4": slot images made elsewhere (the
# systemd guest's root file systems) instead of the initramfs-only ones.
e2e_build_disk() {
	local out=$1 rel_a=${2:-slot-a-v1} rel_b=${3:-slot-b-v1} last n w=$E2E_WORK
	E2E_DISK=$out
	if [ -z "${E2E_SLOT_IMAGES:-}" ]; then
		# shellcheck disable=SC2086 # E2E_INITRD_EXTRA is a list of SRC:DST
		e2e_build_initrd "$w/initrd.img" ${E2E_INITRD_EXTRA:-}
	fi
	if [ "$E2E_BACKEND" = uboot ]; then
		"$E2E_TOP/bootloader-hooks/uboot/mkbootscr.sh" "$E2E_BOARD" "$w/boot.scr"
		e2e_env_image "$w/uboot.env" 1 "BOOT_ORDER=A B" "BOOT_A_LEFT=3" "BOOT_B_LEFT=3"
		head -c $((E2E_ENV_SIZE)) /dev/zero >"$w/uboot-redund.env"
	fi

	last=$(($(_e2e_part_start 4) + $(_e2e_part_sectors 4)))
	rm -f "$out"
	truncate -s $(((last + 2048) * 512)) "$out"
	grep -v '^#' "$E2E_LAYOUT" | sfdisk -q "$out"

	rm -f "$w/boot.vfat" "$w/data.vfat"
	mkfs.vfat -n BOOT -C "$w/boot.vfat" $(($(_e2e_part_sectors 1) / 2)) >/dev/null
	if [ "$E2E_BACKEND" = grub ]; then
		_e2e_grub_boot_files "$w/boot.vfat" || return 1
	else
		mcopy -i "$w/boot.vfat" "$w/boot.scr" "$w/uboot.env" "$w/uboot-redund.env" ::/
	fi
	mkfs.vfat -n DATA -C "$w/data.vfat" $(($(_e2e_part_sectors 4) / 2)) >/dev/null
	local slot_a=$w/slot-a.ext4 slot_b=$w/slot-b.ext4
	if [ -n "${E2E_SLOT_IMAGES:-}" ]; then
		slot_a=${E2E_SLOT_IMAGES%% *} slot_b=${E2E_SLOT_IMAGES##* }
	else
		e2e_build_slot "$slot_a" "$rel_a" "$w/initrd.img"
		e2e_build_slot "$slot_b" "$rel_b" "$w/initrd.img"
	fi
	n=1
	for f in "$w/boot.vfat" "$slot_a" "$slot_b" "$w/data.vfat"; do
		# 1 MiB blocks: 512-byte ones cost seconds of syscalls per image.
		dd if="$f" of="$out" bs=1M seek=$(($(_e2e_part_start $n) * 512)) oflag=seek_bytes \
			conv=notrunc,sparse status=none
		n=$((n + 1))
	done
	[ "$E2E_BACKEND" != grub ] || _e2e_grub_install "$out"
}

# GRUB (E2E_BACKEND=grub): the boot partition's /grub holds the shipped
# grub.cfg, the board's tandem-board.cfg and the environment block, as
# a factory would make it with grub-editenv (A first, no try spent).
_e2e_grub_boot_files() {
	local vfat=$1 w=$E2E_WORK dir env
	dir=$(. "$E2E_BOARD/boot.conf" && echo "$GRUB_DIR")
	env=$w/grubenv
	rm -f "$env"
	grub-editenv "$env" create &&
		grub-editenv "$env" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=1 B_TRY=0 || return 1
	mmd -i "$vfat" "::$dir" &&
		mcopy -i "$vfat" "$E2E_TOP/bootloader-hooks/grub/grub.cfg" \
			"$E2E_BOARD/tandem-board.cfg" "$env" "::$dir/"
}

# GRUB installed for real, as grub-install does for BIOS on an MBR disk,
# without a loop device: core.img made by grub-mkimage (the board's
# modules, prefix (hd0,msdos1)GRUB_DIR) goes into the gap between the
# MBR and partition 1, the first 440 bytes of boot.img (its code; the
# partition table stays) into the MBR. Debian's boot.img already loads
# sector 1 and diskboot.img's block list the sectors after it.
_e2e_grub_install() {
	local disk=$1 w=$E2E_WORK dir mods sectors
	dir=$(. "$E2E_BOARD/boot.conf" && echo "$GRUB_DIR")
	mods=$(. "$E2E_BOARD/boot.conf" && echo $GRUB_MODULES)
	# shellcheck disable=SC2086 # a list of modules
	grub-mkimage -O i386-pc -o "$w/core.img" -p "(hd0,msdos1)$dir" $mods || return 1
	sectors=$((($(stat -c %s "$w/core.img") + 511) / 512))
	if [ "$sectors" -ge "$(_e2e_part_start 1)" ]; then
		echo "e2e: core.img ($sectors sectors) does not fit before partition 1" >&2
		return 1
	fi
	dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none &&
		dd if="$w/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
}

# e2e_build_script_disk OUT CMD: a 5 MiB disk whose only partition (GPT,
# FAT, where distro_bootcmd looks: virtio0, partition 1) holds /boot.scr
# made from the U-Boot script text CMD; no slots, no environment files.
# For scripts that run, print and `reset` (the boot model check).
e2e_build_script_disk() {
	local out=$1 cmd=$2 arch vfat=$E2E_WORK/script-disk.vfat
	arch=$(UBOOT_ARCH=arm64 && . "$E2E_BOARD/boot.conf" && echo "$UBOOT_ARCH")
	mkimage -A "$arch" -O linux -T script -C none -n "tandem e2e script" \
		-d "$cmd" "$E2E_WORK/script-disk.scr" >/dev/null || return 1
	rm -f "$out" "$vfat"
	truncate -s 5M "$out"
	# 1 MiB to 5 MiB minus the 34 sectors of the backup GPT.
	printf 'label: gpt\nstart=2048, size=8126, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="boot"\n' |
		sfdisk -q "$out" || return 1
	mkfs.vfat -n SCRIPT -C "$vfat" 4063 >/dev/null || return 1
	mcopy -i "$vfat" "$E2E_WORK/script-disk.scr" ::/boot.scr || return 1
	dd if="$vfat" of="$out" bs=1M seek=1 conv=notrunc status=none || return 1
	E2E_DISK=$out
}

# e2e_use_disk DISK: later calls act on DISK.
e2e_use_disk() { E2E_DISK=$1; }

# _e2e_qemu_cmd LOG: the QEMU command line of one power-on, in the
# array E2E_QEMU (serial console to LOG). The array E2E_QEMU_EXTRA adds
# arguments (arm64: the systemd guest's network).
_e2e_qemu_cmd() {
	# shellcheck disable=SC2054 # the commas belong to QEMU's options
	case $E2E_ARCH in
	arm64)
		E2E_QEMU=(qemu-system-aarch64 -M virt -cpu cortex-a57 -m 512 -smp 1
			-display none -monitor none -nic none -no-reboot
			-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin
			-drive if=none,format=raw,file="$E2E_DISK",id=d0
			-device virtio-blk-device,drive=d0
			-serial file:"$1" ${E2E_QEMU_EXTRA[@]+"${E2E_QEMU_EXTRA[@]}"})
		;;
	x86)
		local bios=/usr/lib/u-boot/qemu-x86/u-boot.rom
		# GRUB: QEMU's own SeaBIOS boots the MBR.
		[ "$E2E_BACKEND" != grub ] || bios=/usr/share/seabios/bios-256k.bin
		E2E_QEMU=(qemu-system-x86_64 -M pc -m 512 -smp 1
			-display none -monitor none -nic none -no-reboot
			-bios "$bios"
			-drive if=none,format=raw,file="$E2E_DISK",id=d0
			-device virtio-blk-pci,drive=d0
			-serial file:"$1")
		;;
	esac
}

# e2e_boot LOG [TIMEOUT]: one power-on of the board until the guest
# powers off, reboots, panics (-no-reboot makes each of these end QEMU),
# or TIMEOUT seconds pass (a hang; QEMU is killed, as a power cut would).
# Returns 0 if QEMU ended by itself, 124 on timeout.
e2e_boot() {
	local log=$1 t rc=0 t0=$SECONDS
	t=$(_e2e_timeout "${2:-}")
	rm -f "$log"
	_e2e_qemu_cmd "$log"
	timeout -k 5 "$t" "${E2E_QEMU[@]}" </dev/null || rc=$?
	# QEMU quits on SIGTERM (124); -k covers a QEMU that does not (137).
	[ "$rc" = 137 ] && rc=124
	# Not one byte on the console: the firmware never started (seen now
	# and then with x86 under TCG), so nothing on the disk changed. The
	# board is powered on again, once: a retry of the boot, not of a check.
	if [ "$rc" = 124 ] && [ ! -s "$log" ]; then
		echo "        (no console output in ${t}s: the firmware did not start; powering on again)"
		rc=0
		timeout -k 5 "$t" "${E2E_QEMU[@]}" </dev/null || rc=$?
		[ "$rc" = 137 ] && rc=124
	fi
	[ "$rc" != 0 ] || [ $((SECONDS - t0)) -le "${E2E_BOOT_SLOWEST:-0}" ] ||
		E2E_BOOT_SLOWEST=$((SECONDS - t0))
	return "$rc"
}

# _e2e_timeout [EXPLICIT]: a boot's bound. One a scenario gives (a hang
# or a cut it means to cause) stands; the default grows with the slowest
# complete boot of this run (E2E_BOOT_SLOWEST, per architecture): on a
# loaded machine every boot is slower, and a fixed bound failed boots
# that were only slow. Only the wait for a boot scales; no check is
# retried.
_e2e_timeout() {
	local t=$E2E_BOOT_TIMEOUT s=${E2E_BOOT_SLOWEST:-0}
	if [ -n "${1:-}" ]; then
		echo "$1"
		return
	fi
	[ $((s * 3 + 20)) -le "$t" ] || t=$((s * 3 + 20))
	echo "$t"
}

# e2e_boot_cut LOG REGEX [TIMEOUT]: power on, and cut the power as soon
# as the serial console shows a line matching REGEX (grep -E). The cut is
# SIGKILL to QEMU: the guest gets no chance to flush anything, and what
# QEMU had not yet written to the disk image is lost, as with a real cut.
# Returns 0 after a cut at REGEX, 1 if QEMU ended by itself before REGEX
# appeared, 124 if TIMEOUT passed first (QEMU is killed then too).
e2e_boot_cut() {
	local log=$1 re=$2 t pid rc=124 end try
	t=$(_e2e_timeout "${3:-}")
	for try in 1 2; do
		rm -f "$log"
		: >"$log"
		_e2e_qemu_cmd "$log"
		"${E2E_QEMU[@]}" </dev/null &
		pid=$!
		end=$((SECONDS + t))
		rc=124
		while [ $SECONDS -lt $end ]; do
			if grep -a -q -E "$re" "$log"; then
				rc=0
				break
			fi
			if ! kill -0 "$pid" 2>/dev/null; then
				rc=1
				break
			fi
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		# as in e2e_boot: a firmware that never started, powered on again once
		[ "$rc" = 124 ] && [ ! -s "$log" ] && [ "$try" = 1 ] || break
		echo "        (no console output in ${t}s: the firmware did not start; powering on again)"
	done
	return "$rc"
}

# e2e_booted_slot LOG: the slot the guest said it booted, or "none".
e2e_booted_slot() {
	local s
	s=$(sed -n 's/.*TANDEM-E2E booted slot=\([^ ]*\).*/\1/p' "$1" | tail -n1)
	echo "${s:-none}"
}
# e2e_booted_release LOG: /etc/tandem-release of the booted slot.
e2e_booted_release() { sed -n 's/.*TANDEM-E2E booted .*release=\([^ \r]*\).*/\1/p' "$1" | tail -n1; }
# e2e_action_rc LOG: exit code of /data/action.sh, or "none".
e2e_action_rc() {
	local s
	s=$(sed -n 's/.*TANDEM-E2E action rc=\([0-9]*\).*/\1/p' "$1" | tail -n1)
	echo "${s:-none}"
}

# e2e_set_action FILE|-: install FILE as /data/action.sh (run by the
# guest's init with busybox sh after the boot marker), or remove it.
e2e_set_action() {
	if [ "$1" = - ]; then
		mdel -i "$(_e2e_mt 4)" ::/action.sh 2>/dev/null || true
	else
		mcopy -o -i "$(_e2e_mt 4)" "$1" ::/action.sh
	fi
}
# e2e_data_put SRC DST: copy a file onto the data partition (/data/DST).
e2e_data_put() {
	local d
	d=$(dirname "$2")
	[ "$d" = . ] || mmd -D s -i "$(_e2e_mt 4)" "::/$d" 2>/dev/null || true
	mcopy -o -i "$(_e2e_mt 4)" "$1" "::/$2"
}
# e2e_data_get SRC DST: copy /data/SRC out of the disk.
e2e_data_get() { mcopy -o -i "$(_e2e_mt 4)" "::/$1" "$2"; }
# e2e_data_ls DIR: the names in /data/DIR, sorted, one a line.
e2e_data_ls() { mdir -b -i "$(_e2e_mt 4)" "::/$1" 2>/dev/null | sed 's|.*/||' | LC_ALL=C sort; }

# Host access to the boot environment, through the same libubootenv the
# device uses: copy both env files out, run fw_printenv/fw_setenv on
# them with a host fw_env.config, copy back what changed.
# libubootenv's tools serialise on one machine-wide lock file
# (/run/lock/fw_printenv.lock); on a shared machine another run's tool or
# updater holding it stalled this harness for minutes, although the env
# files here are private copies. As root, each call gets its own
# /run/lock (a private mount namespace); otherwise the shared one.
_e2e_fw() {
	if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
		unshare -m --propagation private sh -c 'mount -t tmpfs e2e-lock /run/lock && exec "$@"' fw "$@"
	else
		"$@"
	fi
}
_e2e_env_out() {
	E2E_ENVDIR=$E2E_WORK/env.d
	rm -rf "$E2E_ENVDIR"
	mkdir -p "$E2E_ENVDIR"
	mcopy -o -i "$(_e2e_mt 1)" ::/uboot.env ::/uboot-redund.env "$E2E_ENVDIR/"
	printf '%s 0x0 %s\n' "$E2E_ENVDIR/uboot.env" "$E2E_ENV_SIZE" \
		"$E2E_ENVDIR/uboot-redund.env" "$E2E_ENV_SIZE" >"$E2E_ENVDIR/fw_env.config"
}
# e2e_env_get VAR: value of VAR as libubootenv sees it ("" if unset).
e2e_env_get() {
	_e2e_env_out
	_e2e_fw fw_printenv -c "$E2E_ENVDIR/fw_env.config" -n "$1" 2>/dev/null || true
}
# e2e_env_dump: all variables, one per line, sorted.
e2e_env_dump() {
	_e2e_env_out
	_e2e_fw fw_printenv -c "$E2E_ENVDIR/fw_env.config" 2>/dev/null | grep -v '^Environment' | sort
}
# e2e_env_set VAR=VALUE...: one atomic libubootenv store of all pairs.
# (libubootenv's `fw_setenv -s` wants VAR=VALUE lines and silently skips
# lines without '=', unlike the old U-Boot tool's "VAR VALUE".)
e2e_env_set() {
	_e2e_env_out
	printf '%s\n' "$@" >"$E2E_ENVDIR/script"
	_e2e_fw fw_setenv -c "$E2E_ENVDIR/fw_env.config" -s "$E2E_ENVDIR/script" >/dev/null
	mcopy -o -i "$(_e2e_mt 1)" "$E2E_ENVDIR/uboot.env" "$E2E_ENVDIR/uboot-redund.env" ::/
}
# e2e_env_seq FILE: sequence (flags) byte of env file FILE, in decimal.
e2e_env_seq() {
	_e2e_env_out
	od -An -tu1 -j4 -N1 "$E2E_ENVDIR/$1" | tr -d ' '
}
# e2e_env_corrupt FILE: damage the data of env FILE (as a power cut in
# the middle of U-Boot's fatwrite would), leaving its CRC wrong.
e2e_env_corrupt() {
	_e2e_env_out
	printf 'POWER-CUT' | dd of="$E2E_ENVDIR/$1" bs=1 seek=9 conv=notrunc status=none
	mcopy -o -i "$(_e2e_mt 1)" "$E2E_ENVDIR/$1" ::/
}
# e2e_env_put FILE SRC: replace env file FILE on the boot partition.
e2e_env_put() { mcopy -o -i "$(_e2e_mt 1)" "$2" "::/$1"; }

# The boot state, whichever the backend (the scenarios of tandem.sh are
# written against these, not against a bootloader's variable names):
#   e2e_bs_order           "A B" or "B A" (the default when unset)
#   e2e_bs_tries SLOT      tries left, as the boot script counts them
#   e2e_bs_var NAME        one of Tandem's own variables (TANDEM_*)
# U-Boot: BOOT_ORDER, BOOT_x_LEFT, through the host's libubootenv. GRUB:
# ORDER, x_OK, x_TRY, TANDEM_BOOT_TRIES, through grub-editenv on a copy
# of the block (what grub.cfg reads: a missing variable is its default).
_e2e_grubenv_out() {
	local env
	env=$(. "$E2E_BOARD/boot.conf" && echo "$GRUB_ENV")
	E2E_ENVDIR=$E2E_WORK/env.d
	rm -rf "$E2E_ENVDIR"
	mkdir -p "$E2E_ENVDIR"
	mcopy -o -i "$(_e2e_mt 1)" "::$env" "$E2E_ENVDIR/grubenv"
}
# e2e_grubenv_get VAR: VAR's value in the GRUB block ("" if unset).
e2e_grubenv_get() {
	_e2e_grubenv_out
	grub-editenv "$E2E_ENVDIR/grubenv" list | sed -n "s/^$1=//p" | head -n1
}
e2e_bs_order() {
	local v
	if [ "$E2E_BACKEND" = grub ]; then v=$(e2e_grubenv_get ORDER); else v=$(e2e_env_get BOOT_ORDER); fi
	echo "${v:-A B}"
}
e2e_bs_tries() {
	local ok try max
	if [ "$E2E_BACKEND" != grub ]; then
		e2e_env_get "BOOT_$1_LEFT"
		return
	fi
	_e2e_grubenv_out
	ok=$(grub-editenv "$E2E_ENVDIR/grubenv" list | sed -n "s/^$1_OK=//p")
	try=$(grub-editenv "$E2E_ENVDIR/grubenv" list | sed -n "s/^$1_TRY=//p")
	max=$(grub-editenv "$E2E_ENVDIR/grubenv" list | sed -n "s/^TANDEM_BOOT_TRIES=//p")
	ok=${ok:-1} try=${try:-0} max=${max:-3}
	if [ "$ok" = 1 ] && [ "$try" -lt "$max" ]; then echo $((max - try)); else echo 0; fi
}
e2e_bs_var() {
	if [ "$E2E_BACKEND" = grub ]; then e2e_grubenv_get "$1"; else e2e_env_get "$1"; fi
}
# e2e_bs_dump: the whole raw state, one variable a line (a failure's log).
e2e_bs_dump() {
	if [ "$E2E_BACKEND" = grub ]; then
		_e2e_grubenv_out
		grub-editenv "$E2E_ENVDIR/grubenv" list
	else
		e2e_env_dump
	fi
}
