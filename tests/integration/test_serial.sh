#!/bin/bash
# SPDX-License-Identifier: MIT
# Bundles sent over a simulated serial line (socat pty pairs and a pacing
# relay that runs at a real line rate and injects faults:
# tests/serial/relay.py) into a simulated device: `tandem-image send` on
# one end, `tandem receive` on the other, the install path of `tandem
# install` behind it. Noise, dropped bytes, a pulled cable and a restarted
# sender must still install the exact image; a bad bundle must be refused
# on the device and the host must exit with the device's error.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/serial/line.sh"

BAUD=1000000 # 100 kB/s: a 260 kB bundle takes under 3 s on a clean line

img_prefix_ok() { # IMG SLOT
	cmp -s -n "$(stat -c %s "$1")" "$1" "$2"
}

# setup [relay options]: a device with a 1 MiB image bundled, and a line.
setup() {
	new_device dev
	make_image "$D/v1.img" 1
	build_bundle "$D/u.tnd" "$D/v1.img"
	# Each test runs in a subshell: stop the line however it ends.
	trap line_down EXIT
	line_up "$WORK/line" "$BAUD" "$@"
}

# start_receive [options]: tandem receive in the background; sets RECV.
start_receive() {
	timeout 60 "$TANDEM" -c "$CONF" receive --serial "$LINE_DEV" --baud "$BAUD" \
		--timeout 20 --progress=none --json "$@" >"$D/recv.json" 2>"$D/recv.err" &
	RECV=$!
}

# send_bundle BUNDLE [options]: runs the sender to its end; status in SEND_RC.
send_bundle() {
	local b=$1
	shift
	SEND_RC=0
	timeout 60 "$TANDEM_IMAGE" send --serial "$LINE_HOST" --baud "$BAUD" --timeout 20 \
		--progress=json "$@" "$b" >"$D/send.events" 2>"$D/send.err" || SEND_RC=$?
}

wait_receive() {
	RECV_RC=0
	wait "$RECV" || RECV_RC=$?
}

# The sender's last event is "done" with the device's result in it.
check_done() {
	python3 - "$D/send.events" "$D/recv.json" "$(sha256sum <"$D/v1.img" | cut -d' ' -f1)" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
done = ev[-1]
assert done["event"] == "done", ev[-3:]
assert done["bytes"] > 0 and done["result"]["slot"] == "B", done
assert done["result"]["sha256"] == sys.argv[3], done
recv = json.load(open(sys.argv[2]))
assert recv["sha256"] == sys.argv[3] and recv["activated"] is True, recv
assert recv["link"]["bytes"] == done["bytes"], (recv, done)
PY
}

test_serial_clean_line_installs() {
	setup
	snapshot
	start_receive
	send_bundle "$D/u.tnd"
	wait_receive
	[ "$SEND_RC" -eq 0 ] || fail "send exited $SEND_RC: $(cat "$D/send.err")"
	[ "$RECV_RC" -eq 0 ] || fail "receive exited $RECV_RC: $(cat "$D/recv.err")"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "slot A changed"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "B A" ] || fail "B not first"
	check_done
	line_down
	# a clean line: nothing was sent twice
	python3 - "$D/send.events" <<'PY'
import json, sys
done = [json.loads(l) for l in open(sys.argv[1])][-1]
assert done["retransmitted_frames"] == 0 and done["stalls"] == 0, done
assert done["resume_offset"] == 0, done
PY
}

test_serial_noise_and_drops_install() {
	# About one flipped bit per 20 kB and one lost byte per 33 kB, both ways.
	setup --seed 7 --flip-rate 5e-5 --drop-rate 3e-5
	start_receive
	send_bundle "$D/u.tnd"
	wait_receive
	[ "$SEND_RC" -eq 0 ] || fail "send exited $SEND_RC: $(cat "$D/send.err")"
	[ "$RECV_RC" -eq 0 ] || fail "receive exited $RECV_RC: $(cat "$D/recv.err")"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	check_done
	line_down
	# The faults happened, were noticed and repaired.
	python3 - "$WORK/line/relay.json" "$D/send.events" "$D/recv.json" <<'PY'
import json, sys
relay = json.load(open(sys.argv[1]))
done = [json.loads(l) for l in open(sys.argv[2])][-1]
recv = json.load(open(sys.argv[3]))
assert relay["forward"]["flips"] >= 3 and relay["forward"]["drops"] >= 2, relay
assert done["retransmitted_frames"] >= 3, done
assert recv["link"]["bad_frames"] >= 3, recv
PY
}

