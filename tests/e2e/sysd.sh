# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# (SC2034, SC2154: E2E_LAYOUT, E2E_QEMU_EXTRA and S_SCENARIOS are read by
# lib.sh and run.sh; boot_rc and cur_log are run.sh's.)
# End-to-end scenarios with a real root file system (issue 20, item 4):
# U-Boot boots the slot's kernel, a tiny initramfs mounts the slot
# read-only and hands over to Debian's systemd, which runs the shipped
# bootloader-hooks/systemd/tandem-confirm.service and
# tandem-daemon.service. Sourced by run.sh after tandem.sh (it reuses
# t_prepare's binaries and keys, t_action, t_json, t_step_rc); arm64 only.
#
# The slot (ext4, made with mke2fs -d: no loop device, no mount) holds
# Debian bookworm's systemd, udev and their libraries (the .debs are
# unpacked, no maintainer script runs), busybox for the test's shell
# work, the project's tandem with the libraries it was linked against,
# /boot/Image and /boot/initrd.img. /etc/fstab mounts / read-only, /var
# and /tmp as tmpfs, the boot partition at /boot (the environment files)
# and the data partition at /data (state_dir, bundles, the test's
# actions and results). /etc/machine-id is empty: systemd puts a
# transient one over it, as on any read-only root.
#
# The test's driver is two units beside the shipped ones
# (guest/systemd/): e2e-booted.service prints the boot marker before
# tandem-confirm.service runs, e2e-action.service runs /data/action.sh
# after it and powers off; both speak guest/init's protocol, so lib.sh's
# e2e_booted_slot, e2e_action_rc, ... read these logs too. A confirm that
# fails its health check reboots (the shipped unit's --reboot) before the
# action runs: QEMU (-no-reboot) ends, as on a board that reboots.
#
# The channel: the host serves a directory made by `tandem-image publish`
# on 127.0.0.1 (an ephemeral port); QEMU's user network, restricted (the
# guest reaches nothing else), forwards each connection to the guest's
# 10.0.2.100:8080 to it through socat.

S_DEBS="systemd systemd-sysv udev libsystemd-shared libsystemd0 libudev1 libacl1
libapparmor1 libargon2-1 libaudit1 libaudit-common libblkid1 libc6 libcap-ng0 libcap2
libcrypt1 libcryptsetup12 libdevmapper1.02.1 libfdisk1 libgcc-s1 libgcrypt20
libgpg-error0 libip4tc2 libjson-c5 libkmod2 liblz4-1 liblzma5 libmount1 libp11-kit0
libffi8 libpam0g libpcre2-8-0 libseccomp2 libselinux1 libssl3 libuuid1 libzstd1 mount
libsmartcols1 busybox-static"
S_HERE=$E2E_TOP/tests/e2e/guest/systemd
# The scenarios, in the order run.sh runs them (the first measures the
# boot time the others' timeouts scale with).
S_SCENARIOS="sc_sysd_first_boot sc_sysd_update sc_sysd_health_rollback sc_sysd_power_cuts"

# _s_deb PKG: the cached .deb of PKG (arm64 or all), empty if none.
_s_deb() {
	(cd "$E2E_CACHE/debs" && ls "$1"_*_"$E2E_DEBARCH".deb "$1"_*_all.deb 2>/dev/null | sort -V | tail -n1)
}

