#!/bin/bash
# SPDX-License-Identifier: MIT
# tandem provision on a new board: file slots, loop devices, a blank
# (never written) U-Boot environment read and written by real libubootenv.
# Every refusal changes nothing; a second run writes nothing; a run killed
# at any point is repaired by the next, and never leaves the environment
# pointing at a slot that does not hold a whole image.
. "$(dirname "$0")/lib.sh"

# new_board NAME [SLOT_SIZE]: a simulated device as a factory receives it:
# empty slots, both environment copies zeroed (no valid CRC), no state, no
# keyring on the device (the keys are in $D/factory-keys), and a kernel
# command line without tandem.slot (a provisioning host or installer).
new_board() {
	new_device "$1" "${2:-8M}" || return 1
	mv "$D/keys" "$D/factory-keys"
	rm -rf "$D/state"
	truncate -s 0 "$D/env/uboot.env" "$D/env/uboot-redund.env"
	truncate -s 16K "$D/env/uboot.env" "$D/env/uboot-redund.env"
	echo "console=ttyS0 root=/dev/ram0" >"$D/cmdline"
	python3 - "$CONF" "$D" <<'PY'
import json, sys
conf, d = sys.argv[1], sys.argv[2]
c = json.load(open(conf))
c["keyring"] = d + "/etc/keys"
c["server"] = {"url": "https://127.0.0.1:9/index.json",
               "device_id_file": d + "/etc/device-id",
               "client_cert": d + "/etc/tls/device.crt",
               "client_key": d + "/etc/tls/device.key"}
json.dump(c, open(conf, "w"), indent=1)
PY
}

make_identity() { # DIR: a P-256 device key and its self-signed certificate
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$(basename "$1")" -keyout "$1/device.key" -out "$1/device.crt" 2>/dev/null
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }
prefix_sha() { head -c "$(stat -c %s "$2")" "$1" | sha256sum | cut -d' ' -f1; } # SLOT IMAGE
envget() { fw_printenv -c "$D/fw_env.config" -n "$1" 2>/dev/null; }

# The board holds IMG in both slots and the environment a provisioned
# board starts with.
assert_provisioned() {
	local img=$1 want
	want=$(sha "$img")
	[ "$(prefix_sha "$D/slotA.img" "$img")" = "$want" ] || fail "slot A does not hold the image" || return 1
	[ "$(prefix_sha "$D/slotB.img" "$img")" = "$want" ] || fail "slot B does not hold the image" || return 1
	[ "$(envget BOOT_ORDER)" = "A B" ] || fail "BOOT_ORDER is '$(envget BOOT_ORDER)'" || return 1
	[ "$(envget BOOT_A_LEFT)" = 3 ] && [ "$(envget BOOT_B_LEFT)" = 3 ] || fail "tries not 3/3" || return 1
	python3 - "$D/state/state.json" "$want" <<'PY' || fail "state does not describe both slots"
import json, sys
s = json.load(open(sys.argv[1]))
for n in "AB":
    sl = s["slots"][n]
    assert sl["state"] == "installed" and sl["sha256"] == sys.argv[2], s
PY
}

