# SPDX-License-Identifier: MIT
# Helpers for the integration tests: sourced, never run. Each test script
# defines functions named test_*; run_tests runs them all in fresh
# simulated devices and prints one line per test and a closing count.

set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${BUILD:-$TOP/build}" && pwd)
TANDEM=$BUILD/tandem
TANDEM_IMAGE=$BUILD/tandem-image
export TANDEM_IMAGE
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tandem-it-XXXXXX")}

fail() { echo "    FAIL: $*" >&2; return 1; }

# new_device NAME [SLOT_SIZE]: a fresh simulated device in $WORK/NAME; sets D.
new_device() {
	D=$WORK/$1
	rm -rf "$D"
	"$TOP/tests/lib/simdev.sh" "$D" "${2:-8M}" || return 1
	CONF=$D/tandem.conf
}

# make_image FILE MIB: random data, zeros and text, deterministic per name.
make_image() {
	local f=$1 mib=$2
	{
		head -c $((mib * 1024 * 1024 / 4)) /dev/urandom
		head -c $((mib * 1024 * 1024 / 4)) /dev/zero
		# yes dies of SIGPIPE by design: not an error here
		(set +o pipefail; yes "tandem integration test line for $(basename "$f")" | head -c $((mib * 1024 * 1024 / 2)))
	} >"$f"
}

# sqpair DIR: two xz-compressed squashfs images of a tree of text-like
# files, the second with a few files edited (one byte each or a line
# appended), as a security update does to a read-only root.
sqpair() {
	python3 - "$1/tree" <<'PY'
import os, random, sys
d = sys.argv[1]; r = random.Random(11)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(3000)]
for i in range(40):
    os.makedirs(os.path.join(d, "usr/lib/p%02d" % (i % 8)), exist_ok=True)
    body = b" ".join(r.choice(words) for _ in range(r.randint(4000, 30000)))
    open(os.path.join(d, "usr/lib/p%02d/f%02d.so" % (i % 8, i)), "wb").write(body)
PY
	mksquashfs "$1/tree" "$1/base.img" -comp xz -noappend -quiet -all-root \
		-mkfs-time 0 -all-time 0 >/dev/null
	local f
	for f in "$1"/tree/usr/lib/p0[0-3]/f0*.so; do
		printf 'patched\n' >>"$f"
	done
	printf 'Z' | dd of="$1/tree/usr/lib/p05/f05.so" bs=1 seek=777 conv=notrunc 2>/dev/null
	mksquashfs "$1/tree" "$1/target.img" -comp xz -noappend -quiet -all-root \
		-mkfs-time 0 -all-time 0 >/dev/null
}

# build_bundle OUT IMAGE [extra tandem-image build args...]
build_bundle() {
	local out=$1 img=$2
	shift 2
	"$TANDEM_IMAGE" -q build --key "$D/signing/key.pem" --image "$img" --version 1.0 \
		--compatible sim --chunk-size 64K --out "$out" "$@"
}

# state_facts: what state.json says of the slots, the pending slot and
# the floors (not last_install, where a refusal is recorded); a missing
# file says what an empty one does.
state_facts() {
	python3 - "$D/state/state.json" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else {}
slots = s.get("slots", {})
facts = {k: (slots.get(k, {}).get("state", "unknown"), slots.get(k, {}).get("version"),
             slots.get(k, {}).get("sha256"), slots.get(k, {}).get("security_version", 0))
         for k in "AB"}
facts["pending"] = s.get("pending_slot")
facts["floor"] = s.get("security_floor", 0)
facts["time_floor"] = s.get("time_floor")
print(json.dumps(facts, sort_keys=True))
PY
}

