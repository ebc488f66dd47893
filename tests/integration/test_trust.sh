#!/bin/bash
# SPDX-License-Identifier: MIT
# The device's own defences, each tried the way it was once broken (issue
# 19 and its review): two tandem processes at once, links planted in
# state_dir, a lost or forged state directory and the anti-rollback floor,
# the boot identities in the environment, the descriptors an
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
	# doctor's probe of whether state_dir is writable (O_TRUNC once)
	ln -s "$D/victim" "$D/state/.doctor-probe"
	"$TANDEM" -c "$CONF" doctor >/dev/null 2>&1 || true
	[ "$(cat "$D/victim")" = precious ] || fail "doctor emptied the symlink's target"
	# state files are read only when they are regular files of their own
	mv "$D/state/state.json" "$D/state.json"
	ln -s "$D/state.json" "$D/state/state.json"
	expect_refusal 22 "refusing .*state.json: a symbolic link" "$TANDEM" -c "$CONF" confirm
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
		corrupt-state)
			cp "$D/state/state.json.bad" "$D/state/state.json" || fail "cannot plant a corrupt state.json"
			set -- "$D/u.tnd"
			;;
		missing-file)
			rm -f "$D/state/state.json" || fail "cannot remove state.json"
			set -- "$D/nope.tnd"
			;;
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

# --- An attacker who can write state_dir (the data partition), and only
# that. What is there may freeze or slow updates; it must never make a
# slot boot that the release key did not vouch for at or above the floor,
# nor move the floor in the boot environment (docs/security.md).

env_get() { fw_printenv -c "$D/fw_env.config" -n "$1" 2>/dev/null; }

# two_releases: 1.0 (security version 1) installed into B and confirmed,
# then 2.0 (security version 2) into A and confirmed: the floor is 2, and
# B holds a release below it that the environment vouches for as such.
two_releases() {
	new_device dev
	make_image "$D/v1.img" 1
	make_image "$D/v2.img" 1
	build_bundle "$D/v1.tnd" "$D/v1.img" --version 1.0 --security-version 1
	build_bundle "$D/v2.tnd" "$D/v2.img" --version 2.0 --security-version 2
	local v
	for v in v1 v2; do
		"$TANDEM" -c "$CONF" -q install --progress=none "$D/$v.tnd"
		sim_boot "$D" >/dev/null
		"$TANDEM" -c "$CONF" -q confirm
	done
	[ "$(env_get BOOT_ORDER)" = "A B" ] && [ "$(env_get TANDEM_SECURITY_FLOOR)" = 2 ] ||
		fail "setup: $(env_get BOOT_ORDER), floor $(env_get TANDEM_SECURITY_FLOOR)"
	[ "$(env_get TANDEM_B_IMAGE | cut -d: -f1)" = 1 ] ||
		fail "setup: B's identity $(env_get TANDEM_B_IMAGE)"
}

# A forged pending mark (the activation "cut" before its store) once made
# confirm activate B, below the floor, on the word of state.json.
test_forged_pending_mark_activates_nothing() {
	two_releases
	rollback_refused=$(! "$TANDEM" -c "$CONF" rollback 2>&1) || fail "rollback to B allowed"
	echo "$rollback_refused" | grep -q "below this device's floor of 2" || fail "$rollback_refused"
	state_py 's["pending_slot"]="B"; s["pending_boot_id"]="x"; s["pending_activated"]=False
json.dump(s, open(sys.argv[1], "w"))'
	"$TANDEM" -c "$CONF" -q confirm 2>/dev/null || true
	[ "$(env_get BOOT_ORDER)" = "A B" ] || fail "B activated: $(env_get BOOT_ORDER)"
	[ "$(sim_boot "$D")" = A ] || fail "B booted"
}