test_serial_cable_pull_resumes() {
	# After 100 kB the cable is out for 3 s: what is sent meanwhile is lost.
	setup --pull-at 100000 --pull-for 3
	start_receive
	send_bundle "$D/u.tnd"
	wait_receive
	[ "$SEND_RC" -eq 0 ] || fail "send exited $SEND_RC: $(cat "$D/send.err")"
	[ "$RECV_RC" -eq 0 ] || fail "receive exited $RECV_RC: $(cat "$D/recv.err")"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	check_done
	line_down
	# The sender saw the line die and come back, and went on from where
	# the device was: the resume point is well past zero and the bytes
	# sent in all are far fewer than a restart from zero would need.
	python3 - "$WORK/line/relay.json" "$D/send.events" <<'PY'
import json, sys
relay = json.load(open(sys.argv[1]))
ev = [json.loads(l) for l in open(sys.argv[2])]
done = ev[-1]
assert relay["pulls"] and relay["forward"]["discarded"] > 0, relay
kinds = [e["event"] for e in ev]
assert "stall" in kinds and "resume" in kinds, kinds
resume = [e for e in ev if e["event"] == "resume"][0]
assert resume["acked"] >= 50000, resume
assert done["stalls"] >= 1 and done["resumed_at"][0] >= 50000, done
# the data bytes sent in all: less than one and a half times the bundle
assert done["data_bytes_on_wire"] < 1.5 * done["bytes"], done
PY
}

test_serial_sender_restart_resumes() {
	setup
	start_receive
	# First sender: killed once the device has taken 80 kB or more.
	# (not under timeout(1): the kill below must reach the sender itself)
	"$TANDEM_IMAGE" send --serial "$LINE_HOST" --baud "$BAUD" --progress=json --timeout 20 \
		"$D/u.tnd" >"$D/send1.events" 2>"$D/send1.err" &
	local s1=$! i
	for i in $(seq 100); do
		python3 - "$D/send1.events" <<'PY' && break
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip().endswith("}")]
sys.exit(0 if any(e.get("acked", 0) >= 80000 for e in ev) else 1)
PY
		sleep 0.1
	done
	kill -9 "$s1"
	wait "$s1" 2>/dev/null || true
	# Second sender, a new session: the device holds part of this very
	# bundle and says where to go on.
	send_bundle "$D/u.tnd"
	wait_receive
	[ "$SEND_RC" -eq 0 ] || fail "send exited $SEND_RC: $(cat "$D/send.err")"
	[ "$RECV_RC" -eq 0 ] || fail "receive exited $RECV_RC: $(cat "$D/recv.err")"
	img_prefix_ok "$D/v1.img" "$D/slotB.img" || fail "slot B does not hold the image"
	check_done
	python3 - "$D/send.events" "$D/recv.json" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
welcome = [e for e in ev if e["event"] == "welcome"][0]
assert welcome["resume_offset"] >= 80000, welcome
assert ev[-1]["resume_offset"] == welcome["resume_offset"], ev[-1]
recv = json.load(open(sys.argv[2]))
assert recv["link"]["sessions"] == 2, recv
PY
}

test_serial_bad_bundle_refused_on_device() {
	setup
	# Flip the last byte of the signature block (as test_install does).
	local mlen slen
	mlen=$(od -An -tu1 -j16 -N4 "$D/u.tnd" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
	slen=$(od -An -tu1 -j20 -N4 "$D/u.tnd" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
	cp "$D/u.tnd" "$D/bad.tnd"
	printf '\x00' | dd of="$D/bad.tnd" bs=1 seek=$((32 + mlen + slen - 1)) conv=notrunc 2>/dev/null
	snapshot
	start_receive
	send_bundle "$D/bad.tnd"
	wait_receive
	# The device refused it with E_SIGNATURE (status 11) and told the host,
	# which prints the device's message on one line and exits the same way.
	[ "$RECV_RC" -eq 11 ] || fail "receive exited $RECV_RC: $(cat "$D/recv.err")"
	[ "$SEND_RC" -eq 11 ] || fail "send exited $SEND_RC: $(cat "$D/send.err")"
	[ "$(wc -l <"$D/send.err")" -eq 1 ] || fail "expected one error line: $(cat "$D/send.err")"
	grep -q "error: device: .*signature" "$D/send.err" || fail "no device error: $(cat "$D/send.err")"
	python3 - "$D/send.events" <<'PY'
import json, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
assert last["event"] == "error" and last["code"] == "E_SIGNATURE", last
PY
	assert_untouched
}

test_serial_usage_errors() {
	new_device dev
	expect_refusal 2 "needs --serial" "$TANDEM" -c "$CONF" receive
	expect_refusal 2 "baud" "$TANDEM" -c "$CONF" receive --serial /dev/null --baud 123
	expect_refusal 2 "needs --serial" "$TANDEM_IMAGE" send "$CONF"
	expect_refusal 5 "cannot open serial device" "$TANDEM" -c "$CONF" receive --serial "$WORK/none"
	expect_refusal 4 "not a serial device" "$TANDEM_IMAGE" send --serial /dev/null "$CONF"
}

run_tests
