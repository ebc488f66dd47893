# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# End-to-end scenarios that run the real `tandem` updater inside the
# guest (issue 3, "The end-to-end test (real parts)"). Sourced by run.sh,
# which provides ok/bad/expect/expect_log/boot, $scenario, $cur_log and
# $short; lib.sh provides the e2e_* functions.
#
# The scenarios are the same for every bootloader backend (E2E_BACKEND:
# uboot on arm64 and x86, grub on x86): they read the boot state through
# lib.sh's e2e_bs_* functions, never through a backend's variable names.
#
# The guest runs the project's `tandem` built for it: cross-built with
# aarch64-linux-gnu- for arm64 (which proves the cross build), native for
# x86 (the 32-bit U-Boot boots a 64-bit kernel). Both are dynamic, so the
# binary travels with its libraries and loader (e2e_elf_extra).
#
# Guest configuration (/etc/tandem/tandem.conf): the state directory is
# on the data partition (/data, FAT), the only storage that survives a
# slot switch; the environment is the board's fw_env.config; the booted
# slot comes from tandem.slot= on /proc/cmdline, which the boot script
# appends. Each slot's initramfs carries the public key of a key pair made
# for this run and the health checks of that slot.
#
# Every scenario starts from a fresh copy of the same disk, and every
# boot is one bounded QEMU run. The action of a boot (/data/action.sh)
# prints "TANDEM-E2E step NAME rc=N" after each tandem command and saves
# `tandem status --json` under /data/results/ for the host to read.

# t_prepare: build the binaries, keys, initramfs and template disk. Sets
# T_* variables. Called in an `if` by run.sh (set -e is off there), so
# every step that can fail says so with `|| return 1`.
t_prepare() {
	local w=$E2E_WORK cross="" o log extra src
	case $E2E_ARCH in
	arm64)
		cross=aarch64-linux-gnu-
		T_COMPATIBLE=qemu-arm64
		;;
	x86)
		T_COMPATIBLE=qemu-x86_64
		;;
	esac
	o=build/$E2E_ARCH
	# The backend is the only difference between the U-Boot and the GRUB
	# runs of these scenarios (E2E_BACKEND, lib.sh).
	case $E2E_BACKEND in
	uboot) T_BOOTLOADER='{"type": "uboot", "env_config": "/etc/fw_env.config"}' ;;
	grub) T_BOOTLOADER='{"type": "grub", "grubenv": "/boot/grub/grubenv"}' ;;
	esac
	log=$w/tandem-make.log
	# The guest's binary, from the working tree (E2E_TANDEM_SRC names
	# another tree, e.g. a `git archive` of a commit under test); the host
	# tool from the native build. Incremental: seconds when nothing changed.
	src=${E2E_TANDEM_SRC:-$E2E_TOP}
	if ! make -C "$src" --no-print-directory O="$o" ${cross:+CROSS_COMPILE=$cross} \
		"$o/tandem" >"$log" 2>&1 ||
		! make -C "$src" --no-print-directory O=build/x86 build/x86/tandem-image >>"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "e2e: building tandem for $E2E_ARCH in $src failed (log: $log)" >&2
		return 1
	fi
	T_IMAGE_TOOL=$src/build/x86/tandem-image
	# The initramfs gets a stripped copy: the slots are only 64 MiB.
	"${cross}strip" -o "$w/tandem.bin" "$src/$o/tandem" || return 1
	echo "        tandem for $E2E_ARCH: $(file -b "$src/$o/tandem" | cut -d, -f1-2) ($src)"

	# A key pair of this run: nothing secret is kept in the tree.
	rm -rf "$w/tandem-keys"
	mkdir -p "$w/tandem-keys"
	"$T_IMAGE_TOOL" keygen --out "$w/tandem-keys/test.key" --pub "$w/tandem-keys/test.pem" \
		>/dev/null || return 1

	cat >"$w/tandem.conf" <<-EOF
	{
		"compatible": "$T_COMPATIBLE",
		"keyring": "/etc/tandem/keys",
		"state_dir": "/data/tandem-state",
		"cmdline": "/proc/cmdline",
		"bootloader": $T_BOOTLOADER,
		"slots": {"A": "/dev/vda2", "B": "/dev/vda3"},
		"boot_tries": 3,
		"health_dir": "/etc/tandem/health.d",
		"health_timeout": 20
	}
	EOF
	# A check every slot passes, so that confirm really runs one.
	cat >"$w/health-ok" <<-'EOF'
	#!/bin/sh
	# The data partition (state, bundles) must be mounted.
	grep -q ' /data vfat ' /proc/mounts
	EOF
	# The check of the broken update (scenario 3).
	cat >"$w/health-fail" <<-'EOF'
	#!/bin/sh
	echo "health: the application did not start" >&2
	exit 1
	EOF
	chmod 755 "$w/health-ok" "$w/health-fail"

	extra=$(e2e_elf_extra "$w/tandem.bin" /usr/bin/tandem) || return 1
	extra=$(echo "$extra" | tr '\n' ' ')
	extra="$extra $w/tandem.conf:/etc/tandem/tandem.conf"
	extra="$extra $w/tandem-keys/test.pem:/etc/tandem/keys/test.pem"
	extra="$extra $w/health-ok:/etc/tandem/health.d/10-data-mounted"
	# /data is mounted with no special options: tandem's state store
	# must be durable on plain vfat. (Before 7c796a5 it was not: vfat
	# writes a renamed file's directory entry with the file's inode, not
	# on an fsync of the directory, so after a cut state.json pointed to
	# freed clusters; scenario 5 caught it. E2E_DATA_MOUNT_OPTS=dirsync
	# was the workaround.)
	printf '%s\n' "${E2E_DATA_MOUNT_OPTS:-}" >"$w/data-mount-opts"
	extra="$extra $w/data-mount-opts:/etc/e2e-data-mount-opts"
	# x86: the torture test's cutshim.so, so that sc_tandem_env_cut can
	# kill tandem at an exact call inside its environment store.
	T_SHIM=""
	if [ "$E2E_ARCH" = x86 ]; then
		make -C "$src" --no-print-directory O=build torture-shim >>"$log" 2>&1 || return 1
		T_SHIM=$src/build/torture/cutshim.so
		extra="$extra $T_SHIM:/usr/lib/tandem-e2e/cutshim.so"
	fi
	T_INITRD_EXTRA=$extra
	E2E_INITRD_EXTRA=$extra e2e_build_disk "$w/tandem-template.img" slot-a-v1 slot-b-v1 || return 1
	cp "$w/initrd.img" "$w/tandem-initrd.img" || return 1
	T_BUNDLES=" "
}