test_provision_blank_board_json() {
	new_board board
	make_image "$D/v1.img" 3
	build_bundle "$D/u.tnd" "$D/v1.img"
	mkdir -p "$D/id" && make_identity "$D/id" || fail "cannot make the device identity"
	"$TANDEM" -c "$CONF" provision --progress=none --json --keyring "$D/factory-keys" \
		--device-id SN-0001 --client-cert "$D/id/device.crt" --client-key "$D/id/device.key" \
		"$D/u.tnd" >"$D/out.json"
	assert_provisioned "$D/v1.img"
	python3 - "$D/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["result"] == "success" and r["version"] == "1.0", r
assert r["slots"]["A"]["action"] == "written" and r["slots"]["B"]["action"] == "written", r
e = r["environment"]
assert e["action"] == "written" and e["was_blank"] is True and e["boot_order"] == "A B" and e["tries"] == 3, e
assert r["state"]["action"] == "written" and r["keyring"] == {"action": "written", "dir": r["keyring"]["dir"], "keys": 1}, r
assert r["identity"] == {"device_id": "written", "client_cert": "written", "client_key": "written"}, r
PY
	cmp "$D/factory-keys/release.pem" "$D/etc/keys/release.pem" || fail "keyring not installed"
	[ "$(cat "$D/etc/device-id")" = SN-0001 ] || fail "device id"
	cmp "$D/id/device.key" "$D/etc/tls/device.key" || fail "client key not installed"
	[ "$(stat -c %a "$D/etc/tls/device.key")" = 600 ] || fail "client key mode $(stat -c %a "$D/etc/tls/device.key")"
	# Only Tandem's variables in a blank environment (no --env-defaults),
	# both slots vouched for as holding the image (security version 0)
	local id
	id=0:$(sha256sum <"$D/v1.img" | cut -d' ' -f1)
	[ "$(fw_printenv -c "$D/fw_env.config" | sort | tr '\n' ' ')" = \
		"BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B TANDEM_A_IMAGE=$id TANDEM_B_IMAGE=$id " ] ||
		fail "environment: $(fw_printenv -c "$D/fw_env.config")"
	# First boot of the provisioned board: A comes up, confirm marks it good,
	# and the board installs its first update into B.
	echo "console=ttyS0 tandem.slot=A" >"$D/cmdline"
	"$TANDEM" -c "$CONF" -q confirm
	"$TANDEM" -c "$CONF" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["booted_slot"] == "A" and s["slots"]["A"]["state"] == "good", s
assert s["slots"]["B"]["state"] == "installed" and s["slots"]["B"]["version"] == "1.0", s'
	make_image "$D/v2.img" 3
	build_bundle "$D/u2.tnd" "$D/v2.img" --version 2.0
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u2.tnd"
	[ "$(envget BOOT_ORDER)" = "B A" ] || fail "update after provisioning not activated"
}

