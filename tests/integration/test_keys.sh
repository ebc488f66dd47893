#!/bin/bash
# SPDX-License-Identifier: MIT
# Key rotation and revocation, step by step as docs/security.md ("Keys:
# rotation and revocation") tells a vendor to do it. The keyring belongs
# to the image (/etc/tandem/keys in each slot's root filesystem): here
# each simulated slot has its own keyring directory, and booting a slot
# points the configuration at it, as booting that root filesystem would.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/lib/simboot.sh"

# boot_into: one power-on; the booted slot's keyring becomes the device's.
boot_into() {
	local s
	s=$(sim_boot "$D")
	[ "$s" = "$1" ] || fail "booted $s, expected $1" || return 1
	sed -i "s#\"keyring\": \"[^\"]*\"#\"keyring\": \"$D/rootfs-$s/keys\"#" "$CONF"
	"$TANDEM" -c "$CONF" -q confirm
}

# ship SLOT KEY...: the keyring the release installed into SLOT carries.
ship() {
	local slot=$1 k
	shift
	rm -rf "$D/rootfs-$slot" && mkdir -p "$D/rootfs-$slot/keys" || fail "cannot make rootfs-$slot"
	for k in "$@"; do cp "$D/$k.pub" "$D/rootfs-$slot/keys/$k.pem"; done
}

sign() { # OUT VERSION KEY...: a bundle of a fresh image signed by each KEY
	local out=$1 ver=$2 k args=()
	shift 2
	for k in "$@"; do args+=(--key "$D/$k.key"); done
	head -c 300000 /dev/urandom >"$out.img"
	"$TANDEM_IMAGE" -q build "${args[@]}" --image "$out.img" --version "$ver" \
		--compatible sim --chunk-size 64K --out "$out"
}

test_rotate_then_revoke() {
	new_device dev
	local k
	for k in old new; do "$TANDEM_IMAGE" keygen --out "$D/$k.key" --pub "$D/$k.pub"; done
	ship A old
	sed -i "s#\"keyring\": \"[^\"]*\"#\"keyring\": \"$D/rootfs-A/keys\"#" "$CONF"
	boot_into A

	# Before the rotation the device knows only the old key: a bundle
	# signed by the new key alone is refused, and nothing changes.
	sign "$D/early.tnd" 1.5 new
	snapshot
	expect_refusal 11 "key" "$TANDEM" -c "$CONF" install --progress=none "$D/early.tnd"
	assert_untouched

	# Step 1: the rotation release carries both keys in its keyring and is
	# signed by both: devices that trust the old key install it.
	sign "$D/r2.tnd" 2.0 old new
	"$TANDEM_IMAGE" verify --pub "$D/old.pub" "$D/r2.tnd" >/dev/null
	"$TANDEM_IMAGE" verify --pub "$D/new.pub" "$D/r2.tnd" >/dev/null
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/r2.tnd"
	ship B old new
	boot_into B

	# Step 2: from now on releases are signed by the new key only, and the
	# revocation release's keyring no longer holds the old one.
	sign "$D/r3.tnd" 3.0 new
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/r3.tnd"
	ship A new
	boot_into A
	"$TANDEM" -c "$CONF" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["booted_slot"] == "A" and s["slots"]["A"]["version"] == "3.0" and s["slots"]["A"]["state"] == "good", s'

	# Step 3: the old key is revoked: a bundle it signed (a stolen key, or
	# an old release replayed) is refused, and the device is untouched.
	sign "$D/evil.tnd" 9.0 old
	snapshot
	expect_refusal 11 "key" "$TANDEM" -c "$CONF" install --progress=none "$D/evil.tnd"
	assert_untouched
	sign "$D/r4.tnd" 4.0 new
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/r4.tnd"
}

# A device that requires two signatures (signature_threshold 2) rotates
# one of its three keys: the rotation release is signed by the two keys
# it keeps trusting, the revoked one adds nothing.
test_rotation_with_threshold_two() {
	new_device dev
	local k
	for k in k1 k2 k3 k4; do "$TANDEM_IMAGE" keygen --out "$D/$k.key" --pub "$D/$k.pub"; done
	ship A k1 k2 k3
	sed -i "s#\"keyring\": \"[^\"]*\"#\"keyring\": \"$D/rootfs-A/keys\"#; s#\"boot_tries\": 3#\"boot_tries\": 3, \"signature_threshold\": 2#" "$CONF"
	boot_into A
	sign "$D/one.tnd" 1.1 k1
	snapshot
	expect_refusal 11 "signature" "$TANDEM" -c "$CONF" install --progress=none "$D/one.tnd"
	assert_untouched
	# k3 is replaced by k4: signed by k1 and k2 (trusted before and after).
	sign "$D/r2.tnd" 2.0 k1 k2 k4
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/r2.tnd"
	ship B k1 k2 k4
	boot_into B
	sign "$D/r3.tnd" 3.0 k2 k4
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/r3.tnd"
	ship A k1 k2 k4
	boot_into A
	# k3 alone with k1 is one valid signature now: refused.
	sign "$D/evil.tnd" 9.0 k1 k3
	snapshot
	expect_refusal 11 "signature" "$TANDEM" -c "$CONF" install --progress=none "$D/evil.tnd"
	assert_untouched
}

run_tests