# t_bundle NAME: build bundle NAME (once per run) into $T_BUNDLE.
#   good: slot B release slot-b-v2, version 2.0, security version 1
#   bad:  slot-b-bad, version 2.1, a failing health check in its initramfs
#   big:  slot-b-big, version 3.0, padded with random data (power cut)
t_bundle() {
	local name=$1 w=$E2E_WORK rel ver sv=0 initrd slot_extra=""
	initrd=$w/tandem-initrd.img
	T_BUNDLE=$w/bundle-$name.tnd
	case $T_BUNDLES in *" $name "*) return 0 ;; esac
	case $name in
	good) rel=slot-b-v2 ver=2.0 sv=1 ;;
	bad)
		rel=slot-b-bad ver=2.1
		initrd=$w/tandem-initrd-bad.img
		# shellcheck disable=SC2086 # a list of SRC:DST
		e2e_build_initrd "$initrd" $T_INITRD_EXTRA "$w/health-fail:/etc/tandem/health.d/50-app"
		;;
	big)
		rel=slot-b-big ver=3.0
		# Incompressible data: the bundle's payload grows by as much,
		# so that the install lasts long enough under TCG to be cut in
		# the middle. 24 MiB is what fits next to the arm64 kernel in a
		# 64 MiB slot.
		head -c $((24 << 20)) /dev/urandom >"$w/filler.bin"
		slot_extra="$w/filler.bin:/var/filler.bin"
		;;
	esac
	E2E_SLOT_EXTRA=$slot_extra e2e_build_slot "$w/slot-$name.ext4" "$rel" "$initrd"
	if ! "$T_IMAGE_TOOL" build --key "$w/tandem-keys/test.key" --image "$w/slot-$name.ext4" \
		--version "$ver" --security-version "$sv" --compatible "$T_COMPATIBLE" \
		--out "$T_BUNDLE" >"$w/bundle-$name.log" 2>&1; then
		cat "$w/bundle-$name.log" >&2
		return 1
	fi
	T_BUNDLES="$T_BUNDLES$name "
}