# snapshot: remembers what must not change on a refused install.
snapshot() {
	SNAP_A=$(sha256sum <"$D/slotA.img")
	SNAP_B=$(sha256sum <"$D/slotB.img")
	SNAP_ENV=$(fw_printenv -c "$D/fw_env.config" | sort)
	SNAP_ENV_FILES=$(cat "$D"/env/*.env | sha256sum)
	SNAP_STATE=$(state_facts)
	cp --sparse=always "$D/slotB.img" "$D/.slotB.snap"
}

# prefix_only IMAGE: every byte of slot B is either the image's, from its
# start, or what was there at the last snapshot: nothing unauthenticated
# reached the slot.
prefix_only() {
	python3 - "$1" "$D/slotB.img" "$D/.slotB.snap" <<'PY'
import sys
img, slot, snap = (open(p, "rb").read() for p in sys.argv[1:4])
n = 0
while n < len(img) and slot[n] == img[n]:
    n += 1
assert slot[n:] == snap[n:], "bytes other than the image's prefix reached slot B at %d" % n
PY
}

# For refusals found while streaming, the target slot's old content is
# partly overwritten: its counter must be 0 (never bootable), while the
# booted slot, the boot order and the booted slot's counter are untouched;
# state.json records B "installing" and nothing new of A. With IMAGE, what
# reached slot B is a prefix of it (prefix_only).
assert_active_untouched() {
	local env=$D/fw_env.config
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "active slot A changed" || return 1
	[ "$(fw_printenv -c "$env" -n BOOT_ORDER)" = "$(echo "$SNAP_ENV" | sed -n 's/^BOOT_ORDER=//p')" ] ||
		fail "boot order changed" || return 1
	[ "$(fw_printenv -c "$env" -n BOOT_A_LEFT)" = "$(echo "$SNAP_ENV" | sed -n 's/^BOOT_A_LEFT=//p')" ] ||
		fail "BOOT_A_LEFT changed" || return 1
	[ "$(fw_printenv -c "$env" -n BOOT_B_LEFT)" = 0 ] || fail "slot B left bootable" || return 1
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["slots"]["B"]["state"]=="installing", s' \
		"$D/state/state.json" || fail "slot B not recorded as installing" || return 1
	python3 - "$SNAP_STATE" "$(state_facts)" <<'PY' || fail "state.json changed what it says of A" || return 1
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["A"] == b["A"] and a["floor"] == b["floor"] and b["pending"] != "B", (a, b)
PY
	[ $# -eq 0 ] || prefix_only "$1" || fail "unauthenticated bytes in slot B" || return 1
}

# Refusals found before the first slot write change nothing at all: not a
# byte of either slot, not the environment, and state.json says nothing
# new of the slots (a refusal is recorded under last_install only).
assert_untouched() {
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "active slot A changed" || return 1
	[ "$(sha256sum <"$D/slotB.img")" = "$SNAP_B" ] || fail "slot B was written" || return 1
	[ "$(fw_printenv -c "$D/fw_env.config" | sort)" = "$SNAP_ENV" ] || fail "environment changed" || return 1
	[ "$(cat "$D"/env/*.env | sha256sum)" = "$SNAP_ENV_FILES" ] || fail "environment files were rewritten" || return 1
	[ "$(state_facts)" = "$SNAP_STATE" ] || fail "state.json changed: $(state_facts)" || return 1
}

# expect_refusal EXPECTED_STATUS PATTERN CMD...: runs CMD, which must fail
# with that exit status and exactly one stderr line matching PATTERN.
expect_refusal() {
	local want=$1 pat=$2 rc
	shift 2
	rc=0
	"$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "exit status $rc, expected $want; stderr: $(cat "$WORK/err")" || return 1
	[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "expected one error line, got: $(cat "$WORK/err")" || return 1
	grep -q "error: .*$pat" "$WORK/err" || fail "error does not mention '$pat': $(cat "$WORK/err")" || return 1
}

run_tests() {
	local t passed=0 failed=0
	for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
		# Not inside `if`: bash ignores set -e in a condition's subshell.
		(set -e; "$t") >"$WORK/$t.log" 2>&1
		if [ $? -eq 0 ]; then
			echo "  PASS  ${0##*/}: $t"
			passed=$((passed + 1))
		else
			echo "  FAIL  ${0##*/}: $t"
			sed 's/^/        /' "$WORK/$t.log"
			failed=$((failed + 1))
		fi
	done
	echo "${0##*/}: $passed passed, $failed failed"
	[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
	[ "$failed" -eq 0 ]
}
