#!/bin/bash
# SPDX-License-Identifier: MIT
# End-to-end test of the A/B boot protocol on Debian's real U-Boot under
# QEMU (TCG), with Debian kernels and libubootenv's tools in the guest.
#
# usage: tests/e2e/run.sh [--short] [--arch arm64|x86] [--backend uboot|grub]
#   --short   quick subset for `make check`: arm64 only, shorter
#             watchdog test, no panic, genimage or never-confirms test,
#             the updater's never-confirmed scenario with harness cuts only
#   --arch    one architecture (default: arm64 and x86; --short: arm64)
#   --backend the bootloader (default uboot): grub runs the updater's
#             scenarios (tandem.sh, the same driver) on x86 with SeaBIOS
#             and GRUB for BIOS installed on the disk
#             (board-configs/qemu-x86_64-grub)
# E2E_ONLY="sc_a sc_b" runs only the named scenario functions.
# Prints "N passed, N failed" last; exits non-zero if anything failed,
# and also when QEMU, Debian's U-Boot or an architecture's packages are
# missing (one FAIL line says which): there is no skip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# The scenarios that run the real updater in the guest (sc_tandem_*).
# shellcheck source=tandem.sh
. "$here/tandem.sh"
# The systemd guest: a read-only Debian root under systemd (sc_sysd_*).
# shellcheck source=sysd.sh
. "$here/sysd.sh"
# sc_boot_model: tests/lib/bootmodel.py against select.cmd on U-Boot.
# shellcheck source=model.sh
. "$here/model.sh"

short=0
arches=""
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1 ;;
	--arch) arches="$arches ${2:?--arch needs arm64 or x86}"; shift ;;
	--arch=*) arches="$arches ${1#--arch=}" ;;
	--backend) E2E_BACKEND=${2:?--backend needs uboot or grub}; shift ;;
	--backend=*) E2E_BACKEND=${1#--backend=} ;;
	-h | --help) sed -n '3,18p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
E2E_BACKEND=${E2E_BACKEND:-uboot}
case $E2E_BACKEND in
uboot | grub) ;;
*) echo "run.sh: unknown backend $E2E_BACKEND (uboot or grub)" >&2; exit 2 ;;
esac
export E2E_BACKEND
if [ -z "$arches" ]; then
	if [ "$E2E_BACKEND" = grub ]; then arches=x86
	elif [ $short = 1 ]; then arches=arm64
	else arches="arm64 x86"; fi