t_fresh_disk() {
	# The board's partition table (the systemd guest has its own).
	E2E_LAYOUT=$E2E_BOARD/layout.sfdisk
	E2E_DISK=$E2E_WORK/$scenario.img
	cp --sparse=always "$E2E_WORK/tandem-template.img" "$E2E_DISK"
}

# t_action NAME <<'EOF' ... EOF: the next boot's /data/action.sh, with
# helpers in front:
#   step NAME CMD...   run CMD, print "TANDEM-E2E step NAME rc=N"
#   status NAME        save `tandem status --json` to /data/results/NAME.json
#                      and show the text form on the console
t_action() {
	local a=$E2E_WORK/$scenario-$1.sh
	{
		cat <<-'EOF'
		mkdir -p /data/tandem-state /data/results
		step() {
			n=$1
			shift
			"$@"
			echo "TANDEM-E2E step $n rc=$?"
		}
		status() {
			tandem status --json >"/data/results/$1.json"
			echo "TANDEM-E2E step status-$1 rc=$?"
			tandem status
		}
		EOF
		cat
	} >"$a"
	e2e_set_action "$a"
}

# t_step_rc NAME: exit status of step NAME in the current boot log.
t_step_rc() {
	local s
	s=$(sed -n "s/.*TANDEM-E2E step $1 rc=\([0-9]*\).*/\1/p" "$cur_log" | tail -n1)
	echo "${s:-none}"
}
# t_json NAME JQ: a field of /data/results/NAME.json ("missing" if the
# file is not there).
t_json() {
	local f=$E2E_WORK/$scenario-$1.json
	if ! e2e_data_get "results/$1.json" "$f" 2>/dev/null; then
		echo missing
		return 0
	fi
	jq -r "$2" "$f" 2>/dev/null || echo "invalid-json"
}
t_expect_rc() { expect "$1" "$(t_step_rc "$2")" "$3"; }
# t_expect_match WHAT GOT REGEX
t_expect_match() {
	if printf '%s' "$2" | grep -q -E "$3"; then ok "$1 ('$2')"; else bad "$1: got '$2', want /$3/"; fi
}

# boot_cut NAME REGEX: like boot, but the power is cut when REGEX shows.
boot_cut() {
	cur_log=$E2E_WORK/$scenario-$1.log
	local t0=$SECONDS rc=0
	e2e_boot_cut "$cur_log" "$2" || rc=$?
	boot_rc=$rc
	booted=$(e2e_booted_slot "$cur_log")
	echo "        boot $1: slot=$booted cut_rc=$rc $((SECONDS - t0))s"
}

# The first boot's action of every update scenario: confirm the factory
# slot A, then install the bundle from the data partition.
t_confirm_and_install() {
	t_action 1 <<-EOF
	step confirm tandem confirm
	status before-install
	step install tandem install --progress=json /data/bundles/$1
	status after-install
	EOF
}
# Checks after that first boot: A confirmed, B installed and next.
t_check_installed() {
	local ver=$1
	expect "first boot slot" "$booted" A
	t_expect_rc "confirm on A" confirm 0
	expect "A good after confirm" "$(t_json before-install .slots.A.state)" good
	t_expect_rc "install from inside the guest" install 0
	expect_log "install reported done" '"event":"done".*"slot":"B".*"activated":true'
	expect "B installed" "$(t_json after-install .slots.B.state)" installed
	expect "B version" "$(t_json after-install .slots.B.version)" "$ver"
	expect "B pending" "$(t_json after-install .pending_slot)" B
	expect "boot order after install" "$(e2e_bs_order)" "B A"
	expect "B tries after install" "$(e2e_bs_tries B)" 3
}