# s_fetch: download (once) and unpack the systemd root's packages into
# $S_ROOTFS. Fails with one line when they cannot be had.
s_fetch() {
	local p missing="" list stamp f
	for p in $S_DEBS; do
		[ -z "$(_s_deb "$p")" ] || continue
		# An Architecture: all package (libaudit-common) has no
		# candidate as PKG:arm64: it is asked for by its name alone.
		if apt-cache show --no-all-versions "$p" 2>/dev/null | grep -qx 'Architecture: all'; then
			missing="$missing $p"
		else
			missing="$missing $p:$E2E_DEBARCH"
		fi
	done
	if [ -n "$missing" ]; then
		echo "  E2E     downloading the systemd guest's packages ($E2E_DEBARCH)"
		# shellcheck disable=SC2086 # a list of packages
		(cd "$E2E_CACHE/debs" && apt-get download -q $missing >"$E2E_WORK/sysd-apt.log" 2>&1) || {
			echo "e2e: apt-get download failed for:$missing (the $E2E_DEBARCH architecture enabled? apt-get update?): $(grep -m1 '^E:' "$E2E_WORK/sysd-apt.log")" >&2
			return 1
		}
	fi
	list=""
	for p in $S_DEBS; do
		f=$(_s_deb "$p")
		[ -n "$f" ] || { echo "e2e: package $p ($E2E_DEBARCH) is not in $E2E_CACHE/debs" >&2; return 1; }
		list="$list $f"
	done
	S_ROOTFS=$E2E_CACHE/root-systemd-$E2E_DEBARCH
	stamp=$S_ROOTFS/.unpacked-$(echo "$list" | sha256sum | cut -c1-16)
	if [ ! -e "$stamp" ]; then
		rm -rf "$S_ROOTFS"
		mkdir -p "$S_ROOTFS"
		for f in $list; do
			dpkg-deb -x "$E2E_CACHE/debs/$f" "$S_ROOTFS" || { echo "e2e: cannot unpack $f" >&2; return 1; }
		done
		touch "$stamp"
	fi
}

