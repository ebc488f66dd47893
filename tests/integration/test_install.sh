#!/bin/bash
# SPDX-License-Identifier: MIT
# Installs into file-backed slots of a simulated device (real libubootenv,
# real redundant environment) and every refusal the core issue lists:
# each must fail with one clear line, a documented exit status, the
# active slot and the environment untouched.
. "$(dirname "$0")/lib.sh"

img_prefix_ok() { # IMG SLOT: the slot starts with the image
	cmp -s -n "$(stat -c %s "$1")" "$1" "$2"
}

test_install_file_activates() {
	new_device dev
	make_image "$D/v1.img" 4
	build_bundle "$D/u.tnd" "$D/v1.img"
	snapshot
	"$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "slot A changed"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "B A" ] || fail "B not first"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_B_LEFT)" = 3 ] || fail "B tries"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_A_LEFT)" = 3 ] || fail "A tries changed"
	"$TANDEM" -c "$CONF" status --json >"$D/st.json"
	python3 - "$D/st.json" "$(sha256sum <"$D/v1.img" | cut -d' ' -f1)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["booted_slot"] == "A", s
b = s["slots"]["B"]
assert b["state"] == "installed" and b["version"] == "1.0", b
assert b["sha256"] == sys.argv[2], b
assert s["slots"]["A"]["device"].endswith("slotA.img")
assert s["last_install"]["result"] == "success"
PY
}

test_install_stdin_and_json_progress() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	"$TANDEM" -c "$CONF" install --progress=json --no-activate - <"$D/u.tnd" >"$D/events"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	# no-activate: order untouched, B not bootable until `activate`
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "A B" ] || fail "order changed"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_B_LEFT)" = 0 ] || fail "B left bootable"
	python3 - "$D/events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in ev]
assert kinds[0] == "phase" and kinds[-1] == "done", kinds
assert "progress" in kinds, kinds
last = [e for e in ev if e["event"] == "progress"][-1]
assert last["written"] == last["total"] and last["chunk"] == last["chunks"], last
assert ev[-1]["slot"] == "B" and ev[-1]["activated"] is False, ev[-1]
PY
}

test_reinstall_over_installed_slot() {
	new_device dev
	make_image "$D/v1.img" 2
	head -c 3000000 /dev/urandom >"$D/v2.img"
	build_bundle "$D/u1.tnd" "$D/v1.img"
	build_bundle "$D/u2.tnd" "$D/v2.img" --version 2.0
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u1.tnd"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u2.tnd"
	img_prefix_ok "$D/v2.img" "$D/slotB.img" || fail "slot B does not hold v2"
}

test_refuse_bad_signature() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	snapshot
	# last byte of the signature block: header says where it ends
	local mlen slen
	mlen=$(od -An -tu1 -j16 -N4 "$D/u.tnd" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
	slen=$(od -An -tu1 -j20 -N4 "$D/u.tnd" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
	cp "$D/u.tnd" "$D/bad.tnd"
	# flipped, not overwritten with a constant: a byte that already held
	# it (1 run in 256) left the bundle valid and the test failing
	local off=$((32 + mlen + slen - 1)) b
	b=$(od -An -tu1 -j"$off" -N1 "$D/u.tnd" | tr -d ' ')
	printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$D/bad.tnd" bs=1 seek="$off" conv=notrunc 2>/dev/null
	cmp -s "$D/u.tnd" "$D/bad.tnd" && fail "the signature byte did not change"
	expect_refusal 11 "signature" "$TANDEM" -c "$CONF" install --progress=none "$D/bad.tnd"
	assert_untouched
	# a manifest byte changed: the signature no longer matches
	cp "$D/u.tnd" "$D/bad2.tnd"
	sed -i '0,/"version":"1.0"/s//"version":"9.0"/' "$D/bad2.tnd"
	expect_refusal 11 "signature" "$TANDEM" -c "$CONF" install --progress=none "$D/bad2.tnd"
	assert_untouched
}

test_refuse_unknown_key() {
	new_device dev
	make_image "$D/v1.img" 1
	"$TANDEM_IMAGE" keygen --out "$D/other.key" --pub "$D/other.pem"
	"$TANDEM_IMAGE" -q build --key "$D/other.key" --image "$D/v1.img" --version 1.0 \
		--compatible sim --out "$D/u.tnd"
	snapshot
	expect_refusal 11 "no key in the keyring" "$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	assert_untouched
}

test_refuse_other_board() {
	new_device dev
	make_image "$D/v1.img" 1
	"$TANDEM_IMAGE" -q build --key "$D/signing/key.pem" --image "$D/v1.img" --version 1.0 \
		--compatible other-board --out "$D/u.tnd"
	snapshot
	expect_refusal 13 'for "other-board"' "$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	assert_untouched
}

test_refuse_plain_downgrade_unless_allowed() {
	. "$TOP/tests/lib/simboot.sh"
	new_device dev
	make_image "$D/v.img" 1
	build_bundle "$D/v1.10.tnd" "$D/v.img" --version 1.10
	build_bundle "$D/v1.9.tnd" "$D/v.img" --version 1.9
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/v1.10.tnd"
	[ "$(sim_boot "$D")" = B ]
	"$TANDEM" -c "$CONF" -q confirm
	# 1.9 < 1.10 (digit runs compare by value, not as text)
	snapshot
	expect_refusal 13 "version 1.9 is older than 1.10 in booted slot B (--allow-downgrade" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/v1.9.tnd"
	assert_untouched # slot A (the target) and the environment
	# the same version again is a reinstall, not a downgrade
	"$TANDEM" -c "$CONF" -q install --progress=none --no-activate "$D/v1.10.tnd"
	"$TANDEM" -c "$CONF" -q install --progress=none --allow-downgrade "$D/v1.9.tnd"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "A B" ] || fail "1.9 not activated"
}