# 1. First boot comes up on A; `tandem confirm` marks it good.
sc_tandem_first_boot() {
	scenario=tandem-first-boot
	t_fresh_disk
	t_action 1 <<-'EOF'
	step confirm tandem confirm
	status first
	step doctor tandem doctor
	ls -la /data/tandem-state
	EOF
	boot 1
	expect "first boot slot" "$booted" A
	expect "first boot release" "$(e2e_booted_release "$cur_log")" slot-a-v1
	t_expect_rc "tandem confirm" confirm 0
	expect "status: booted slot" "$(t_json first .booted_slot)" A
	expect "status: A state" "$(t_json first .slots.A.state)" good
	expect "status: last boot" "$(t_json first .last_boot.result)" good
	expect "status: boot order" "$(t_json first .bootloader.boot_order)" "A B"
	expect "status: A tries" "$(t_json first .slots.A.boot_tries_left)" 3
	expect "A counter reset by confirm (read on the host)" "$(e2e_bs_tries A)" 3
	t_expect_rc "tandem doctor" doctor 0
	expect "guest action rc" "$(e2e_action_rc "$cur_log")" 0
	# FAT has no rename-over of its own: the state store's temp file,
	# fsync, rename, fsync of the directory must leave state.json alone,
	# no state.json.tmp beside it (and the lock).
	expect "state_dir after confirm, status and doctor" \
		"$(e2e_data_ls tandem-state | tr '\n' ' ' | sed 's/ $//')" "lock state.json"
}

# 2. A bundle for B installed from inside the guest; B boots, is confirmed.
sc_tandem_update() {
	scenario=tandem-update
	t_fresh_disk
	t_bundle good
	e2e_data_put "$T_BUNDLE" bundles/b.tnd
	t_confirm_and_install b.tnd
	boot 1
	t_check_installed 2.0

	t_action 2 <<-'EOF'
	step confirm tandem confirm
	status after-confirm
	EOF
	boot 2
	expect "slot after install" "$booted" B
	expect "release after install" "$(e2e_booted_release "$cur_log")" slot-b-v2
	t_expect_rc "confirm on B" confirm 0
	expect "B good" "$(t_json after-confirm .slots.B.state)" good
	expect "B version" "$(t_json after-confirm .slots.B.version)" 2.0
	expect "last update" "$(t_json after-confirm .last_update.result)" success
	expect "nothing pending" "$(t_json after-confirm .pending_slot)" null
	expect "B counter reset by confirm" "$(e2e_bs_tries B)" 3
	expect "boot order" "$(e2e_bs_order)" "B A"
	# The floor confirm raised lives in the environment too (it outlives
	# a lost state directory), and the boot script's own save keeps it.
	expect "floor in the environment" "$(e2e_bs_var TANDEM_SECURITY_FLOOR)" 1
	# So does what B verifiably holds, which every later switch to B reads.
	local b_id
	b_id=$(e2e_bs_var TANDEM_B_IMAGE)
	expect "B's identity in the environment" "$(echo "$b_id" | grep -cx '1:[0-9a-f]\{64\}')" 1
	t_action 3 <<-'EOF'
	status after-reboot
	EOF
	boot 3
	expect "slot after a reboot" "$booted" B
	expect "B counter spent by the boot script" "$(e2e_bs_tries B)" 2
	expect "floor kept by the boot script's save" "$(e2e_bs_var TANDEM_SECURITY_FLOOR)" 1
	expect "B's identity kept by the boot script's save" "$(e2e_bs_var TANDEM_B_IMAGE)" "$b_id"
	expect "status: floor" "$(t_json after-reboot .security_floor)" 1
}

# 3. The new slot fails its health check: confirm exits 24 (E_HEALTH),
# marks it bad and puts A first; the next boot is A.
sc_tandem_health_rollback() {
	scenario=tandem-health
	t_fresh_disk
	t_bundle bad
	e2e_data_put "$T_BUNDLE" bundles/bad.tnd
	t_confirm_and_install bad.tnd
	boot 1
	t_check_installed 2.1

	t_action 2 <<-'EOF'
	step confirm tandem confirm
	status after-confirm
	EOF
	boot 2
	expect "slot after install" "$booted" B
	expect "release after install" "$(e2e_booted_release "$cur_log")" slot-b-bad
	t_expect_rc "confirm fails the health check (E_HEALTH)" confirm 24
	expect_log "the failing check's message" 'health: the application did not start'
	expect "B bad" "$(t_json after-confirm .slots.B.state)" bad
	expect "A first" "$(t_json after-confirm .bootloader.boot_order)" "A B"
	expect "B has no tries" "$(t_json after-confirm .slots.B.boot_tries_left)" 0
	expect "last update" "$(t_json after-confirm .last_update.result)" failed
	t_expect_match "last update reason names the check" "$(t_json after-confirm .last_update.reason)" '50-app'
	expect "last boot" "$(t_json after-confirm .last_boot.result)" bad

	t_action 3 <<-'EOF'
	step confirm tandem confirm
	status back-on-a
	EOF
	boot 3
	expect "slot after the rollback" "$booted" A
	expect "release after the rollback" "$(e2e_booted_release "$cur_log")" slot-a-v1
	t_expect_rc "confirm on A again" confirm 0
	expect "A still good" "$(t_json back-on-a .slots.A.state)" good
	expect "the failed update is still reported" "$(t_json back-on-a .last_update.result)" failed
	expect "B stays bad" "$(t_json back-on-a .slots.B.state)" bad
}