# s_build_root DIR RELEASE [SRC:DST ...]: the root file system of one
# slot in DIR. RELEASE goes to /etc/tandem-release; SRC:DST pairs add
# files (a failing health check).
s_build_root() {
	local d=$1 release=$2 p a u
	shift 2
	rm -rf "$d"
	cp -a "$S_ROOTFS" "$d" || return 1
	rm -f "$d"/.unpacked-*
	# What a device's image leaves out too: documentation, translations,
	# the charset converters (20 MiB), the hardware database sources.
	rm -rf "$d"/usr/share/{doc,man,info,locale,lintian,bash-completion,zsh} \
		"$d"/usr/lib/*-linux-gnu/gconv "$d"/lib/udev/hwdb.d "${d:?}"/var/*
	mkdir -p "$d"/{boot,data,dev,proc,sys,run,tmp,var,root,usr/local/bin,usr/libexec/e2e}
	# busybox: /bin/sh and the tools the test's actions use, where Debian's
	# packages here bring none (busybox --list is the host's, same version).
	[ -e "$d/bin/sh" ] || ln -s busybox "$d/bin/sh"
	for a in $(busybox --list); do
		for u in bin sbin usr/bin usr/sbin; do
			[ -e "$d/$u/$a" ] || [ -L "$d/$u/$a" ] && continue 2
		done
		ln -s /bin/busybox "$d/usr/local/bin/$a"
	done
	cp "$E2E_ROOTFS/boot/vmlinuz-$E2E_KVER" "$d/boot/$E2E_KERNEL_NAME" || return 1
	cp "$S_INITRD" "$d/boot/initrd.img" || return 1
	echo "$release" >"$d/etc/tandem-release"

	# The minimum a booted systemd needs from /etc on a read-only root.
	cat >"$d/etc/passwd" <<-'EOF'
	root:x:0:0:root:/root:/bin/sh
	nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
	EOF
	cat >"$d/etc/group" <<-'EOF'
	root:x:0:
	tty:x:5:
	disk:x:6:
	kmem:x:15:
	dialout:x:20:
	cdrom:x:24:
	tape:x:26:
	audio:x:29:
	video:x:44:
	utmp:x:43:
	input:x:101:
	kvm:x:102:
	render:x:103:
	sgx:x:104:
	systemd-journal:x:105:
	nogroup:x:65534:
	EOF
	echo 'root::19000:0:99999:7:::' >"$d/etc/shadow"
	chmod 640 "$d/etc/shadow"
	echo tandem-e2e >"$d/etc/hostname"
	printf 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Debian 12 (tandem e2e)"\n' >"$d/etc/os-release"
	# Empty: systemd mounts a transient machine ID over it (read-only root).
	: >"$d/etc/machine-id"
	cat >"$d/etc/fstab" <<-'EOF'
	# The slot stays read-only; what the system writes lives in RAM or on
	# the data partition.
	/dev/root  /      ext4   ro                         0 0
	tmpfs      /var   tmpfs  mode=0755,nosuid,nodev     0 0
	tmpfs      /tmp   tmpfs  mode=1777,nosuid,nodev     0 0
	/dev/vda1  /boot  vfat   defaults                   0 0
	/dev/vda4  /data  vfat   defaults                   0 0
	EOF
	mkdir -p "$d/etc/systemd/journald.conf.d" "$d/etc/systemd/system/multi-user.target.wants"
	# The units' output on the serial console, where the harness reads it.
	printf '[Journal]\nStorage=volatile\nForwardToConsole=yes\nMaxLevelConsole=info\n' \
		>"$d/etc/systemd/journald.conf.d/e2e.conf"
	ln -sf /lib/systemd/system/multi-user.target "$d/etc/systemd/system/default.target"
	# No login prompts (there is no getty program either).
	for u in getty@.service serial-getty@.service getty.target; do
		ln -sf /dev/null "$d/etc/systemd/system/$u"
	done
	cp "$E2E_BOARD/fw_env.config" "$d/etc/fw_env.config"

	# tandem as `make install` puts it (SYSTEMDUNITDIR /lib/systemd/system)
	# and enabled as systemctl enable would.
	while read -r p; do
		[ -n "$p" ] || continue
		mkdir -p "$d/$(dirname "${p#*:}")"
		cp -L "${p%%:*}" "$d/${p#*:}" || return 1
	done <<<"$S_TANDEM_FILES"
	for u in tandem-confirm tandem-daemon; do
		cp "$E2E_TOP/bootloader-hooks/systemd/$u.service" "$d/lib/systemd/system/" || return 1
		ln -s "/lib/systemd/system/$u.service" "$d/etc/systemd/system/multi-user.target.wants/"
	done
	# The daemon polls only where a scenario asks for it
	# (/data/e2e-daemon): elsewhere its poll would race the action's
	# install for the device's lock.
	mkdir -p "$d/etc/systemd/system/tandem-daemon.service.d"
	printf '[Unit]\nConditionPathExists=/data/e2e-daemon\n' \
		>"$d/etc/systemd/system/tandem-daemon.service.d/e2e.conf"
	for u in e2e-booted e2e-action e2e-net; do
		cp "$S_HERE/$u.service" "$d/lib/systemd/system/" || return 1
		ln -s "/lib/systemd/system/$u.service" "$d/etc/systemd/system/multi-user.target.wants/"
	done
	cp "$S_HERE/e2e-driver" "$S_HERE/e2e-net" "$d/usr/libexec/e2e/"
	cp "$E2E_WORK/sysd-cut-env.so" "$d/usr/libexec/e2e/cut-env.so" || return 1
	for p in "$@"; do
		mkdir -p "$d/$(dirname "${p#*:}")"
		cp -L -p "${p%%:*}" "$d/${p#*:}" || return 1
	done
}

# s_build_slot OUT RELEASE [SRC:DST ...]: one slot image (ext4).
s_build_slot() {
	local out=$1 dir=$E2E_WORK/sysd-root.d
	shift
	s_build_root "$dir" "$@" || return 1
	rm -f "$out"
	mkfs.ext4 -q -F -L rootfs -d "$dir" "$out" "$S_FS_SIZE" >/dev/null
}

# s_prepare: packages, the binaries and keys (t_prepare), the initramfs,
# the two factory slots and the template disk. Sets S_* variables.
s_prepare() {
	local w=$E2E_WORK extra
	[ "$E2E_ARCH" = arm64 ] || { echo "e2e: the systemd guest is arm64 only" >&2; return 1; }
	s_fetch || return 1
	# t_prepare (run.sh calls it first, for this architecture) built
	# tandem, the host tool and the keys.
	[ -n "${T_IMAGE_TOOL:-}" ] || { echo "e2e: s_prepare needs t_prepare first" >&2; return 1; }
	aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$w/sysd-cut-env.so" \
		"$S_HERE/cut-env.c" -ldl || return 1

	# The initramfs: busybox, the modules, guest/systemd/init.
	E2E_INITRD_INIT=$S_HERE/init E2E_INITRD_MODULES="virtio_net" \
		e2e_build_initrd "$w/sysd-initrd.img" || return 1
	S_INITRD=$w/sysd-initrd.img

	cat >"$w/sysd-tandem.conf" <<-EOF
	{
		"compatible": "$T_COMPATIBLE",
		"keyring": "/etc/tandem/keys",
		"state_dir": "/data/tandem-state",
		"cmdline": "/proc/cmdline",
		"bootloader": {"type": "uboot", "env_config": "/etc/fw_env.config"},
		"slots": {"A": "/dev/vda2", "B": "/dev/vda3"},
		"boot_tries": 3,
		"health_dir": "/etc/tandem/health.d",
		"health_timeout": 20,
		"server": {
			"url": "http://10.0.2.100:8080/index.json",
			"url_policy": "same-origin",
			"poll_interval": 3600,
			"poll_jitter": 0,
			"connect_timeout": 10,
			"retries": 2
		}
	}
	EOF
	# A check that holds confirm when the host asks for it (a cut during
	# confirm): /data/e2e-hold-confirm exists.
	cat >"$w/sysd-health-hold" <<-'EOF'
	#!/bin/sh
	if [ -e /data/e2e-hold-confirm ]; then
		echo "TANDEM-E2E cut-point confirm" >/dev/console
		sleep 600
	fi
	exit 0
	EOF
	chmod 755 "$w/sysd-health-hold"
	extra=$(e2e_elf_extra "$w/tandem.bin" /usr/bin/tandem) || return 1
	# tandem opens libcurl when it first needs HTTP (dlopen: no NEEDED
	# entry to follow); the fleet scenario needs it and its libraries.
	extra="$extra
$(e2e_elf_extra /usr/lib/aarch64-linux-gnu/libcurl.so.4 /usr/lib/aarch64-linux-gnu/libcurl.so.4)" || return 1
	extra="$extra
$w/sysd-tandem.conf:/etc/tandem/tandem.conf
$w/tandem-keys/test.pem:/etc/tandem/keys/test.pem
$w/health-ok:/etc/tandem/health.d/10-data-mounted
$w/sysd-health-hold:/etc/tandem/health.d/20-e2e-hold"
	S_TANDEM_FILES=$extra

	# The file system's size: what the root holds plus room, the same for
	# every release (a slot is 192 MiB).
	s_build_root "$w/sysd-root.d" probe || return 1
	S_FS_SIZE=$(($(du -s -k "$w/sysd-root.d" | cut -f1) * 5 / 4 + 8192))k
	s_build_slot "$w/sysd-slot-a.ext4" sysd-a-v1 || return 1
	s_build_slot "$w/sysd-slot-b.ext4" sysd-b-v1 || return 1
	E2E_LAYOUT=$S_HERE/layout.sfdisk E2E_SLOT_IMAGES="$w/sysd-slot-a.ext4 $w/sysd-slot-b.ext4" \
		e2e_build_disk "$w/sysd-template.img" || return 1
	S_BUNDLES=" "
	echo "        systemd root: $(du -s -m "$w/sysd-root.d" | cut -f1) MiB in a ${S_FS_SIZE} ext4"
}

# s_bundle NAME: build bundle NAME (once per run) into $S_BUNDLE.
#   good: sysd-b-v2, version 2.0, security version 1
#   bad:  sysd-b-bad, version 2.1, a failing health check
s_bundle() {
	local name=$1 w=$E2E_WORK rel ver sv=0 extra=""
	S_BUNDLE=$w/sysd-bundle-$name.tnd
	case $S_BUNDLES in *" $name "*) return 0 ;; esac
	case $name in
	good) rel=sysd-b-v2 ver=2.0 sv=1 ;;
	bad) rel=sysd-b-bad ver=2.1 extra="$w/health-fail:/etc/tandem/health.d/50-app" ;;
	esac
	# shellcheck disable=SC2086 # one SRC:DST or none
	s_build_slot "$w/sysd-slot-$name.ext4" "$rel" $extra || return 1
	if ! "$T_IMAGE_TOOL" build --key "$w/tandem-keys/test.key" --image "$w/sysd-slot-$name.ext4" \
		--version "$ver" --security-version "$sv" --compatible "$T_COMPATIBLE" \
		--out "$S_BUNDLE" >"$w/sysd-bundle-$name.log" 2>&1; then
		cat "$w/sysd-bundle-$name.log" >&2
		return 1
	fi
	S_BUNDLES="$S_BUNDLES$name "
}

s_fresh_disk() {
	E2E_LAYOUT=$S_HERE/layout.sfdisk
	E2E_DISK=$E2E_WORK/$scenario.img
	cp --sparse=always "$E2E_WORK/sysd-template.img" "$E2E_DISK"
	E2E_QEMU_EXTRA=()
}

# s_serve DIR: serve DIR on 127.0.0.1 (an ephemeral port) and let the
# guest's 10.0.2.100:8080 reach it; s_unserve stops it.
s_serve() {
	local portf=$E2E_WORK/sysd-port
	rm -f "$portf"
	python3 - "$1" "$portf" >"$E2E_WORK/sysd-http.log" 2>&1 <<-'EOF' &
	import functools, http.server, sys
	h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
	s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
	open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
	import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
	s.serve_forever()
	EOF
	S_HTTP_PID=$!
	for _ in $(seq 50); do
		[ -s "$portf" ] && break
		sleep 0.1
	done
	[ -s "$portf" ] || { echo "e2e: the channel's HTTP server did not start" >&2; return 1; }
	# cmd: runs socat for each connection the guest opens (a tcp: chardev
	# would carry only the first one).
	# shellcheck disable=SC2054 # QEMU's options
	E2E_QEMU_EXTRA=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat - TCP:127.0.0.1:$(cat "$portf")"
		-device virtio-net-device,netdev=n0)
}
s_unserve() {
	if [ -n "${S_HTTP_PID:-}" ]; then
		kill "$S_HTTP_PID" 2>/dev/null || true
		wait "$S_HTTP_PID" 2>/dev/null || true
	fi
	S_HTTP_PID=""
	E2E_QEMU_EXTRA=()
}

# Boot timeouts scale with the first plain boot measured in this run
# (S_BOOT_T, from power-on to power-off): a plain boot may take 4 times
# as long, a boot that installs 8 times; before the measurement, 600 s.
S_BOOT_T=""
s_timeout() { # s_timeout FACTOR
	if [ -n "$S_BOOT_T" ]; then echo $(($1 * S_BOOT_T + 60)); else echo 600; fi
}
# s_boot NAME [FACTOR]: boot (run.sh) with the scaled timeout.
s_boot() {
	local t0=$SECONDS
	E2E_BOOT_TIMEOUT=$(s_timeout "${2:-4}") boot "$1"
	if [ -z "$S_BOOT_T" ] && [ "$boot_rc" = 0 ] && [ "${2:-4}" = 4 ]; then
		S_BOOT_T=$((SECONDS - t0))
		echo "        measured boot: ${S_BOOT_T}s; timeouts scale with it"
	fi
}
# s_boot_cut NAME REGEX [FACTOR]: boot_cut (tandem.sh) with the scaled timeout.
s_boot_cut() {
	E2E_BOOT_TIMEOUT=$(s_timeout "${3:-8}") boot_cut "$1" "$2"
}

# Checks of every systemd boot: the slot is mounted read-only and
# systemd is PID 1.
s_expect_sysd() {
	expect_log "root read-only under systemd ($1)" 'TANDEM-E2E root=ro init=systemd'
	# systemd breaks an ordering cycle by dropping a unit's start job:
	# the shipped tandem-daemon.service had one (fixed beside this test).
	if grep -a -q 'ordering cycle' "$cur_log"; then
		bad "no ordering cycle among the units ($1): $(grep -a -m1 'ordering cycle' "$cur_log" | tr -d '\r')"
	else
		ok "no ordering cycle among the units ($1)"
	fi
}
# The state of the unit tandem-confirm.service, as the action saw it.
s_unit_action() {
	cat <<-'EOF'
	echo "TANDEM-E2E unit tandem-confirm=$(systemctl is-active tandem-confirm.service) result=$(systemctl show -p Result --value tandem-confirm.service)"
	EOF
}

# 1. Slot A boots read-only under systemd; tandem-confirm.service
# confirms it (nobody else runs tandem confirm).
sc_sysd_first_boot() {
	scenario=sysd-first-boot
	s_fresh_disk
	{ s_unit_action; echo 'status first'; } | t_action 1
	s_boot 1
	expect "first boot slot" "$booted" A
	expect "first boot release" "$(e2e_booted_release "$cur_log")" sysd-a-v1
	s_expect_sysd 1
	expect_log "tandem-confirm.service succeeded" 'TANDEM-E2E unit tandem-confirm=active result=success'
	expect "status: A state" "$(t_json first .slots.A.state)" good
	expect "status: last boot" "$(t_json first .last_boot.result)" good
	expect "status: booted slot" "$(t_json first .booted_slot)" A
	expect "A counter reset by the unit's confirm" "$(e2e_env_get BOOT_A_LEFT)" 3
	expect "guest action rc" "$(e2e_action_rc "$cur_log")" 0
	expect "powered off by the driver" "$boot_rc" 0
}

# 2. An update from inside the running system: tandem-daemon.service
# polls the channel served by the host, installs B and reboots; B boots
# read-only and tandem-confirm.service confirms it.
sc_sysd_update() {
	scenario=sysd-update
	s_fresh_disk
	s_bundle good || { bad "building the bundle failed"; return; }
	local ch=$E2E_WORK/sysd-channel
	rm -rf "$ch" && mkdir -p "$ch"
	if ! "$T_IMAGE_TOOL" publish --channel "$ch" --key "$E2E_WORK/tandem-keys/test.key" \
		"$S_BUNDLE" >"$E2E_WORK/sysd-publish.log" 2>&1; then
		bad "tandem-image publish failed: $(tail -n1 "$E2E_WORK/sysd-publish.log")"
		return
	fi
	s_serve "$ch" || { bad "cannot serve the channel"; return; }
	echo on >"$E2E_WORK/sysd-flag" && e2e_data_put "$E2E_WORK/sysd-flag" e2e-daemon
	# The daemon reboots when it has installed; the action only waits.
	t_action 1 <<-'EOF'
	echo "TANDEM-E2E waiting for tandem-daemon.service"
	sleep 3600
	EOF
	s_boot 1 8
	expect "first boot slot" "$booted" A
	s_expect_sysd 1
	expect "the daemon's reboot ended the boot (not the timeout)" "$boot_rc" 0
	expect_log "the daemon installed B" 'tandem.*(installed|activated).*B|slot B'
	expect "boot order after the daemon's install" "$(e2e_env_get BOOT_ORDER)" "B A"
	expect "B tries after the install" "$(e2e_env_get BOOT_B_LEFT)" 3

	{ s_unit_action; echo 'status after-confirm'; } | t_action 2
	s_boot 2
	s_unserve
	expect "slot after the update" "$booted" B
	expect "release after the update" "$(e2e_booted_release "$cur_log")" sysd-b-v2
	s_expect_sysd 2
	expect_log "tandem-confirm.service confirmed B" 'TANDEM-E2E unit tandem-confirm=active result=success'
	expect "B good" "$(t_json after-confirm .slots.B.state)" good
	expect "B version" "$(t_json after-confirm .slots.B.version)" 2.0
	expect "last update" "$(t_json after-confirm .last_update.result)" success
	expect "nothing pending" "$(t_json after-confirm .pending_slot)" null
	expect "B counter reset by the unit's confirm" "$(e2e_env_get BOOT_B_LEFT)" 3
	expect "guest action rc" "$(e2e_action_rc "$cur_log")" 0
}

# 3. The new slot fails its health check: tandem-confirm.service marks it
# bad and reboots (confirm --reboot) before anything else runs; U-Boot
# boots A, where the failed update is reported.
sc_sysd_health_rollback() {
	scenario=sysd-health
	s_fresh_disk
	s_bundle bad || { bad "building the bundle failed"; return; }
	e2e_data_put "$S_BUNDLE" bundles/bad.tnd
	t_action 1 <<-'EOF'
	step install tandem install --progress=none /data/bundles/bad.tnd
	status after-install
	EOF
	s_boot 1 8
	expect "first boot slot" "$booted" A
	t_expect_rc "install from inside the running system" install 0
	expect "B installed" "$(t_json after-install .slots.B.state)" installed
	expect "boot order after install" "$(e2e_env_get BOOT_ORDER)" "B A"

	{ s_unit_action; echo 'status never'; } | t_action 2
	s_boot 2
	expect "slot after install" "$booted" B
	expect "release after install" "$(e2e_booted_release "$cur_log")" sysd-b-bad
	s_expect_sysd 2
	expect_log "the failing check's message" 'health: the application did not start'
	expect "the unit's reboot ended the boot" "$boot_rc" 0
	if grep -a -q 'TANDEM-E2E action start' "$cur_log"; then
		bad "the action ran on the unhealthy slot (the unit did not reboot first)"
	else
		ok "the unit rebooted before the action ran"
	fi
	expect "boot order after the failed confirm" "$(e2e_env_get BOOT_ORDER)" "A B"
	expect "B has no tries" "$(e2e_env_get BOOT_B_LEFT)" 0

	{ s_unit_action; echo 'status back-on-a'; } | t_action 3
	s_boot 3
	expect "slot after the rollback" "$booted" A
	expect "release after the rollback" "$(e2e_booted_release "$cur_log")" sysd-a-v1
	s_expect_sysd 3
	expect_log "tandem-confirm.service confirmed A" 'TANDEM-E2E unit tandem-confirm=active result=success'
	expect "A good" "$(t_json back-on-a .slots.A.state)" good
	expect "B bad" "$(t_json back-on-a .slots.B.state)" bad
	expect "last update" "$(t_json back-on-a .last_update.result)" failed
	t_expect_match "last update reason names the check" "$(t_json back-on-a .last_update.reason)" '50-app'
	expect "nothing pending" "$(t_json back-on-a .pending_slot)" null
}

# s_cut_install N REGEX [TEXT [HOW]]: boot N installs the good bundle
# from the running system, under cut-env.so (which announces each
# environment write; with TEXT it stops at the first write holding TEXT,
# HOW: half, the default, tears it; before leaves it unwritten), and the
# power is cut when the console shows REGEX.
s_cut_install() {
	t_action "$1" <<-EOF
	sync
	E2E_CUT_ENV='${3:-}' E2E_CUT_ENV_HOW='${4:-half}' LD_PRELOAD=/usr/libexec/e2e/cut-env.so \\
		tandem install --progress=json /data/bundles/b.tnd
	echo "TANDEM-E2E step install rc=\$?"
	EOF
	s_boot_cut "$1" "$2"
	expect "cut boot $1 slot" "$booted" A
	expect "the power was cut at /$2/ in boot $1" "$boot_rc" 0
	if grep -a -q -E 'step install rc=|"event":"(done|error)"' "$cur_log"; then
		bad "the install had ended before the cut in boot $1"
	else
		ok "the install had not ended at the cut in boot $1"
	fi
}
# s_after_cut N NAME: boot N after a cut: A boots, the unit confirms it,
# the action saves the status as NAME.
s_after_cut() {
	{ s_unit_action; echo "status $2"; } | t_action "$1"
	s_boot "$1"
	expect "slot after the cut (boot $1)" "$booted" A
	expect "release after the cut (boot $1)" "$(e2e_booted_release "$cur_log")" sysd-a-v1
	expect_log "tandem-confirm.service confirmed A (boot $1)" \
		'TANDEM-E2E unit tandem-confirm=active result=success'
	expect "A good (boot $1)" "$(t_json "$2" .slots.A.state)" good
	expect "A booted, first (boot $1)" "$(t_json "$2" .bootloader.boot_order)" "A B"
}

# 4. Power cuts (QEMU killed) at five points, each followed by a boot with
# the slot and status of docs/install.md's table: three points of the
# install (as the install phase begins; mid-stream; after the stream, as
# the activating store begins), in the environment store that activates
# B (cut-env.so tears the copy being written), and during confirm on B
# (a health check holds it). One disk throughout: each install after a cut starts from what the
# cut left, as on a device.
sc_sysd_power_cuts() {
	scenario=sysd-power-cuts
	s_fresh_disk
	s_bundle good || { bad "building the bundle failed"; return; }
	e2e_data_put "$S_BUNDLE" bundles/b.tnd

	# a) As the install phase begins.
	s_cut_install 1 '"event":"phase".*"phase":"install"'
	s_after_cut 2 after-cut-start
	t_expect_match "B not installed after a cut at the start" \
		"$(t_json after-cut-start .slots.B.state)" '^(installing|unknown)$'
	expect "nothing pending after a cut at the start" "$(t_json after-cut-start .pending_slot)" null

	# b) Mid-stream: image bytes written, the stream not ended.
	s_cut_install 3 '"event":"progress".*"written":[1-9]'
	s_after_cut 4 after-cut-stream
	expect "B installing after a cut mid-stream" "$(t_json after-cut-stream .slots.B.state)" installing
	expect "half-written B cannot boot" "$(e2e_env_get BOOT_B_LEFT)" 0

	# c) After the stream, as the activating store begins: B complete and
	# recorded (installed, pending), the environment unchanged. (The
	# activate phase's event comes about 40 ms before the store: too
	# close for the host to cut in between; cut-env.so holds the store.)
	s_cut_install 5 'TANDEM-E2E cut-point env-store' BOOT_ORDER=B before
	t_expect_match "the store was held after the activate phase began" \
		"$(grep -a -o -E '"phase":"activate"|cut-point env-store' "$cur_log" | tr '\n' ' ')" \
		'^"phase":"activate" cut-point env-store $'
	s_after_cut 6 after-cut-activate
	expect_log "both environment copies intact" 'Tandem: env copy0=1 copy1=1'
	expect "B installed after a cut before activation" "$(t_json after-cut-activate .slots.B.state)" installed
	expect "B interrupted, not failed" "$(t_json after-cut-activate .interrupted_slot)" B
	expect "no failed update after a cut before activation" \
		"$(t_json after-cut-activate .last_update.result)" null

	# d) In the activating store: half of the copy written, then the cut.
	# U-Boot and libubootenv keep the older copy.
	s_cut_install 7 'TANDEM-E2E cut-point env-store' BOOT_ORDER=B half
	s_after_cut 8 after-cut-env
	expect_log "U-Boot found one environment copy torn" 'Tandem: env copy0=(0 copy1=1|1 copy1=0)'
	expect "B installed after a cut in the store" "$(t_json after-cut-env .slots.B.state)" installed
	expect "B interrupted after a cut in the store" "$(t_json after-cut-env .interrupted_slot)" B

	# e) During confirm on B: activate B by hand (docs/install.md), boot
	# it, cut while its health check runs; the next boot is B again (a
	# try fewer) and the unit confirms it.
	t_action 9 <<-'EOF'
	step activate tandem activate B
	status after-activate
	EOF
	s_boot 9
	expect "slot of the activation" "$booted" A
	t_expect_rc "tandem activate B" activate 0
	expect "boot order after activate" "$(e2e_env_get BOOT_ORDER)" "B A"
	echo on >"$E2E_WORK/sysd-flag" && e2e_data_put "$E2E_WORK/sysd-flag" e2e-hold-confirm
	t_action 10 <<-'EOF'
	status never
	EOF
	s_boot_cut 10 'TANDEM-E2E cut-point confirm' 4
	expect "slot cut during confirm" "$booted" B
	expect "the power was cut during confirm" "$boot_rc" 0
	expect "B tries after the cut during confirm" "$(e2e_env_get BOOT_B_LEFT)" 2
	mdel -i "$(_e2e_mt 4)" ::/e2e-hold-confirm
	{ s_unit_action; echo 'status after-cut-confirm'; } | t_action 11
	s_boot 11
	expect "slot after the cut during confirm" "$booted" B
	expect "release after the cut during confirm" "$(e2e_booted_release "$cur_log")" sysd-b-v2
	expect_log "tandem-confirm.service confirmed B" 'TANDEM-E2E unit tandem-confirm=active result=success'
	expect "B good" "$(t_json after-cut-confirm .slots.B.state)" good
	expect "last update" "$(t_json after-cut-confirm .last_update.result)" success
	expect "nothing pending" "$(t_json after-cut-confirm .pending_slot)" null
	expect "B counter reset by confirm" "$(e2e_env_get BOOT_B_LEFT)" 3
}