fi
arches=${arches# }

# Installing packages needs root; without root everything must be there.
# A missing package, QEMU, U-Boot or architecture is a failure, never a
# skip: a suite that passes without having run proves nothing.
# shellcheck disable=SC2086 # a list of architectures
deps_for=$arches
[ "$E2E_BACKEND" != grub ] || deps_for="$arches grub"
# shellcheck disable=SC2086 # a list of architectures
if ! "$here/deps.sh" $deps_for; then
	echo "FAIL: e2e: packages for $deps_for are missing (as root, tests/e2e/deps.sh $deps_for installs them)"
	exit 1
fi

passed=0
failed=0
failures=""
cur_log=""

ok() {
	passed=$((passed + 1))
	echo "  PASS  $E2E_ARCH $scenario: $1"
}
bad() {
	failed=$((failed + 1))
	failures="$failures
  $E2E_ARCH $scenario: $1"
	echo "  FAIL  $E2E_ARCH $scenario: $1"
	if [ -n "$cur_log" ] && [ -f "$cur_log" ]; then
		echo "        --- last lines of $cur_log"
		# || true: a log without such lines (a boot that printed nothing)
		# must not end the whole run (set -e, pipefail).
		grep -a -E 'Tandem|TANDEM|Error|error|panic|softdog' "$cur_log" | tail -n 15 | sed 's/^/        | /' || true
	fi
}
# expect WHAT GOT WANT
expect() {
	if [ "$2" = "$3" ]; then ok "$1 = $3"; else bad "$1: got '$2', want '$3'"; fi
}
# expect_log WHAT REGEX: the current boot log has a line matching REGEX.
expect_log() {
	if grep -a -q -E "$2" "$cur_log"; then ok "$1"; else bad "$1 (no /$2/ in log)"; fi
}

# boot NAME: power the board on once; sets cur_log and booted.
boot() {
	cur_log=$E2E_WORK/$scenario-$1.log
	local t0=$SECONDS rc=0
	e2e_boot "$cur_log" || rc=$?
	boot_rc=$rc
	booted=$(e2e_booted_slot "$cur_log")
	echo "        boot $1: slot=$booted qemu_rc=$rc $((SECONDS - t0))s"
}

fresh_disk() {
	E2E_LAYOUT=$E2E_BOARD/layout.sfdisk
	E2E_DISK=$E2E_WORK/$scenario.img
	cp --sparse=always "$E2E_WORK/template.img" "$E2E_DISK"
}

action_file() { # action_file NAME: path of a new action script
	echo "$E2E_WORK/$scenario-$1.sh"
}

# --- scenarios -------------------------------------------------------
# A + B: first boot on A, the guest's libubootenv sees U-Boot's write,
# marks A good and switches to B in one store; B boots and is confirmed.
sc_first_boot_and_switch() {
	scenario=first-boot
	fresh_disk
	local a
	a=$(action_file 1)
	cat >"$a" <<-'ACT'
	fw_printenv >/data/results/env-boot1.txt
	# What `tandem confirm` + `tandem install` will do: A good, then B
	# first with 3 tries, all in one libubootenv store.
	printf 'BOOT_A_LEFT=3\nBOOT_ORDER=B A\nBOOT_B_LEFT=3\n' >/tmp/s
	fw_setenv -s /tmp/s
	ACT
	e2e_set_action "$a"
	boot 1
	expect "first boot slot" "$booted" A
	expect "first boot release" "$(e2e_booted_release "$cur_log")" slot-a-v1
	expect_log "U-Boot decremented A before booting" 'Tandem: slot=A BOOT_ORDER=A B BOOT_A_LEFT=2 BOOT_B_LEFT=3'
	expect_log "U-Boot wrote the spare copy" 'Tandem: saved uboot-redund.env seq=0x02'
	e2e_data_get results/env-boot1.txt "$E2E_WORK/env-boot1.txt" 2>/dev/null || : >"$E2E_WORK/env-boot1.txt"
	expect "guest fw_printenv sees U-Boot's copy" "$(grep BOOT_A_LEFT "$E2E_WORK/env-boot1.txt" | tr -d '\r')" BOOT_A_LEFT=2
	expect "guest action rc" "$(e2e_action_rc "$cur_log")" 0
	expect "env after guest store" "$(e2e_env_dump | tr '\n' ' ')" "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=B A "
	expect "guest store wrote copy 0 with next sequence" "$(e2e_env_seq uboot.env)" 3

	scenario=switch-to-B
	a=$(action_file 2)
	echo 'fw_setenv BOOT_B_LEFT 3' >"$a"
	e2e_set_action "$a"
	boot 2
	expect "boot after switch slot" "$booted" B
	expect "boot after switch release" "$(e2e_booted_release "$cur_log")" slot-b-v1
	expect_log "U-Boot read the guest's copy and decremented B" 'Tandem: env copy0=1 copy1=1 current=0 seq=0x03 next=0x04'
	expect_log "B_LEFT decremented" 'Tandem: slot=B BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=2'
	expect "B confirmed by guest" "$(e2e_env_get BOOT_B_LEFT)" 3
}

# The factory disk made by genimage (make disk, scripts/mkdisk.sh) from
# only a slot A image: U-Boot finds the boot script and the initialised
# env on it and boots A; the empty slot B is never tried.
sc_genimage_disk() {
	scenario=genimage-disk
	e2e_build_slot "$E2E_WORK/factory-a.ext4" factory-a-v1 "$E2E_WORK/initrd.img"
	if ! "$E2E_TOP/scripts/mkdisk.sh" "$(basename "$E2E_BOARD")" "$E2E_WORK/factory-a.ext4" \
		"$E2E_WORK/genimage-disk.img" >/dev/null; then
		bad "scripts/mkdisk.sh failed"
		return
	fi
	e2e_use_disk "$E2E_WORK/genimage-disk.img"
	boot 1
	expect "genimage disk boots slot" "$booted" A
	expect "genimage disk release" "$(e2e_booted_release "$cur_log")" factory-a-v1
	expect_log "U-Boot read the factory env" 'Tandem: slot=A BOOT_ORDER=A B BOOT_A_LEFT=2 BOOT_B_LEFT=3'
	expect "env after first boot" "$(e2e_env_get BOOT_A_LEFT)" 2
}

# Factory provisioning from a host (docs/factory.md): the board's disk
# as genimage makes it, but with both slots zero and both environment
# copies zeroed (no valid CRC). The host's tandem provisions it through
# loop devices over the two slot partitions and the environment files
# copied off the boot partition; then the board must boot slot A, and
# slot B (the copy) once it is put first.
sc_provision_disk() {
	scenario=provision-disk
	local w=$E2E_WORK/provision compat host=$E2E_TOP/build/host la lb rc=0 i
	compat=qemu-$([ "$E2E_ARCH" = x86 ] && echo x86_64 || echo arm64)
	rm -rf "$w" && mkdir -p "$w/keys" "$w/env" || { bad "cannot make $w"; return; }
	if ! make -C "$E2E_TOP" --no-print-directory O=build/host build/host/tandem \
		build/host/tandem-image >"$w/make.log" 2>&1; then
		bad "building the host's tandem failed (log: $w/make.log)"
		return
	fi
	e2e_build_slot "$w/slot.ext4" provisioned-v1 "$E2E_WORK/initrd.img"
	"$host/tandem-image" keygen --out "$w/key.pem" --pub "$w/keys/release.pem" >/dev/null
	"$host/tandem-image" -q build --key "$w/key.pem" --image "$w/slot.ext4" --version 1.0 \
		--compatible "$compat" --out "$w/v1.tnd"
	head -c 1M /dev/zero >"$w/zero.img"
	if ! "$E2E_TOP/scripts/mkdisk.sh" "$(basename "$E2E_BOARD")" "$w/zero.img" "$w/disk.img" >/dev/null; then
		bad "scripts/mkdisk.sh failed"
		return
	fi
	e2e_use_disk "$w/disk.img"
	head -c $((E2E_ENV_SIZE)) /dev/zero >"$w/env/zero"
	e2e_env_put uboot.env "$w/env/zero"
	e2e_env_put uboot-redund.env "$w/env/zero"

	# The provisioning host's side.
	mcopy -o -i "$(_e2e_mt 1)" ::/uboot.env ::/uboot-redund.env "$w/env/"
	printf '%s 0x0 %s\n' "$w/env/uboot.env" "$E2E_ENV_SIZE" "$w/env/uboot-redund.env" \
		"$E2E_ENV_SIZE" >"$w/env/fw_env.config"
	la=$(losetup -f --show -o $(($(_e2e_part_start 2) * 512)) \
		--sizelimit $(($(_e2e_part_sectors 2) * 512)) "$w/disk.img") || { bad "losetup"; return; }
	lb=$(losetup -f --show -o $(($(_e2e_part_start 3) * 512)) \
		--sizelimit $(($(_e2e_part_sectors 3) * 512)) "$w/disk.img") || { losetup -d "$la"; bad "losetup"; return; }
	echo "console=tty0" >"$w/cmdline"
	cat >"$w/tandem.conf" <<-EOF
	{
		"compatible": "$compat",
		"keyring": "$w/etc/keys",
		"state_dir": "$w/state",
		"cmdline": "$w/cmdline",
		"bootloader": {"type": "uboot", "env_config": "$w/env/fw_env.config"},
		"slots": {"A": "$la", "B": "$lb"},
		"boot_tries": 3
	}
	EOF
	for i in 1 2; do
		"$host/tandem" -c "$w/tandem.conf" provision --progress=none --json --keyring "$w/keys" \
			"$w/v1.tnd" >"$w/run$i.json" 2>"$w/run$i.err" || rc=$?
	done
	losetup -d "$la" "$lb"
	expect "provision exit status" "$rc" 0
	expect "first run wrote both slots and the environment" \
		"$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["slots"]["A"]["action"], r["slots"]["B"]["action"], r["environment"]["action"], r["environment"]["was_blank"])' "$w/run1.json" 2>&1)" \
		"written written written True"
	expect "second run wrote nothing" \
		"$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["slots"]["A"]["action"], r["slots"]["B"]["action"], r["environment"]["action"], r["state"]["action"])' "$w/run2.json" 2>&1)" \
		"unchanged unchanged unchanged unchanged"
	mcopy -o -i "$(_e2e_mt 1)" "$w/env/uboot.env" "$w/env/uboot-redund.env" ::/

	boot 1
	expect "provisioned board boots slot" "$booted" A
	expect "provisioned slot A release" "$(e2e_booted_release "$cur_log")" provisioned-v1
	expect_log "U-Boot read the provisioned env" 'Tandem: slot=A BOOT_ORDER=A B BOOT_A_LEFT=2 BOOT_B_LEFT=3'
	e2e_env_set "BOOT_ORDER=B A"
	boot 2
	expect "with B first, the board boots slot" "$booted" B
	expect "provisioned slot B release" "$(e2e_booted_release "$cur_log")" provisioned-v1
}

# C: B never confirms (the guest powers off without touching the env):
# three boots on B, then U-Boot falls back to A.
sc_never_confirms() {
	scenario=never-confirms
	fresh_disk
	e2e_env_set "BOOT_ORDER=B A" "BOOT_B_LEFT=3"
	e2e_set_action -
	local i
	for i in 1 2 3; do
		boot "$i"
		expect "unconfirmed boot $i slot" "$booted" B
		expect "BOOT_B_LEFT after boot $i" "$(e2e_env_get BOOT_B_LEFT)" $((3 - i))
	done
	boot 4
	expect "fallback boot slot" "$booted" A
	expect_log "fallback consumed a try of A" 'Tandem: slot=A BOOT_ORDER=B A BOOT_A_LEFT=2 BOOT_B_LEFT=0'
}

# D: power cut during U-Boot's own env write, modelled by damaging the
# copy U-Boot wrote last: the next boot must use the other copy.
sc_power_cut() {
	scenario=power-cut
	fresh_disk
	e2e_set_action -
	boot 1
	boot 2
	expect "before the cut: A_LEFT" "$(e2e_env_get BOOT_A_LEFT)" 1
	expect "before the cut: uboot.env is newest" "$(e2e_env_seq uboot.env)" 3
	e2e_env_corrupt uboot.env
	expect "host libubootenv falls back to the older copy" "$(e2e_env_get BOOT_A_LEFT)" 2
	boot 3
	expect "slot after the cut" "$booted" A
	expect_log "U-Boot rejected the damaged copy" 'Tandem: env copy0=0 copy1=1 current=1 seq=0x02 next=0x03 -> uboot.env'
	expect_log "U-Boot counted from the older copy" 'Tandem: slot=A BOOT_ORDER=A B BOOT_A_LEFT=1 BOOT_B_LEFT=3'
	expect "A_LEFT after the cut (libubootenv)" "$(e2e_env_get BOOT_A_LEFT)" 1
	expect "rewritten copy sequence" "$(e2e_env_seq uboot.env)" 3

	# Both copies damaged: defaults, and copy 1 gets sequence 1.
	e2e_env_corrupt uboot.env
	e2e_env_corrupt uboot-redund.env
	boot 4
	expect "slot with no valid env" "$booted" A
	expect_log "U-Boot used defaults" 'WARNING: no valid environment file'
	expect "env rebuilt from defaults" "$(e2e_env_dump | tr '\n' ' ')" "BOOT_A_LEFT=2 BOOT_B_LEFT=3 BOOT_ORDER=A B "
}

# E: both counters exhausted: reset to the default tries and boot the
# first slot of BOOT_ORDER (which spends one of them).
sc_exhausted() {
	scenario=exhausted
	fresh_disk
	e2e_set_action -
	e2e_env_set "BOOT_ORDER=B A" "BOOT_A_LEFT=0" "BOOT_B_LEFT=0"
	boot 1
	expect "slot when all tries are gone" "$booted" B
	expect_log "U-Boot reset the counters" 'no slot has tries left; resetting counters to 3'
	expect "env after reset" "$(e2e_env_dump | tr '\n' ' ')" "BOOT_A_LEFT=3 BOOT_B_LEFT=2 BOOT_ORDER=B A "
}

# The sequence byte: carry (0x2f -> 0x30) and wrap (0xff -> 0x00), where
# U-Boot and libubootenv must agree which copy is newer.
sc_sequence() {
	scenario=sequence
	fresh_disk
	e2e_set_action -
	e2e_env_image "$E2E_WORK/e0" 0x2f "BOOT_ORDER=A B" "BOOT_A_LEFT=3" "BOOT_B_LEFT=3"
	e2e_env_put uboot.env "$E2E_WORK/e0"
	boot 1
	expect_log "carry 0x2f -> 0x30" 'seq=0x2f next=0x30 -> uboot-redund.env'
	expect "written sequence" "$(e2e_env_seq uboot-redund.env)" 48

	e2e_env_image "$E2E_WORK/e0" 0xfe "BOOT_ORDER=A B" "BOOT_A_LEFT=3" "BOOT_B_LEFT=3"
	e2e_env_image "$E2E_WORK/e1" 0xff "BOOT_ORDER=B A" "BOOT_A_LEFT=3" "BOOT_B_LEFT=3"
	e2e_env_put uboot.env "$E2E_WORK/e0"
	e2e_env_put uboot-redund.env "$E2E_WORK/e1"
	boot 2
	expect "0xff beats 0xfe" "$booted" B
	expect_log "wrap 0xff -> 0x00" 'current=1 seq=0xff next=0x00 -> uboot.env'
	expect "libubootenv takes 0x00 over 0xff" "$(e2e_env_get BOOT_B_LEFT)" 2
	boot 3
	expect_log "U-Boot takes 0x00 over 0xff" 'current=0 seq=0x00 next=0x01 -> uboot-redund.env'
	expect "after the wrap" "$(e2e_env_get BOOT_B_LEFT)" 1
}

# Watchdog: a new slot that hangs before confirming. The kernel's softdog
# (Debian's cloud kernels have no i6300esb driver) reboots it; with
# -no-reboot QEMU exits by itself, and the boot has cost a try.
sc_watchdog() {
	scenario=watchdog
	fresh_disk
	local a i
	a=$(action_file 1)
	cat >"$a" <<-'ACT'
	if [ "$TANDEM_SLOT" = B ]; then
		e2e-load softdog soft_margin=5
		# Open the device and never pet it: the stand-in for a hang.
		exec 3>/dev/watchdog
		echo "TANDEM-E2E hanging"
		sleep 600
	fi
	ACT
	e2e_set_action "$a"
	e2e_env_set "BOOT_ORDER=B A" "BOOT_B_LEFT=3"
	boot 1
	expect "hanging slot booted" "$booted" B
	expect "QEMU ended by the watchdog reset, not the harness timeout" "$boot_rc" 0
	expect_log "softdog fired" 'softdog: Initiating system reboot'
	expect "the hang cost a try" "$(e2e_env_get BOOT_B_LEFT)" 2
	if [ $short = 0 ]; then
		for i in 2 3; do boot "$i"; done
		boot 4
		expect "after three watchdog resets" "$booted" A
	fi
}

# A slot whose kernel panics: panic=5 reboots, QEMU exits, a try is gone.
sc_panic() {
	scenario=panic
	fresh_disk
	local a
	a=$(action_file 1)
	cat >"$a" <<-'ACT'
	[ "$TANDEM_SLOT" = B ] && echo c >/proc/sysrq-trigger
	ACT
	e2e_set_action "$a"
	e2e_env_set "BOOT_ORDER=B A" "BOOT_B_LEFT=1"
	boot 1
	expect "panicking slot booted" "$booted" B
	expect "QEMU ended by the panic reboot" "$boot_rc" 0
	expect_log "kernel panicked" 'Kernel panic'
	boot 2
	expect "after the panic" "$booted" A
}

# A slot U-Boot cannot load (damaged file system): the script resets,
# the try is spent, and after the last one the other slot boots.
sc_unreadable_slot() {
	scenario=unreadable-slot
	fresh_disk
	e2e_set_action -
	# Wipe the ext4 superblock area of slot B.
	dd if=/dev/zero of="$E2E_DISK" bs=512 seek="$(_e2e_part_start 3)" count=2048 conv=notrunc status=none
	e2e_env_set "BOOT_ORDER=B A" "BOOT_B_LEFT=2"
	local i
	for i in 1 2; do
		boot "$i"
		expect "unreadable boot $i starts no kernel" "$booted" none
		expect_log "script reset after a failed load" 'Tandem: slot B failed to boot; resetting'
	done
	expect "tries of the unreadable slot" "$(e2e_env_get BOOT_B_LEFT)" 0
	boot 3
	expect "after the unreadable slot" "$booted" A
}

for arch in $arches; do
	scenario=setup
	cur_log=""
	if ! e2e_setup "$arch"; then
		E2E_ARCH=$arch
		bad "$E2E_BACKEND cannot run on $arch"
		continue
	fi
	if ! why=$(e2e_can_run); then
		bad "$why"
		continue
	fi
	t0=$SECONDS
	echo "== e2e $arch ($E2E_BACKEND): preparing kernel, initramfs and disk"
	if ! e2e_fetch; then
		bad "cannot fetch the guest's kernel and packages for $arch"
		continue
	fi
	e2e_build_disk "$E2E_WORK/template.img"
	echo "        ready in $((SECONDS - t0))s (kernel $E2E_KVER)"
	# The model check first: one U-Boot run, seconds.
	scs="sc_boot_model sc_first_boot_and_switch"
	# --short leaves out sc_never_confirms: sc_tandem_no_confirm's short
	# form boots B three times without a confirm, checks each try U-Boot
	# spent and the fall back to A, with the env the updater wrote.
	[ $short = 1 ] || scs="$scs sc_never_confirms"
	scs="$scs sc_power_cut sc_exhausted sc_sequence sc_unreadable_slot sc_watchdog"
	[ $short = 1 ] || scs="$scs sc_panic sc_genimage_disk"
	scs="$scs sc_provision_disk"
	# The updater in the guest (tandem.sh), all five: the failure paths
	# (health rollback, never confirmed, power cut mid-install) are what
	# make check must see on real U-Boot.
	scs="$scs sc_tandem_first_boot sc_tandem_update sc_tandem_health_rollback sc_tandem_no_confirm sc_tandem_power_cut"
	# Power cuts at the boot script's and the updater's environment store.
	[ $short = 1 ] || scs="$scs sc_tandem_env_cut"
	# GRUB: the updater's scenarios, the same functions, on a disk that
	# SeaBIOS boots into GRUB and the shipped grub.cfg (the boot-script
	# scenarios above drive U-Boot's variables with fw_setenv). Its short
	# form keeps the environment cuts: GRUB's block has no second copy.
	# The BusyBox init script (bootloader-hooks/init.d), arm64, full form.
	[ $short = 1 ] || [ "$arch" != arm64 ] || scs="$scs sc_tandem_busybox_init"
	# The systemd guest (sysd.sh), arm64, full form only: a read-only
	# Debian root booted by U-Boot, the shipped units, updates from a
	# channel, rollback and power cuts.
	[ $short = 1 ] || [ "$arch" != arm64 ] || scs="$scs $S_SCENARIOS"
	if [ "$E2E_BACKEND" = grub ]; then
		scs="sc_tandem_first_boot sc_tandem_update sc_tandem_health_rollback sc_tandem_no_confirm"
		scs="$scs sc_tandem_power_cut sc_tandem_env_cut"
	fi
	[ -z "${E2E_ONLY:-}" ] || scs=$E2E_ONLY
	case $scs in
	# The systemd guest uses the same binaries and keys.
	*sc_tandem_* | *sc_sysd_*)
		t1=$SECONDS
		scenario=tandem-prepare
		if t_prepare; then
			echo "        updater, keys and disk ready in $((SECONDS - t1))s"
		else
			bad "building the updater, keys or disk failed"
			scs=$(printf '%s\n' $scs | grep -v -E '^sc_(tandem|sysd)_' | tr '\n' ' ')
		fi
		;;
	esac
	case $scs in
	*sc_sysd_*)
		t1=$SECONDS
		scenario=sysd-prepare
		if s_prepare; then
			echo "        systemd guest ready in $((SECONDS - t1))s"
		else
			bad "building the systemd guest failed"
			scs=$(printf '%s\n' $scs | grep -v '^sc_sysd_' | tr '\n' ' ')
		fi
		;;
	esac
	for sc in $scs; do
		t1=$SECONDS
		$sc
		echo "        $sc: $((SECONDS - t1))s"
	done
	echo "== e2e $arch: $((SECONDS - t0))s"
done

if [ $((passed + failed)) = 0 ]; then
	echo "FAIL: e2e: no check ran"
	exit 1
fi
[ -z "$failures" ] || printf 'Failures:%s\n' "$failures"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