# 4. The new slot never reaches confirm: a hang ended by the watchdog, a
# kernel panic, a hang ended by the harness (power cut). U-Boot falls back
# to A after the third; confirm there records the failed update.
# --short: three hangs ended by the harness, the cheapest boot that never
# confirms (sc_watchdog covers the watchdog there): the same three tries
# spent by U-Boot and the same fallback, in about half the time.
sc_tandem_no_confirm() {
	scenario=tandem-no-confirm
	t_fresh_disk
	t_bundle good
	e2e_data_put "$T_BUNDLE" bundles/b.tnd
	t_confirm_and_install b.tnd
	boot 1
	t_check_installed 2.0

	if [ "$short" = 1 ]; then
		local i
		t_action 2 <<-'EOF'
		echo "TANDEM-E2E hanging"
		sleep 600
		EOF
		for i in 2 3 4; do
			boot_cut "$i" 'TANDEM-E2E hanging'
			expect "hang $((i - 1)) boot slot" "$booted" B
			expect "the harness cut the power ($((i - 1)))" "$boot_rc" 0
			expect "B tries after hang $((i - 1))" "$(e2e_bs_tries B)" $((4 - i))
		done
		t_no_confirm_fallback
		return
	fi

	# softdog: opened and never fed, it resets the guest after 5 s.
	t_action 2 <<-'EOF'
	e2e-load softdog soft_margin=5
	exec 3>/dev/watchdog
	echo "TANDEM-E2E hanging"
	sleep 600
	EOF
	boot 2
	expect "hang boot slot" "$booted" B
	expect "release" "$(e2e_booted_release "$cur_log")" slot-b-v2
	expect "ended by the watchdog, not the harness" "$boot_rc" 0
	expect_log "softdog fired" 'softdog: Initiating system reboot'
	expect "B tries after the hang" "$(e2e_bs_tries B)" 2

	t_action 3 <<-'EOF'
	echo c >/proc/sysrq-trigger
	EOF
	boot 3
	expect "panic boot slot" "$booted" B
	expect_log "kernel panicked" 'Kernel panic'
	expect "B tries after the panic" "$(e2e_bs_tries B)" 1

	t_action 4 <<-'EOF'
	echo "TANDEM-E2E hanging"
	sleep 600
	EOF
	boot_cut 4 'TANDEM-E2E hanging'
	expect "silent hang boot slot" "$booted" B
	expect "the harness cut the power" "$boot_rc" 0
	expect "B tries after the cut" "$(e2e_bs_tries B)" 0
	t_no_confirm_fallback
}

# The fifth boot of scenario 4: B's tries are gone, U-Boot boots A, and
# confirm there finds out that B never came up.
t_no_confirm_fallback() {
	t_action 5 <<-'EOF'
	step confirm tandem confirm
	status after-fallback
	EOF
	boot 5
	expect "slot after the tries ran out" "$booted" A
	expect "release" "$(e2e_booted_release "$cur_log")" slot-a-v1
	t_expect_rc "confirm on A" confirm 0
	expect "last update" "$(t_json after-fallback .last_update.result)" failed
	expect "last update slot" "$(t_json after-fallback .last_update.slot)" B
	t_expect_match "reason mentions the boot tries" "$(t_json after-fallback .last_update.reason)" 'boot tries'
	expect "B bad" "$(t_json after-fallback .slots.B.state)" bad
	expect "A good" "$(t_json after-fallback .slots.A.state)" good
	expect "last boot" "$(t_json after-fallback .last_boot.result)" good
	expect "nothing pending" "$(t_json after-fallback .pending_slot)" null
	expect_log "text status shows the failed update" 'last update: failed'
}

