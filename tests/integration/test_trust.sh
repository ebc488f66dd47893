#!/bin/bash
# SPDX-License-Identifier: MIT
# The device's own defences, each tried the way it was once broken (issue
# 19): two tandem processes at once, a symlink planted in state_dir, a
# lost state directory and the anti-rollback floor, the descriptors an
# early failure closes. The bundle-level attacks live beside the features
# they attack: test_resume.sh (a forged checkpoint), test_delta.sh (a base
# changed under a CRC-32), test_fleet.sh (a mirror serving another
# release), test_boot.sh (rollback below the floor).
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/lib/simboot.sh"

state_py() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); $1" "$D/state/state.json"; }

# feed_slowly FILE FIFO SECONDS: writes FILE into FIFO, the last KiB only
# after SECONDS (an install from a slow source that holds the lock).
feed_slowly() {
	python3 - "$1" "$2" "$3" <<'PY' &
import sys, time
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    f.write(data[:-1024]); f.flush()
    time.sleep(float(sys.argv[3]))
    f.write(data[-1024:])
PY
}

# Hole 4: no lock between processes. A second command that changes state
# while an install runs is refused at once, names the one that runs, and
# writes nothing; the first completes and its record stands. A killed
# holder leaves no lock behind.
test_second_tandem_refused_while_one_installs() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	cp "$D/u.tnd" "$D/bad.tnd"
	printf 'X' | dd of="$D/bad.tnd" bs=1 seek=200000 conv=notrunc 2>/dev/null
	mkfifo "$D/fifo"
	feed_slowly "$D/u.tnd" "$D/fifo" 3
	local feeder=$! first
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/fifo" &
	first=$!
	for _ in $(seq 50); do
		[ -e "$D/state/lock" ] && state_py 'assert s["slots"]["B"]["state"]=="installing"' 2>/dev/null && break
		sleep 0.1
	done
	local cmd
	for cmd in "install --progress=none $D/bad.tnd" "confirm" "activate A" "rollback" \
		"provision --progress=none $D/u.tnd"; do
		cp "$D/state/state.json" "$D/state.before"
		# shellcheck disable=SC2086
		expect_refusal 26 "another tandem is running (pid $first: .*tandem.* install" \
			"$TANDEM" -c "$CONF" $cmd
		cmp -s "$D/state/state.json" "$D/state.before" || fail "$cmd changed the state"
	done
	# status and doctor only read: they run
	"$TANDEM" -c "$CONF" status --json >/dev/null || fail "status refused during an install"
	wait "$first" || fail "the first install failed"
	wait "$feeder"
	state_py 'b=s["slots"]["B"]; assert b["state"]=="installed" and b["version"]=="1.0" and "sha256" in b, s
assert s["last_install"]["result"]=="success", s'
	# the lock dies with its holder
	feed_slowly "$D/u.tnd" "$D/fifo" 30
	feeder=$!
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/fifo" &
	first=$!
	sleep 1
	kill -9 "$first"
	wait "$first" 2>/dev/null || true
	kill "$feeder" 2>/dev/null || true
	wait "$feeder" 2>/dev/null || true
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd" || fail "lock outlived a killed holder"
}

# Hole 6: atomic writes followed a symlink at <file>.tmp: as root, any
# file could be overwritten with state JSON. The symlink is replaced, its
# target untouched.
test_symlink_at_tmp_not_followed() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	printf 'precious\n' >"$D/victim"
	ln -s "$D/victim" "$D/state/state.json.tmp"
	ln -s "$D/victim" "$D/state/resume.json.tmp"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd" || fail "install failed"
	[ "$(cat "$D/victim")" = precious ] || fail "the symlink's target was overwritten"
	[ ! -L "$D/state/state.json" ] || fail "state.json is a symlink"
	state_py 'assert s["slots"]["B"]["state"]=="installed", s'
}

# Hole 7: every early failure closed standard input (a writer filled in by
# hand had its O_DIRECT descriptor 0). Failures before, during and after
# prepare: no close(0) in the trace.
test_early_failures_leave_stdin_open() {
	command -v strace >/dev/null || fail "strace is missing (make deps)"
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	"$TANDEM_IMAGE" keygen --out "$D/other.pem" --pub "$D/other.pub" >/dev/null
	"$TANDEM_IMAGE" -q build --key "$D/other.pem" --image "$D/v1.img" --version 1.0 \
		--compatible sim --out "$D/unknown.tnd"
	echo '{' >"$D/state/state.json.bad"
	local what
	for what in unknown-key corrupt-state missing-file; do
		case $what in
		unknown-key) set -- "$D/unknown.tnd" ;;
		corrupt-state) cp "$D/state/state.json.bad" "$D/state/state.json" && set -- "$D/u.tnd" ;;
		missing-file) rm -f "$D/state/state.json" && set -- "$D/nope.tnd" ;;
		esac
		strace -f -qq -e trace=close -o "$D/trace" "$TANDEM" -c "$CONF" -q install \
			--progress=none "$1" </dev/null 2>/dev/null && fail "$what: installed"
		! grep -q 'close(0)' "$D/trace" || fail "$what: standard input was closed"
		grep -q 'close(' "$D/trace" || fail "$what: strace saw no close at all"
	done
}

# Hole 5: a missing state file reset the anti-rollback floor (corrupt
# values failed closed, missing ones open). The floor is kept in the boot
# environment too, which the device cannot boot without: losing
# state_dir, or just state.json, keeps it.
test_floor_survives_lost_state() {
	new_device dev
	make_image "$D/v5.img" 1
	make_image "$D/v1.img" 1
	build_bundle "$D/sv5.tnd" "$D/v5.img" --version 5.0 --security-version 5
	build_bundle "$D/sv1.tnd" "$D/v1.img" --version 6.0 --security-version 1
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/sv5.tnd"
	[ "$(sim_boot "$D")" = B ] || fail "B did not boot"
	"$TANDEM" -c "$CONF" -q confirm
	expect_refusal 13 "below this device's floor of 5" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/sv1.tnd"
	rm "$D/state/state.json"
	expect_refusal 13 "below this device's floor of 5" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/sv1.tnd"
	rm -rf "$D/state"
	expect_refusal 13 "below this device's floor of 5" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/sv1.tnd"
	"$TANDEM" -c "$CONF" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["security_floor"]==5, s'
	[ "$(tr -d '\0' <"$D/slotA.img" | wc -c)" -eq 0 ] || fail "slot A was written"
	[ "$(fw_printenv -c "$D/fw_env.config" -n TANDEM_SECURITY_FLOOR)" = 5 ] ||
		fail "the floor is not in the environment"
}

run_tests