test_refuse_expired() {
	new_device dev
	make_image "$D/v1.img" 1
	# In the future of this run, so that the build time (the clock floor,
	# test_unset_clock_*) is behind both.
	build_bundle "$D/u.tnd" "$D/v1.img" --created "$(at_offset 864000)" --expires "$(at_offset 1728000)"
	snapshot
	TANDEM_NOW=$(at_offset 2592000) expect_refusal 13 "expired" "$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	assert_untouched
	# and the same bundle installs while the clock says it is still valid
	TANDEM_NOW=$(at_offset 1296000) "$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd"
}

at_offset() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; } # SECONDS from now
build_offset() { # SECONDS from the build time tandem --version reports
	local b
	b=$("$TANDEM" --version | sed -n 's/.*sources of \([^)]*\)).*/\1/p')
	[ -n "$b" ] && [ "$b" != unknown ] || { echo "tandem --version names no build time" >&2; return 1; }
	date -u -d "@$(($(date -u -d "$b" +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ
}

# A board without an RTC battery boots in 1970: every expiry would pass.
# The clock is taken as no earlier than the build time, nor than the
# newest manifest this device installed (docs/security.md, "Unset clock").
test_unset_clock_uses_build_time_and_newest_release() {
	new_device dev
	make_image "$D/v1.img" 1
	local epoch=1970-01-01T00:01:00Z
	build_bundle "$D/old.tnd" "$D/v1.img" --created "$(build_offset -172800)" --expires "$(build_offset -86400)"
	snapshot
	TANDEM_NOW=$epoch expect_refusal 13 "expired.*clock unset" "$TANDEM" -c "$CONF" install --progress=none "$D/old.tnd"
	assert_untouched

	# Valid after the build time: installs, and its creation time becomes
	# the floor.
	build_bundle "$D/new.tnd" "$D/v1.img" --version 2.0 --created "$(build_offset 3600)" --expires "$(build_offset 2592000)"
	TANDEM_NOW=$epoch "$TANDEM" -c "$CONF" -q install --progress=none "$D/new.tnd" 2>"$WORK/warn"
	grep -q "warning: the system clock (1970-01-01T00:01:00Z) is earlier" "$WORK/warn" || fail "no warning: $(cat "$WORK/warn")"
	[ "$("$TANDEM" -c "$CONF" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["time_floor"])')" = "$(build_offset 3600)" ] ||
		fail "time_floor not the installed manifest's creation time"

	# Expired before that release was made, though after the build time:
	# still refused with the clock in 1970.
	build_bundle "$D/mid.tnd" "$D/v1.img" --version 3.0 --created "$(build_offset 0)" --expires "$(build_offset 1800)"
	TANDEM_NOW=$epoch expect_refusal 13 "expired" "$TANDEM" -c "$CONF" install --progress=none "$D/mid.tnd"
}

test_refuse_truncated() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	local size cut
	size=$(stat -c %s "$D/u.tnd")
	for cut in 10 100 $((size / 2)) $((size - 1)); do
		head -c "$cut" "$D/u.tnd" >"$D/t.tnd"
		snapshot
		expect_refusal 12 "truncated" "$TANDEM" -c "$CONF" install --progress=none "$D/t.tnd"
		assert_untouched
		# through a pipe the size is unknown: found while streaming
		expect_refusal 12 "truncated" sh -c "cat '$D/t.tnd' | '$TANDEM' -c '$CONF' install --progress=none -"
		if [ "$cut" -lt 400 ]; then assert_untouched; else assert_active_untouched "$D/v1.img"; fi
	done
}