# 5. Power cut in the middle of an install: the old slot boots; the same
# install run again succeeds and B boots.
sc_tandem_power_cut() {
	scenario=tandem-power-cut
	t_fresh_disk
	t_bundle big
	e2e_data_put "$T_BUNDLE" bundles/big.tnd
	t_action 1 <<-'EOF'
	step confirm tandem confirm
	# What confirm wrote must be on disk before the power goes.
	sync
	tandem install --progress=json /data/bundles/big.tnd
	echo "TANDEM-E2E step install rc=$?"
	EOF
	# Cut at the first progress event that shows image bytes written.
	boot_cut 1 '"event":"progress".*"written":[1-9]'
	expect "slot of the interrupted install" "$booted" A
	expect "cut while installing" "$boot_rc" 0
	local last written total
	last=$(grep -a '"event":"progress"' "$cur_log" | tail -n1)
	written=$(printf '%s' "$last" | sed -n 's/.*"written":\([0-9]*\).*/\1/p')
	total=$(printf '%s' "$last" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
	echo "        cut after $written of $total bytes written"
	if [ -n "$written" ] && [ -n "$total" ] && [ "$written" -gt 0 ] && [ "$written" -lt "$total" ]; then
		ok "the cut landed mid-stream ($written of $total bytes)"
	else
		bad "the cut did not land mid-stream (last progress: $last)"
	fi
	if grep -a -q -E '"event":"(done|error)"|"phase":"activate"|step install rc=' "$cur_log"; then
		bad "the install ended before the cut"
	else
		ok "the install had not ended at the cut"
	fi
	# The state (B "installing") and the data partition must both have
	# survived the cut. fsck.fat -n reports the dirty bit that any cut
	# leaves; only real damage counts.
	dd if="$E2E_DISK" of="$E2E_WORK/$scenario-data.vfat" bs=512 status=none \
		skip="$(_e2e_part_start 4)" count="$(_e2e_part_sectors 4)"
	fsck.fat -n "$E2E_WORK/$scenario-data.vfat" >"$E2E_WORK/$scenario-fsck.txt" 2>&1 || true
	expect "data partition (state_dir) consistent after the cut" \
		"$(grep -v -E '^fsck.fat|[Dd]irty bit|^Leaving filesystem|files, .* clusters$|^ *$' \
			"$E2E_WORK/$scenario-fsck.txt" | tr '\n' ' ' | sed 's/ *$//')" ""
	expect "boot order after the cut" "$(e2e_bs_order)" "A B"
	expect "half-written B cannot boot" "$(e2e_bs_tries B)" 0

	t_action 2 <<-'EOF'
	step confirm tandem confirm
	status after-cut
	step install tandem install --progress=json /data/bundles/big.tnd
	status after-install
	EOF
	boot 2
	expect "slot after the cut" "$booted" A
	expect "release after the cut" "$(e2e_booted_release "$cur_log")" slot-a-v1
	t_expect_rc "confirm after the cut" confirm 0
	expect "B recorded as installing" "$(t_json after-cut .slots.B.state)" installing
	t_expect_rc "the same install again" install 0
	expect "B installed" "$(t_json after-install .slots.B.state)" installed
	expect "boot order after the install" "$(e2e_bs_order)" "B A"

	t_action 3 <<-'EOF'
	step confirm tandem confirm
	status after-confirm
	EOF
	boot 3
	expect "slot after the second install" "$booted" B
	expect "release after the second install" "$(e2e_booted_release "$cur_log")" slot-b-big
	t_expect_rc "confirm on B" confirm 0
	expect "B good" "$(t_json after-confirm .slots.B.state)" good
	expect "last update" "$(t_json after-confirm .last_update.result)" success
}

# 6. Power cuts at the two stores of the boot environment: the boot
# script's (cut as soon as it prints its choice, just before it saves)
# and the updater's (`tandem activate`, which stores once). Each leaves
# the environment readable, by the boot script and by tandem, and the
# device then finishes the update: B boots and is confirmed, whether or
# not the cut store landed.
#
# Where the updater's cut lands: on x86 exactly, with the torture test's
# cutshim.so in the guest (t_prepare), which kills `tandem activate` at
# a write-path call on /boot, after which the harness cuts the power:
#   kill:1        before the store's write, nothing synced: the old
#                 environment;
#   tear:1:sync   inside the write, its first 512-byte sector written,
#                 then `sync` (the disk got that sector, not the second):
#                 the new state of Tandem's variables, all in the first
#                 sector (docs/boot-protocol.md, "GRUB");
#   kill:2:sync   after the write, before its fsync, then `sync`: the new
#                 environment.
# On arm64 (no shim built for it), and as a fourth case on x86: a cut as
# soon as the activation starts, wherever that lands (the log says which
# state it left).
sc_tandem_env_cut() {
	scenario=tandem-env-cut
	t_fresh_disk
	e2e_set_action -
	boot_cut 1 'Tandem: slot='
	expect "cut during the boot script's store" "$boot_rc" 0
	t_expect_match "A's tries after that cut (saved or not)" "$(e2e_bs_tries A)" '^[23]$'
	expect "boot order after that cut" "$(e2e_bs_order)" "A B"
	boot 2
	expect "the boot after that cut" "$booted" A

	local v variants="timed"
	[ -z "${T_SHIM:-}" ] || variants="kill:1 tear:1:sync kill:2:sync timed"
	[ "$short" = 0 ] || [ -z "${T_SHIM:-}" ] || variants="kill:1 tear:1:sync"
	for v in $variants; do
		t_env_cut_activation "$v"
	done
}

# t_env_cut_activation MODE:N|timed: one cut of `tandem activate B` on a
# fresh disk, then the boots that finish the update.
t_env_cut_activation() {
	local v=$1 shim="" after="" order n
	scenario=tandem-env-cut-${v//:/}
	t_fresh_disk
	t_bundle good
	e2e_data_put "$T_BUNDLE" bundles/b.tnd
	if [ "$v" != timed ]; then
		n=${v#*:}
		n=${n%%:*}
		shim="LD_PRELOAD=/usr/lib/tandem-e2e/cutshim.so CUTSHIM_DIR=/boot CUTSHIM_CUT=$n"
		# half of the 1024-byte store: its first sector
		[ "${v%%:*}" != tear ] || shim="$shim CUTSHIM_TEAR=1 CUTSHIM_TEAR_EIGHTHS=4 CUTSHIM_TEAR_SECTOR=512"
		case $v in *:sync) after=sync ;; esac
	fi
	t_action 1 <<-EOF
	step confirm tandem confirm
	step install tandem install --no-activate /data/bundles/b.tnd
	sync
	echo "TANDEM-E2E storing"
	$shim tandem activate B
	rc=\$?
	$after
	echo "TANDEM-E2E stored rc=\$rc"
	EOF
	if [ "$v" = timed ]; then
		boot_cut 1 'TANDEM-E2E storing'
	else
		boot_cut 1 'TANDEM-E2E stored rc='
		# SIGKILL (137) from the shim: the activation died in the store
		t_expect_match "the shim killed tandem activate ($v)" \
			"$(sed -n 's/.*TANDEM-E2E stored rc=\([0-9]*\).*/\1/p' "$cur_log" | tail -n1)" '^137$'
	fi
	expect "slot of the cut activation" "$booted" A
	expect "the power was cut" "$boot_rc" 0
	t_expect_rc "confirm before the cut" confirm 0
	t_expect_rc "install before the cut" install 0
	order=$(e2e_bs_order)
	t_expect_match "boot order after the cut (either store)" "$order" '^(A B|B A)$'
	echo "        cut $v: the environment had ${order%% *} first, B_LEFT=$(e2e_bs_tries B)"
	case $v in
	kill:1) expect "a cut before the store's write keeps the old order" "$order" "A B" ;;
	tear:*:sync)
		# GRUB: Tandem's variables all sit in the block's first sector,
		# which landed. U-Boot: the torn copy fails its CRC and the other
		# (redundant) copy, the old order, stands.
		if [ "$E2E_BACKEND" = grub ]; then
			expect "the store's synced first sector switched the order" "$order" "B A"
		else
			expect "a torn copy is refused, the old one stands" "$order" "A B"
		fi
		;;
	*:sync) expect "the store, synced, switched the order" "$order" "B A" ;;
	esac

	t_action 2 <<-'EOF'
	step confirm tandem confirm
	status after-cut
	step doctor tandem doctor
	if [ "$TANDEM_SLOT" = A ]; then
		step activate tandem activate B
	fi
	EOF
	boot 2
	t_expect_rc "confirm after the cut" confirm 0
	t_expect_rc "doctor after the cut" doctor 0
	if [ "$booted" = A ]; then
		expect "the store had not landed: A was first" "$order" "A B"
		expect "B not failed (never tried)" "$(t_json after-cut .slots.B.state)" installed
		t_expect_rc "activate B again" activate 0
		t_action 3 <<-'EOF'
		step confirm tandem confirm
		status after-confirm
		EOF
	else
		expect "the store had landed: B boots" "$booted" B
		t_action 3 <<-'EOF'
		status after-confirm
		EOF
	fi
	boot 3
	expect "slot in the end" "$booted" B
	expect "release in the end" "$(e2e_booted_release "$cur_log")" slot-b-v2
	expect "B good" "$(t_json after-confirm .slots.B.state)" good
	expect "last update" "$(t_json after-confirm .last_update.result)" success
}