test_provision_twice_writes_nothing() {
	new_board board
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	"$TANDEM" -c "$CONF" -q provision --progress=none --keyring "$D/factory-keys" --device-id X1 "$D/u.tnd"
	local before after
	# (state/lock is the device's lock: it holds the last holder's pid)
	before=$(cd "$D" && sha256sum env/* state/state.json etc/keys/* etc/device-id slotA.img slotB.img)
	[ "$(ls "$D/state")" = "$(printf 'lock\nstate.json')" ] || fail "state files: $(ls "$D/state")"
	touch -d '2001-01-01' "$D"/env/* "$D/state/state.json"
	"$TANDEM" -c "$CONF" provision --progress=none --json --keyring "$D/factory-keys" --device-id X1 \
		"$D/u.tnd" >"$D/out.json"
	after=$(cd "$D" && sha256sum env/* state/state.json etc/keys/* etc/device-id slotA.img slotB.img)
	[ "$before" = "$after" ] || fail "second run changed something"
	[ -z "$(find "$D/env" "$D/state" -type f ! -name lock -newermt '2002-01-01')" ] ||
		fail "second run rewrote files"
	python3 - "$D/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
acts = [r["slots"]["A"]["action"], r["slots"]["B"]["action"], r["environment"]["action"],
        r["state"]["action"], r["keyring"]["action"], r["identity"]["device_id"]]
assert acts == ["unchanged"] * 6, r
assert r["environment"]["was_blank"] is False, r
PY
}

test_provision_repairs_and_drops_stale_keys() {
	new_board board
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	"$TANDEM" -c "$CONF" -q provision --progress=none --keyring "$D/factory-keys" "$D/u.tnd"
	# Slot B damaged, a key that is no longer trusted, the order changed.
	printf 'X' | dd of="$D/slotB.img" bs=1 seek=1000 conv=notrunc 2>/dev/null
	cp "$D/factory-keys/release.pem" "$D/etc/keys/revoked.pem"
	fw_setenv -c "$D/fw_env.config" BOOT_ORDER "B A"
	"$TANDEM" -c "$CONF" provision --progress=none --json --keyring "$D/factory-keys" "$D/u.tnd" >"$D/out.json"
	assert_provisioned "$D/v1.img"
	[ ! -e "$D/etc/keys/revoked.pem" ] || fail "a key not in --keyring survived"
	python3 - "$D/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["slots"]["A"]["action"] == "unchanged" and r["slots"]["B"]["action"] == "written", r
assert r["environment"]["action"] == "written" and r["keyring"]["action"] == "written", r
PY
}

test_provision_from_stdin_with_env_defaults() {
	new_board board
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	printf 'bootcmd=run tandem_boot\nbootdelay=0\n' >"$D/initial-env"
	"$TANDEM" -c "$CONF" -q provision --progress=none --keyring "$D/factory-keys" \
		--env-defaults "$D/initial-env" - <"$D/u.tnd"
	assert_provisioned "$D/v1.img"
	[ "$(envget bootcmd)" = "run tandem_boot" ] || fail "--env-defaults not used"
}

# Refused before anything is written: nothing on the board changes.
assert_board_untouched() {
	[ "$(cd "$D" && sha256sum slotA.img slotB.img env/*)" = "$BOARD_SNAP" ] || fail "board changed" || return 1
	[ ! -e "$D/state/state.json" ] || fail "state written" || return 1
	[ ! -e "$D/etc" ] || fail "keyring or identity written" || return 1
}

test_provision_refusals_change_nothing() {
	new_board board
	make_image "$D/v1.img" 2
	make_image "$D/v2.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	BOARD_SNAP=$(cd "$D" && sha256sum slotA.img slotB.img env/*)
	local k=(--keyring "$D/factory-keys")

	cp "$D/u.tnd" "$D/bad.tnd"
	printf '\x01' | dd of="$D/bad.tnd" bs=1 seek=40 conv=notrunc 2>/dev/null
	expect_refusal 11 "signature\|manifest" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" "$D/bad.tnd"
	assert_board_untouched

	mkdir -p "$D/other" && "$TANDEM_IMAGE" keygen --out "$D/other/k.pem" --pub "$D/other/p.pem" ||
		fail "cannot make the other key"
	"$TANDEM_IMAGE" -q build --key "$D/other/k.pem" --image "$D/v1.img" --version 1.0 \
		--compatible sim --out "$D/foreign.tnd"
	expect_refusal 11 "key" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" "$D/foreign.tnd"
	assert_board_untouched

	build_bundle "$D/other-board.tnd" "$D/v1.img" --compatible other
	expect_refusal 13 "other" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" "$D/other-board.tnd"
	assert_board_untouched

	build_bundle "$D/delta.tnd" "$D/v2.img" --base "$D/v1.img"
	expect_refusal 14 "full bundle" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" "$D/delta.tnd"
	assert_board_untouched

	mkdir -p "$D/id1" "$D/id2" && make_identity "$D/id1" && make_identity "$D/id2" ||
		fail "cannot make the two identities"
	expect_refusal 4 "does not belong" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" \
		--client-cert "$D/id1/device.crt" --client-key "$D/id2/device.key" "$D/u.tnd"
	assert_board_untouched

	expect_refusal 2 "device-id" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" \
		--device-id "two words" "$D/u.tnd"
	assert_board_untouched

	expect_refusal 3 "keyring" "$TANDEM" -c "$CONF" provision --progress=none "$D/u.tnd"
	assert_board_untouched

	# A system booted from one of the slots never provisions them.
	echo "console=ttyS0 tandem.slot=B" >"$D/cmdline"
	expect_refusal 20 "booted slot B" "$TANDEM" -c "$CONF" provision --progress=none "${k[@]}" "$D/u.tnd"
	assert_board_untouched

	# --json: the error as an object on stdout, as well as the line on stderr.
	local rc=0
	"$TANDEM" -c "$CONF" provision --progress=none --json "${k[@]}" "$D/u.tnd" >"$D/err.json" 2>/dev/null || rc=$?
	[ "$rc" = 20 ] || fail "exit $rc"
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["result"]=="error" and r["exit"]==20 and "slot B" in r["message"], r' "$D/err.json"
}

# Power cuts: tests/torture's shim kills provision before its Nth
# write-path system call, for every N of a complete run ("kill": a crash,
# the page cache survives; "lost": a power cut, only what was synced
# survives). Two boards: a blank one, and one provisioned with v1 that is
# provisioned again with v2 (a board back from repair). After each cut,
# every slot the environment can boot holds a whole image (v1 or v2), and
# the next run completes the job. make check takes every
# PROVISION_CUT_STRIDE-th call (default 6, both modes, about 50 cuts);
# make check-torture every one.
cut_template() { # NAME: the board as it is now, to start each cut from
	rm -rf "${WORK:?}/tpl-$1" && cp -a --sparse=always "$D" "$WORK/tpl-$1" || fail "cannot save template $1"
}
cut_check() { # V1 V2 SIZE: the bootable-slot invariant
	python3 - "$D" "$@" <<'PY'
import hashlib, subprocess, sys
d, v1, v2, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = subprocess.run(["fw_printenv", "-c", d + "/fw_env.config"], capture_output=True, text=True)
if p.returncode != 0:
    sys.exit(0)  # still blank: U-Boot boots nothing of ours, nothing to check
env = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
order = env.get("BOOT_ORDER", "A B").split()
bootable = [s for s in order if int(env.get("BOOT_%s_LEFT" % s, "3")) > 0]
# With every counter spent, the boot script resets them and boots the
# first slot of the order (bootloader-hooks/uboot).
for s in bootable or order[:1]:
    h = hashlib.sha256(open("%s/slot%s.img" % (d, s), "rb").read(size)).hexdigest()
    assert h in (v1, v2), "slot %s can boot but holds neither image" % s
PY
}
test_provision_power_cut_anywhere() {
	local shim=$TOP/build/torture/cutshim.so restore=$TOP/build/torture/cutrestore
	if [ ! -f "$shim" ] || [ ! -x "$restore" ] || [ "$TOP/tests/torture/cutshim.c" -nt "$shim" ]; then
		make -C "$TOP" --no-print-directory O=build torture-shim >/dev/null
	fi
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:verify_asan_link_order=0
	new_board board 2M
	local n total tpl mode rc cuts=0 v1 v2
	{ head -c 300000 /dev/urandom; head -c 200000 /dev/zero; head -c 548576 /dev/urandom; } >"$D/v1.img"
	{ head -c 300000 /dev/urandom; head -c 200000 /dev/zero; head -c 548576 /dev/urandom; } >"$D/v2.img"
	v1=$(sha "$D/v1.img") v2=$(sha "$D/v2.img")
	build_bundle "$D/u1.tnd" "$D/v1.img"
	build_bundle "$D/u2.tnd" "$D/v2.img" --version 2.0
	local prov=("$TANDEM" -c "$CONF" -q provision --progress=none --keyring "$D/factory-keys" --device-id B-1)
	cut_template blank
	"${prov[@]}" "$D/u1.tnd"
	cut_template v1
	for tpl in blank v1; do
		rm -rf "$D" && cp -a "$WORK/tpl-$tpl" "$D" || fail "cannot load template $tpl" || return 1
		CUTSHIM_DIR="$D" CUTSHIM_COUNT="$WORK/count" LD_PRELOAD="$shim" "${prov[@]}" "$D/u2.tnd"
		total=$(cat "$WORK/count")
		[ "$total" -gt 10 ] || fail "only $total write-path calls counted" || return 1
		for ((n = 1; n <= total; n += ${PROVISION_CUT_STRIDE:-6})); do
			for mode in kill lost; do
				rm -rf "$D" "$WORK/journal" && cp -a "$WORK/tpl-$tpl" "$D" ||
					fail "cannot load template $tpl" || return 1
				rc=0
				if [ $mode = lost ]; then
					CUTSHIM_DIR="$D" CUTSHIM_CUT=$n CUTSHIM_JOURNAL="$WORK/journal" LD_PRELOAD="$shim" \
						"${prov[@]}" "$D/u2.tnd" 2>/dev/null || rc=$?
					"$restore" "$WORK/journal" "$D" 0 >/dev/null
				else
					CUTSHIM_DIR="$D" CUTSHIM_CUT=$n LD_PRELOAD="$shim" "${prov[@]}" "$D/u2.tnd" 2>/dev/null || rc=$?
				fi
				[ "$rc" = 137 ] || fail "$tpl $mode $n: not killed (exit $rc)" || return 1
				cut_check "$v1" "$v2" 1048576 || fail "$tpl $mode cut $n of $total" || return 1
				"${prov[@]}" "$D/u2.tnd" || fail "$tpl $mode $n: rerun failed" || return 1
				assert_provisioned "$D/v2.img" || fail "$tpl $mode $n: rerun left it unfinished" || return 1
				[ "$(cat "$D/etc/device-id")" = B-1 ] || fail "$tpl $mode $n: device id" || return 1
				cuts=$((cuts + 1))
			done
		done
	done
	echo "$cuts cut points"
}

# Real block devices: two loop devices over one disk file, as a
# provisioning host sees a board's eMMC in a USB reader.
test_provision_loop_devices() {
	new_board board
	[ "$(id -u)" = 0 ] || fail "needs root for losetup (make check runs as root in CI)" || return 1
	truncate -s 17M "$D/disk.img"
	local la lb
	la=$(losetup -f --show -o 1M --sizelimit 8M "$D/disk.img") || fail "losetup" || return 1
	lb=$(losetup -f --show -o 9M --sizelimit 8M "$D/disk.img") || { losetup -d "$la"; fail "losetup"; return 1; }
	sed -i "s#\"$D/slotA.img\"#\"$la\"#; s#\"$D/slotB.img\"#\"$lb\"#" "$CONF"
	make_image "$D/v1.img" 3
	build_bundle "$D/u.tnd" "$D/v1.img"
	local rc=0
	"$TANDEM" -c "$CONF" provision --progress=none --json --keyring "$D/factory-keys" "$D/u.tnd" >"$D/out.json" || rc=$?
	"$TANDEM" -c "$CONF" provision --progress=none --json --keyring "$D/factory-keys" "$D/u.tnd" >"$D/out2.json" || rc=$?
	losetup -d "$la" "$lb"
	[ "$rc" = 0 ] || fail "provision on loop devices failed" || return 1
	grep -q "\"device\":\"$la\",\"action\":\"written\"" "$D/out.json" || fail "$(cat "$D/out.json")"
	grep -q "\"device\":\"$lb\",\"action\":\"unchanged\"" "$D/out2.json" || fail "$(cat "$D/out2.json")"
	local want
	want=$(sha "$D/v1.img")
	[ "$(tail -c +$((1 * 1048576 + 1)) "$D/disk.img" | head -c "$(stat -c %s "$D/v1.img")" | sha256sum | cut -d' ' -f1)" = "$want" ] ||
		fail "disk at 1 MiB does not hold the image"
	[ "$(tail -c +$((9 * 1048576 + 1)) "$D/disk.img" | head -c "$(stat -c %s "$D/v1.img")" | sha256sum | cut -d' ' -f1)" = "$want" ] ||
		fail "disk at 9 MiB does not hold the image"
}

run_tests
