#!/bin/bash
# SPDX-License-Identifier: MIT
# A board that used RAUC's U-Boot scheme switches to Tandem without an
# edit to its boot script or environment (docs/boot-protocol.md,
# "Migrating from RAUC"): real libubootenv on real environment images,
# the way such a board keeps them: U-Boot's whole environment (bootcmd
# and the rest) in one uboot.env on its FAT partition, rauc.slot= on the
# kernel command line, counters in hexadecimal.
#
# rauc_boot models the boot script of RAUC's documented U-Boot
# integration with U-Boot's own semantics, written here from that
# documentation, not copied: unset or empty variables get the defaults
# ("A B", 3 tries); the first slot of BOOT_ORDER whose counter `test -gt 0`
# finds above 0 boots; its counter is decremented by setexpr, which
# reads and writes hexadecimal; rauc.slot=X goes on the command line.
# When no slot has a try left, both counters are reset to 3, saved, and
# the board resets (the next power-on chooses again).
. "$(dirname "$0")/lib.sh"

TOOLS=$TOP/tests/lib

rauc_boot() { # DIR: one power-on; prints the slot
	python3 - "$1" "$TOOLS" <<'PY'
import subprocess, sys, uuid
d = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from bootmodel import strtol  # U-Boot's `test` number reading
conf = d + "/fw_env.config"
def env():
    out = subprocess.run(["fw_printenv", "-c", conf], capture_output=True, text=True,
                         check=True).stdout
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
def save(changes):
    subprocess.run(["fw_setenv", "-c", conf, "-s", "-"], check=True, text=True,
                   input="".join("%s=%s\n" % kv for kv in changes.items()))
for _ in range(2):  # a reset, then the power-on that boots
    e, changes = env(), {}
    for k, v in (("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "3"), ("BOOT_B_LEFT", "3")):
        if not e.get(k):
            e[k] = changes[k] = v
    slot = None
    for s in e["BOOT_ORDER"].split():
        if s in ("A", "B") and strtol(e["BOOT_%s_LEFT" % s]) > 0:
            slot = s
            changes["BOOT_%s_LEFT" % s] = "%x" % (int(e["BOOT_%s_LEFT" % s], 16) - 1)
            break
    if slot is None:
        save({"BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"})
        continue
    save(changes)
    open(d + "/cmdline", "w").write("console=ttyS0 root=/dev/mmcblk0p%d rauc.slot=%s rootwait\n"
                                     % (2 if slot == "A" else 3, slot))
    open(d + "/boot_id", "w").write(str(uuid.uuid4()) + "\n")
    print(slot)
    break
else:
    sys.exit("rauc_boot: nothing bootable")
PY
}

envget() { fw_printenv -c "$D/fw_env.config" -n "$1" 2>/dev/null; }

# U-Boot's own variables, as a board's saved environment holds them.
UBOOT_VARS='arch=arm
baudrate=115200
board_name=demo
boot_a_script=load ${devtype} ${devnum}:${distro_bootpart} ${scriptaddr} ${prefix}${script}; source ${scriptaddr}
bootcmd=run distro_bootcmd
bootdelay=2
bootargs_extra=quiet loglevel=3
distro_bootcmd=setenv nvme_need_init; for target in ${boot_targets}; do run bootcmd_${target}; done
ethaddr=02:00:00:00:00:01
fdt_addr_r=0x43000000
fdtfile=demo/board.dtb
kernel_addr_r=0x40400000
loadaddr=0x40200000
ramdisk_addr_r=0x44000000
serial#=0123456789
stderr=serial,vidconsole
stdin=serial,usbkbd
stdout=serial,vidconsole
ver=U-Boot 2023.01 (Jan 01 2023 - 00:00:00 +0000)'

# rauc_device NAME BOOT_VARS: a simulated device whose environment is one
# U-Boot environment file of 128 KiB (no redundant copy, as a RAUC
# board's uboot.env on FAT) holding UBOOT_VARS and BOOT_VARS (name=value
# lines; "" none), booted from slot A by RAUC's script (rauc.slot=A).
rauc_device() {
	new_device "$1" || return 1
	rm -f "$D"/env/*.env
	printf '%s\n%s' "$UBOOT_VARS" "$2" | grep . >"$D/env/whole.txt"
	mkenvimage -s 0x20000 -o "$D/env/uboot.env" "$D/env/whole.txt" || return 1
	echo "$D/env/uboot.env 0x0 0x20000" >"$D/fw_env.config"
	echo "console=ttyS0 root=/dev/mmcblk0p2 rauc.slot=A rootwait" >"$D/cmdline"
}

# The variables that are not the boot protocol's, sorted: they must never
# change.
others() {
	fw_printenv -c "$D/fw_env.config" |
		grep -v -E '^(BOOT_ORDER|BOOT_[AB]_LEFT|TANDEM_[AB]_IMAGE|TANDEM_SECURITY_FLOOR)=' | LC_ALL=C sort
}
keep_others() { BASE=$(others); }
same_others() { # WHAT
	[ "$(others)" = "$BASE" ] || fail "$1 changed U-Boot's variables: $(diff <(echo "$BASE") <(others))"
}

status_py() { "$TANDEM" -c "$CONF" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); $1"; }

# Every command that writes the environment, on U-Boot's whole
# environment in one file: bootcmd and the rest survive each, byte for
# byte, and the board boots as RAUC's script chooses.
test_whole_environment_survives_every_command() {
	rauc_device dev "BOOT_ORDER=A B
BOOT_A_LEFT=2
BOOT_B_LEFT=3"
	keep_others
	[ "$(echo "$BASE" | wc -l)" -eq 19 ] || fail "the environment lacks U-Boot's variables: $BASE"
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	"$TANDEM" -c "$CONF" status | grep -q "^booted slot: A$" || fail "status: $("$TANDEM" -c "$CONF" status)"
	"$TANDEM" -c "$CONF" -q confirm
	same_others confirm
	[ "$(envget BOOT_A_LEFT)" = 3 ] || fail "confirm: BOOT_A_LEFT=$(envget BOOT_A_LEFT)"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd"
	same_others install
	[ "$(envget BOOT_ORDER)" = "B A" ] || fail "install did not activate B"
	[ "$(rauc_boot "$D")" = B ] || fail "B did not boot"
	"$TANDEM" -c "$CONF" -q confirm
	same_others "confirm on B"
	"$TANDEM" -c "$CONF" -q rollback
	same_others rollback
	[ "$(envget BOOT_ORDER)" = "A B" ] || fail "rollback: $(envget BOOT_ORDER)"
	"$TANDEM" -c "$CONF" -q activate B
	same_others activate
	[ "$(rauc_boot "$D")" = B ] || fail "B did not boot after activate"
	# a failed health check: B marked bad, A first
	mkdir -p "$D/health.d" && printf '#!/bin/sh\nexit 1\n' >"$D/health.d/fail" && chmod +x "$D/health.d/fail"
	expect_refusal 24 "fail" "$TANDEM" -c "$CONF" confirm
	rm "$D/health.d/fail"
	same_others "mark-bad"
	[ "$(envget BOOT_ORDER)" = "A B" ] && [ "$(envget BOOT_B_LEFT)" = 0 ] || fail "mark-bad: $(fw_printenv -c "$D/fw_env.config" | grep BOOT_)"
	[ "$(rauc_boot "$D")" = A ] || fail "A did not boot after B was marked bad"
	"$TANDEM" -c "$CONF" -q confirm
	same_others "confirm after the fallback"
	# provisioning the board again (from an installer: no slot booted)
	echo "console=ttyS0" >"$D/cmdline"
	"$TANDEM" -c "$CONF" -q provision --progress=none --keyring "$D/keys" "$D/u.tnd"
	same_others provision
	[ "$(envget BOOT_ORDER)" = "A B" ] && [ "$(envget BOOT_A_LEFT)" = 3 ] && [ "$(envget BOOT_B_LEFT)" = 3 ] ||
		fail "provision: $(fw_printenv -c "$D/fw_env.config" | grep BOOT_)"
	[ "$(rauc_boot "$D")" = A ] || fail "A did not boot after provisioning"
}

# What libubootenv cannot carry over whole is refused before anything is
# written, with one line that says why.
test_whole_environment_refusals() {
	rauc_device dev "BOOT_ORDER=A B"
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	# fw_env.config gives 16 KiB where U-Boot's environment is 128 KiB:
	# no valid copy, none blank; provisioning must not start afresh
	local sum
	sum=$(sha256sum <"$D/env/uboot.env")
	echo "$D/env/uboot.env 0x0 0x4000" >"$D/fw_env.config"
	echo "console=ttyS0" >"$D/cmdline"
	expect_refusal 23 "none is blank: refusing to start a new environment" \
		"$TANDEM" -c "$CONF" provision --progress=none --keyring "$D/keys" "$D/u.tnd"
	[ "$(sha256sum <"$D/env/uboot.env")" = "$sum" ] || fail "the environment file was written"
	# .flags: libubootenv 0.3.2 keeps only its first entry at a store
	printf '%s\n.flags=ethaddr:mo,serial#:so\nBOOT_ORDER=A B\n' "$UBOOT_VARS" >"$D/env/whole.txt"
	mkenvimage -s 0x20000 -o "$D/env/uboot.env" "$D/env/whole.txt"
	echo "$D/env/uboot.env 0x0 0x20000" >"$D/fw_env.config"
	echo "console=ttyS0 rauc.slot=A" >"$D/cmdline"
	sum=$(sha256sum <"$D/env/uboot.env")
	"$TANDEM" -c "$CONF" status | grep -q "^boot order:  A B (uboot)$" || fail "status: $("$TANDEM" -c "$CONF" status)"
	expect_refusal 23 "holds a .flags variable" "$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	expect_refusal 23 "holds a .flags variable" "$TANDEM" -c "$CONF" confirm
	[ "$(sha256sum <"$D/env/uboot.env")" = "$sum" ] || fail "the environment file was written"
	# a counter no script writes
	rauc_device dev "BOOT_A_LEFT=-1"
	sum=$(sha256sum <"$D/env/uboot.env")
	expect_refusal 23 'BOOT_A_LEFT="-1" is not a count of boot tries' "$TANDEM" -c "$CONF" confirm
	[ "$(sha256sum <"$D/env/uboot.env")" = "$sum" ] || fail "the environment file was written"
	"$TANDEM" -c "$CONF" status | grep -q '^boot order:  unreadable: .*BOOT_A_LEFT="-1"' ||
		fail "status: $("$TANDEM" -c "$CONF" status)"
}

# The states RAUC leaves on a running board (its documented behaviour:
# BOOT_ORDER lists the slots to try; mark-bad removes a slot from it and
# zeroes its counter; mark-good and activation write boot-attempts with
# %x, "a" for 10; unset or empty variables are the script's defaults),
# as Tandem finds them when it takes over: each is read as RAUC reads it;
# the booted slot confirms, changing only its own counter; an update goes
# to the other slot, which RAUC's script then boots, and it confirms.
test_rauc_left_states() {
	local c order a b boot want_order
	# BOOT_ORDER|BOOT_A_LEFT|BOOT_B_LEFT ("~": unset)|the booted slot
	# (rauc.slot=)|the order status shows
	for c in "A|3|0|A|A" "B|0|3|B|B" "|3|3|A|A B" "~|~|~|A|A B" "A B|a|3|A|A B" \
		"B A|2|a|A|B A" "A|a|0|A|A" "B|0|f|B|B" "A B|0|3|B|A B" "A B|~|2|A|A B" \
		"B A|0|10|B|B A"; do
		IFS='|' read -r order a b boot want_order <<<"$c"
		local vars=""
		[ "$order" = "~" ] || vars+="BOOT_ORDER=$order"$'\n'
		[ "$a" = "~" ] || vars+="BOOT_A_LEFT=$a"$'\n'
		[ "$b" = "~" ] || vars+="BOOT_B_LEFT=$b"$'\n'
		rauc_device "dev" "$vars" || return 1
		echo "console=ttyS0 rauc.slot=$boot rootwait" >"$D/cmdline"
		keep_others
		make_image "$D/v1.img" 1
		build_bundle "$D/u.tnd" "$D/v1.img"
		local before other
		other=$([ "$boot" = A ] && echo B || echo A)
		before=$(envget "BOOT_${other}_LEFT")
		status_py "b=s['bootloader']['boot_order']; assert s['booted_slot']=='$boot' and b=='$want_order', s" ||
			fail "$c: status" || return 1
		"$TANDEM" -c "$CONF" -q confirm || fail "$c: confirm" || return 1
		[ "$(envget "BOOT_${boot}_LEFT")" = 3 ] || fail "$c: confirm left BOOT_${boot}_LEFT=$(envget "BOOT_${boot}_LEFT")" || return 1
		[ "$(envget "BOOT_${other}_LEFT")" = "$before" ] ||
			fail "$c: confirm changed BOOT_${other}_LEFT from '$before' to '$(envget "BOOT_${other}_LEFT")'" || return 1
		[ "$order" = "~" ] || [ -z "$order" ] || [ "$(envget BOOT_ORDER)" = "$order" ] ||
			fail "$c: confirm changed BOOT_ORDER to '$(envget BOOT_ORDER)'" || return 1
		"$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd" || fail "$c: install" || return 1
		[ "$(envget BOOT_ORDER)" = "$other $boot" ] || fail "$c: install left BOOT_ORDER='$(envget BOOT_ORDER)'" || return 1
		[ "$(rauc_boot "$D")" = "$other" ] || fail "$c: the update did not boot" || return 1
		"$TANDEM" -c "$CONF" -q confirm || fail "$c: confirm of the update" || return 1
		status_py "assert s['booted_slot']=='$other' and s['last_update']['result']=='success', s" ||
			fail "$c: update result" || return 1
		same_others "$c" || return 1
	done
}

# What a RAUC board's script does with a counter of 10 or more, on U-Boot
# 2023.01: `test -gt 0` reads "a" as 0, so the slot is skipped (or, with
# none left, every counter reset), while setexpr would count "a" down to
# 9. Tandem reads "a" as RAUC does (10) and never writes such a value
# (boot_tries is 1 to 9): the documented advice, checked here with the
# model, is boot-attempts of 9 or less on such a board.
test_rauc_script_reads_hex_counters_as_test_does() {
	rauc_device dev "BOOT_ORDER=A B
BOOT_A_LEFT=a
BOOT_B_LEFT=3"
	[ "$(rauc_boot "$D")" = B ] || fail "RAUC's script skipped no slot"
	[ "$(envget BOOT_A_LEFT)" = a ] || fail "BOOT_A_LEFT=$(envget BOOT_A_LEFT)"
	status_py "a=s['slots']['A']; assert a['boot_tries_left']==10 and a['boot_priority']==0, s"
	"$TANDEM" -c "$CONF" doctor >"$D/doc" || true
	grep -q '^warn  counters .*BOOT_A_LEFT is 10 (hexadecimal, as RAUC writes it).*reads a to f as 0' "$D/doc" ||
		fail "doctor: $(cat "$D/doc")"
}

run_tests