# 7. The BusyBox init script: BusyBox's init is PID 1 (guest/busybox-init),
# its rcS runs bootloader-hooks/init.d/S99tandem-confirm, which confirms
# A, and on an update whose health check fails, marks B bad and reboots
# (through /sbin/reboot and BusyBox's init) before the action runs.
sc_tandem_busybox_init() {
	scenario=tandem-busybox-init
	local w=$E2E_WORK bb=$E2E_TOP/tests/e2e/guest/busybox-init extra
	extra="$T_INITRD_EXTRA $bb/inittab:/etc/inittab $E2E_TOP/tests/e2e/guest/init:/etc/init.d/rcS"
	extra="$extra $E2E_TOP/bootloader-hooks/init.d/S99tandem-confirm:/etc/init.d/S99tandem-confirm"
	# shellcheck disable=SC2086 # lists of SRC:DST
	if ! E2E_INITRD_INIT=$bb/init e2e_build_initrd "$w/bbinit-initrd.img" $extra ||
		! E2E_INITRD_INIT=$bb/init e2e_build_initrd "$w/bbinit-initrd-bad.img" $extra \
			"$w/health-fail:/etc/tandem/health.d/50-app" ||
		! e2e_build_slot "$w/bbinit-a.ext4" bbinit-a-v1 "$w/bbinit-initrd.img" ||
		! e2e_build_slot "$w/bbinit-bad.ext4" bbinit-b-bad "$w/bbinit-initrd-bad.img" ||
		! "$T_IMAGE_TOOL" build --key "$w/tandem-keys/test.key" --image "$w/bbinit-bad.ext4" \
			--version 2.1 --compatible "$T_COMPATIBLE" --out "$w/bbinit-bad.tnd" >"$w/bbinit-bundle.log" 2>&1; then
		bad "building the BusyBox init slots or bundle failed"
		return
	fi
	t_fresh_disk
	dd if="$w/bbinit-a.ext4" of="$E2E_DISK" bs=1M seek=$(($(_e2e_part_start 2) * 512)) oflag=seek_bytes \
		conv=notrunc,sparse status=none
	e2e_data_put "$w/bbinit-bad.tnd" bundles/bad.tnd
	t_action 1 <<-'EOF'
	status before-install
	step install tandem install --progress=none /data/bundles/bad.tnd
	EOF
	boot 1
	expect "first boot slot" "$booted" A
	expect "first boot release" "$(e2e_booted_release "$cur_log")" bbinit-a-v1
	expect_log "S99tandem-confirm ran" 'tandem: confirming the booted slot'
	expect "A good (confirmed by the init script)" "$(t_json before-install .slots.A.state)" good
	t_expect_rc "install" install 0
	expect "boot order after install" "$(e2e_env_get BOOT_ORDER)" "B A"
	expect "powered off through BusyBox's init" "$boot_rc" 0

	boot 2
	expect "slot after install" "$booted" B
	expect_log "S99tandem-confirm ran on B" 'tandem: confirming the booted slot'
	expect_log "the failing check's message" 'health: the application did not start'
	if grep -a -q 'TANDEM-E2E action start' "$cur_log"; then
		bad "the action ran on the unhealthy slot (the init script did not reboot first)"
	else
		ok "the init script rebooted before the action ran"
	fi
	expect "the reboot ended the boot" "$boot_rc" 0
	expect_log "rebooted through BusyBox's init" 'The system is going down|Requesting system reboot'
	expect "boot order after the failed confirm" "$(e2e_env_get BOOT_ORDER)" "A B"

	t_action 3 <<-'EOF'
	status back-on-a
	EOF
	boot 3
	expect "slot after the rollback" "$booted" A
	expect "A good" "$(t_json back-on-a .slots.A.state)" good
	expect "B bad" "$(t_json back-on-a .slots.B.state)" bad
	expect "last update" "$(t_json back-on-a .last_update.result)" failed
}