# A health check that fails on A (damaged application data, say) once
# switched to B, below the floor. A stays first: it is the best the
# device has; the boot counter still falls back if A stops booting.
test_failed_health_never_switches_below_floor() {
	two_releases
	printf '#!/bin/sh\nexit 1\n' >"$D/health.d/10-app"
	chmod +x "$D/health.d/10-app"
	sim_boot "$D" >/dev/null
	local rc=0
	"$TANDEM" -c "$CONF" confirm 2>"$D/err" || rc=$?
	[ $rc -eq 24 ] && grep -q "error: .*10-app failed" "$D/err" || fail "confirm: exit $rc: $(cat "$D/err")"
	grep -qF "slot B cannot take over (slot B holds security version 1, below this device's floor of 2" \
		"$D/err" || fail "no warning: $(cat "$D/err")"
	[ "$(env_get BOOT_ORDER)" = "A B" ] || fail "switched: $(env_get BOOT_ORDER)"
	[ "$(sim_boot "$D")" = A ] || fail "B booted"
	# with B vouched for at the floor, the same failure does switch
	build_bundle "$D/v3.tnd" "$D/v1.img" --version 3.0 --security-version 2
	rm "$D/health.d/10-app"
	"$TANDEM" -c "$CONF" -q confirm
	"$TANDEM" -c "$CONF" -q install --progress=none --no-activate "$D/v3.tnd"
	printf '#!/bin/sh\nexit 1\n' >"$D/health.d/10-app"
	chmod +x "$D/health.d/10-app"
	"$TANDEM" -c "$CONF" confirm 2>/dev/null && fail "confirm passed"
	[ "$(env_get BOOT_ORDER)" = "B A" ] || fail "not switched to B at the floor: $(env_get BOOT_ORDER)"
}

# The floor in the environment outlives state_dir, so nothing from
# state_dir may raise it: a forged record once set it to 4294967295 (or
# 2^53-1, which no manifest can carry), and then no release was ever
# installable again, even after the state was wiped.
test_state_cannot_raise_the_environment_floor() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/v1.tnd" "$D/v1.img" --version 1.0 --security-version 1
	echo '{"slots":{"A":{"state":"good","security_version":9007199254740991}}}' >"$D/state/state.json"
	expect_refusal 22 "corrupt" "$TANDEM" -c "$CONF" confirm
	echo '{"security_floor":4294967295,"slots":{"A":{"state":"good","security_version":4294967295}}}' \
		>"$D/state/state.json"
	"$TANDEM" -c "$CONF" -q confirm || fail "confirm failed"
	[ -z "$(env_get TANDEM_SECURITY_FLOOR)" ] || fail "floor in the environment: $(env_get TANDEM_SECURITY_FLOOR)"
	rm -rf "$D/state"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/v1.tnd" || fail "the state's floor outlived the state"
}

# The lock must hold through links planted in state_dir: a POSIX record
# lock was dropped by any close() of the lock file, and the install read
# resume.json (a symlink to the lock) and closed it. A second install then
# wrote the same slot at the same time. A hard link is refused outright:
# the lock file is written (the holder's pid) and must be nothing else.
test_lock_holds_through_planted_links() {
	new_device dev
	make_image "$D/v1.img" 2
	build_bundle "$D/u.tnd" "$D/v1.img"
	mkfifo "$D/fifo"
	touch "$D/state/lock"
	ln -s lock "$D/state/resume.json"
	feed_slowly "$D/u.tnd" "$D/fifo" 3
	local feeder=$! first
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/fifo" 2>"$D/first.err" &
	first=$!
	for _ in $(seq 50); do
		state_py 'assert s["slots"]["B"]["state"]=="installing"' 2>/dev/null && break
		sleep 0.1
	done
	expect_refusal 26 "another tandem is running (pid $first" \
		"$TANDEM" -c "$CONF" install --progress=none --no-activate "$D/u.tnd"
	wait "$first" || fail "the first install failed: $(cat "$D/first.err")"
	wait "$feeder"
	# hard links: to the lock, and from the lock to another file
	rm -f "$D/state/resume.json" # (the install removed the link it refused)
	printf 'precious\n' >"$D/victim"
	for how in into-lock lock-to-victim; do
		rm -f "$D/state/lock" "$D/state/resume.json"
		if [ $how = into-lock ]; then
			touch "$D/state/lock"
			ln "$D/state/lock" "$D/state/resume.json"
		else
			ln "$D/victim" "$D/state/lock"
		fi
		cp "$D/state/state.json" "$D/state.before"
		expect_refusal 22 "lock is not a file of its own" \
			"$TANDEM" -c "$CONF" install --progress=none --no-activate "$D/u.tnd"
		cmp -s "$D/state/state.json" "$D/state.before" || fail "$how: the state changed"
	done
	[ "$(cat "$D/victim")" = precious ] || fail "the pid was written into a linked file"
}

run_tests