# A flipped byte anywhere: refused, and no byte of the chunk it is in, or
# of any later chunk, reaches the inactive slot (which we pre-fill with a
# pattern to see exactly what was written).
test_refuse_flipped_bytes() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	local size off
	size=$(stat -c %s "$D/u.tnd")
	for off in 0 9 17 40 200 $((size / 3)) $((size / 2)) $((size - 40)) $((size - 1)); do
		cp "$D/u.tnd" "$D/f.tnd"
		printf '\xa5' | dd of="$D/f.tnd" bs=1 seek="$off" conv=notrunc 2>/dev/null
		cmp -s "$D/u.tnd" "$D/f.tnd" && continue # the byte was already 0xa5
		(set +o pipefail; yes | tr -d '\n' | head -c 8388608 >"$D/slotB.img")
		# A refused install keeps a checkpoint of its good prefix; with
		# slot B refilled it no longer applies (a line that it does not).
		rm -f "$D/state/resume.json"
		snapshot
		"$TANDEM" -c "$CONF" install --progress=none "$D/f.tnd" >/dev/null 2>"$WORK/err" &&
			fail "flip at $off was installed"
		[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "flip at $off: $(cat "$WORK/err")"
		# header, manifest and signatures: nothing changes; in the payload:
		# the target is taken out of the boot order's reach, nothing else
		# whatever reached slot B is a prefix of the image, the rest untouched
		if [ "$off" -lt 400 ]; then assert_untouched; else assert_active_untouched "$D/v1.img"; fi
	done
}

test_refuse_payload_longer_than_declared() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	{ cat "$D/u.tnd"; printf 'extra'; } >"$D/long.tnd"
	snapshot
	expect_refusal 12 "declares\|after its last chunk" "$TANDEM" -c "$CONF" install --progress=none "$D/long.tnd"
	assert_untouched
	expect_refusal 12 "after its last chunk" sh -c "cat '$D/long.tnd' | '$TANDEM' -c '$CONF' install --progress=none -"
	assert_active_untouched "$D/v1.img"
	# never activated after the trailing data was found
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "A B" ] || fail "activated"
	"$TANDEM" -c "$CONF" status --json | grep -q '"error_code":.*"E_TRAILING"' || fail "not recorded"
}

test_refuse_slot_too_small() {
	new_device dev 1M
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	snapshot
	expect_refusal 20 "holds 1048576 bytes" "$TANDEM" -c "$CONF" install --progress=none "$D/u.tnd"
	assert_untouched
}

test_refuse_booted_slot() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	snapshot
	expect_refusal 20 "booted slot" "$TANDEM" -c "$CONF" install --progress=none --slot A "$D/u.tnd"
	assert_untouched
	# the booted slot comes from the kernel command line: booted from B, B is refused
	echo "tandem.slot=B" >"$D/cmdline"
	SNAP_A=$(sha256sum <"$D/slotA.img")
	expect_refusal 20 "booted slot" "$TANDEM" -c "$CONF" install --progress=none --slot B "$D/u.tnd"
	assert_untouched
}

test_refuse_missing_config_and_usage() {
	new_device dev
	expect_refusal 3 "configuration" "$TANDEM" -c "$D/nope.conf" status
	expect_refusal 2 "install takes one SOURCE" "$TANDEM" -c "$CONF" install
	echo '{"compatible":"sim","slots":{"A":"a","B":"b"},"bogus":1}' >"$D/bad.conf"
	expect_refusal 3 'unknown key "bogus"' "$TANDEM" -c "$D/bad.conf" status
	"$TANDEM" --help | grep -q "Commands:"
	"$TANDEM" install --help | grep -q "Usage: tandem"
	"$TANDEM" status --help | grep -q -- "--json"
	"$TANDEM_IMAGE" build --help | grep -q -- "--compatible"
}

test_failed_install_is_recorded_and_retry_works() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	head -c 100000 "$D/u.tnd" >"$D/t.tnd"
	cat "$D/t.tnd" | "$TANDEM" -c "$CONF" install --progress=none - 2>/dev/null && fail "installed a truncated bundle"
	"$TANDEM" -c "$CONF" status --json >"$D/st.json"
	python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))
assert s["last_install"]["result"]=="failed" and s["last_install"]["error_code"]=="E_TRUNCATED", s
assert s["slots"]["B"]["state"]=="installing", s
assert s["slots"]["B"]["boot_tries_left"]==0, s' "$D/st.json"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd"
	cmp -s -n "$(stat -c %s "$D/v1.img")" "$D/v1.img" "$D/slotB.img" || fail "retry did not install"
}

test_image_tool_verify_and_inspect() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img" --security-version 4 --description "nightly build"
	"$TANDEM_IMAGE" verify --keyring "$D/keys" "$D/u.tnd" | grep -q OK
	"$TANDEM_IMAGE" inspect --json "$D/u.tnd" | python3 -c '
import json,sys; j=json.load(sys.stdin); m=j["manifest"]
assert m["security_version"]==4 and m["description"]=="nightly build" and j["signature"]=="not checked", j'
	cp "$D/u.tnd" "$D/f.tnd"
	printf '\x00' | dd of="$D/f.tnd" bs=1 seek=$(( $(stat -c %s "$D/u.tnd") - 100 )) conv=notrunc 2>/dev/null
	expect_refusal 12 "does not match" "$TANDEM_IMAGE" verify --pub "$D/keys/release.pem" "$D/f.tnd"
}

run_tests
