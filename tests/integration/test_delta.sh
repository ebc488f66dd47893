#!/bin/bash
# SPDX-License-Identifier: MIT
# Delta bundles end to end on a simulated device: built by tandem-image
# against the image in slot A, installed into slot B from a file and from
# standard input, refused on a wrong base before anything is written, and
# a corrupted delta refused before its bad bytes reach the slot.
. "$(dirname "$0")/lib.sh"

# pair DIR: base.img and target.img with the edits a release makes:
# changed bytes, an insertion that shifts everything after it, moved
# blocks, a grown tail.
pair() {
	python3 - "$1" <<'PY'
import os, random, sys
d = sys.argv[1]; r = random.Random(7)
base = bytearray(r.randbytes(3 << 20)) + bytes(1 << 20) + bytearray(b"config line\n" * 40000)
t = bytearray(base)
for i in range(0, len(t), 65536): t[i + 100:i + 104] = b"EDIT"
t[500000:500000] = r.randbytes(5000)                 # insertion
t[2 << 20:(2 << 20) + 65536] = base[100000:100000 + 65536]  # moved block
t += r.randbytes(70000)                               # grown
open(os.path.join(d, "base.img"), "wb").write(base)
open(os.path.join(d, "target.img"), "wb").write(t)
PY
}

setup() {
	new_device dev 16M
	pair "$D"
	dd if="$D/base.img" of="$D/slotA.img" conv=notrunc 2>/dev/null
	build_bundle "$D/d.tnd" "$D/target.img" --base "$D/base.img" --version 2.0
	build_bundle "$D/full.tnd" "$D/target.img" --version 2.0
}

same_prefix() { cmp -s -n "$(stat -c %s "$1")" "$1" "$2"; }

test_delta_round_trip() {
	setup
	"$TANDEM_IMAGE" inspect "$D/d.tnd" | grep -q "payload:.*delta"
	[ "$(stat -c %s "$D/d.tnd")" -lt $(($(stat -c %s "$D/full.tnd") / 5)) ] ||
		fail "delta not much smaller than the full bundle"
	"$TANDEM_IMAGE" verify --keyring "$D/keys" --base "$D/base.img" "$D/d.tnd" | grep -q OK
	snapshot
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/d.tnd"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "slot B does not hold the target"
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "the base slot changed"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "B A" ]
}

test_delta_from_stdin() {
	setup
	"$TANDEM" -c "$CONF" -q install --progress=none - <"$D/d.tnd"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "slot B does not hold the target"
}

# refused_for_base BUNDLE: installing BUNDLE is refused as made for another
# base, naming both hashes, before anything changes (slot B, filled with
# 'y' first, included).
refused_for_base() {
	(set +o pipefail; yes | tr -d '\n' | head -c 16777216 >"$D/slotB.img")
	snapshot
	local before
	before=$(sha256sum <"$D/slotB.img")
	expect_refusal 13 "delta is for a base with SHA-256 [0-9a-f]\{64\}, but booted slot A holds [0-9a-f]\{64\}" \
		"$TANDEM" -c "$CONF" install --progress=none "$1"
	assert_untouched
	[ "$(sha256sum <"$D/slotB.img")" = "$before" ] || fail "slot B was written"
}

test_delta_wrong_base_refused_before_writing() {
	setup
	printf 'X' | dd of="$D/slotA.img" bs=1 seek=12345 conv=notrunc 2>/dev/null
	refused_for_base "$D/d.tnd"
}

# setup_recorded: slot A holds the base as Tandem installed it (its record
# names the image), as on a device updated before. Checked deltas (formats
# 3 to 6; tandem-image makes 5) then trust the record, and their signed
# checks, instead of hashing slot A.
setup_recorded() {
	setup
	build_bundle "$D/base.tnd" "$D/base.img" --version 1.0
	# from slot B, as the release before; then "reboot" into A
	sed -i 's/tandem.slot=A/tandem.slot=B/' "$D/cmdline"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/base.tnd"
	sed -i 's/tandem.slot=B/tandem.slot=A/' "$D/cmdline"
	same_prefix "$D/base.img" "$D/slotA.img" || fail "slot A does not hold the base"
}

test_delta_recorded_base_not_hashed() {
	setup_recorded
	"$TANDEM" -c "$CONF" -v install --progress=none "$D/d.tnd" 2>"$D/err" ||
		fail "$(cat "$D/err")"
	grep -q "recorded with the delta's base image" "$D/err" || fail "the base was hashed: $(cat "$D/err")"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "slot B does not hold the target"
}

# The record names another image: refused before anything is read or written.
test_delta_recorded_other_base_refused() {
	setup_recorded
	printf 'other' >>"$D/base.img"
	build_bundle "$D/other.tnd" "$D/target.img" --base "$D/base.img" --version 2.0
	refused_for_base "$D/other.tnd"
}

# Slot A changed behind its record (a read-write mount, decay): the first
# span made from the changed bytes fails its signed check, and nothing of
# it reaches slot B: what is there is a prefix of the target, the rest as
# it was; the target is not activated.
test_delta_changed_base_caught_by_checks() {
	setup_recorded
	printf 'X' | dd of="$D/slotA.img" bs=1 seek=2000000 conv=notrunc 2>/dev/null
	(set +o pipefail; yes | tr -d '\n' | head -c 16777216 >"$D/slotB.img")
	snapshot
	expect_refusal 13 "come out with SHA-256 [0-9a-f]\{64\}, the signed delta says [0-9a-f]\{64\}: the base is not the image" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/d.tnd"
	assert_active_untouched
	python3 - "$D/target.img" "$D/slotB.img" <<'PY'
import sys
t = open(sys.argv[1], "rb").read(); s = open(sys.argv[2], "rb").read()
n = 0
while n < len(t) and s[n] == t[n]:
    n += 1
assert n < 2000000, "slot B holds target bytes past the change: %d" % n
assert all(b == ord("y") for b in s[n:len(t)]), "bytes other than the checked target prefix reached slot B"
PY
}

# Hole 3 of issue 19: a CRC-32 is not an authenticator. An attacker who
# can write slot A changes bytes inside a span the delta copies unchanged
# and fixes 4 more so that the span's CRC-32 (what op-stream versions 3
# and 4 check) stays the same. For a delta of those formats (published
# before format 5, or made with --delta-format for older fleets) the
# record of slot A is no shortcut: slot A is hashed whole first, and the
# delta refused before a byte is written. Format 5 trusts the record and
# refuses the span before it is written (test_delta_crc_forged_base_refused,
# below).
test_delta_crc_preserving_base_change_refused() {
	setup_recorded
	# (a tandem-image without --delta-format made format 3 by default)
	build_bundle "$D/d.tnd" "$D/target.img" --base "$D/base.img" --version 2.0 \
		--delta-format 3 2>/dev/null ||
		build_bundle "$D/d.tnd" "$D/target.img" --base "$D/base.img" --version 2.0
	"$TANDEM_IMAGE" inspect "$D/d.tnd" | grep -q "delta format: *3" || fail "not a format 3 delta"
	python3 - "$D/slotA.img" "$D/target.img" <<'PY'
import sys, zlib
slot, target = sys.argv[1:3]
b = bytearray(open(slot, "rb").read())
t = open(target, "rb").read()
span = 1 << 16
# a span of the target whose bytes (past the release's edit at +100) are
# the base's own, at some offset o: the delta makes them from slot A
for start in range(3 * span, len(t) - span, span):
    o = bytes(b).find(t[start + 200:start + 4296])
    if o > 0 and bytes(b[o:o + span - 200]) == t[start + 200:start + span]:
        o -= 200
        break
else:
    sys.exit("no span copied from the base")
T = bytearray(t[start:start + span])
want = zlib.crc32(bytes(T))
T[1000:1008] = b"ATTACKER"
# 4 bytes at +2000 that give the span its CRC-32 again: the CRC is affine
# in the input bits, a 32x32 system over GF(2)
T[2000:2004] = bytes(4)
crc0 = zlib.crc32(bytes(T))
cols = []
for bit in range(32):
    x = bytearray(T)
    x[2000 + bit // 8] ^= 1 << (bit % 8)
    cols.append(zlib.crc32(bytes(x)) ^ crc0)
basis = []
for j in range(32):
    v, m = cols[j], 1 << j
    for bv, bm in basis:
        if v ^ bv < v:
            v, m = v ^ bv, m ^ bm
    if v:
        basis.append((v, m))
        basis.sort(reverse=True)
need, sol = want ^ crc0, 0
for bv, bm in basis:
    if need ^ bv < need:
        need, sol = need ^ bv, sol ^ bm
assert need == 0, "no solution"
for bit in range(32):
    if sol >> bit & 1:
        T[2000 + bit // 8] ^= 1 << (bit % 8)
assert zlib.crc32(bytes(T)) == want and bytes(T) != t[start:start + span]
# the same change in the base, for COPY (equal) and ADD (base + diff) alike
for i in range(1000, 2004):
    b[o + i] = (b[o + i] + T[i] - t[start + i]) % 256
open(slot, "wb").write(b)
PY
	refused_for_base "$D/d.tnd"
}

# An attacker who can write slot A changes 16 bytes of a span the delta
# copies and 4 more that keep the span's CRC-32 (a CRC is affine: the 4
# bytes solve 32 linear equations). The format 3 CRC-32 checks pass (the
# host decode then fails only on the image hash, which a device trusting
# its record and its checks never computes); format 5's SHA-256 refuses
# the span before a byte of it is written.
test_delta_crc_forged_base_refused() {
	setup_recorded
	build_bundle "$D/d3.tnd" "$D/target.img" --base "$D/base.img" --version 2.0 --delta-format 3
	"$TANDEM_IMAGE" inspect "$D/d3.tnd" | grep -q "^delta format: *3 " || fail "not format 3"
	# target span 20 (of 64 KiB) comes from 5000 bytes earlier in the base
	python3 - "$D/target.img" "$D/slotA.img" 20 5000 <<'PY'
import sys, zlib
t = open(sys.argv[1], "rb").read()
k, shift, span = int(sys.argv[3]), int(sys.argv[4]), 65536
s0 = k * span
T = bytearray(t[s0:s0 + span])
want = zlib.crc32(T)
T[20000:20016] = b"attacker's bytes"
now = zlib.crc32(T)
cols = []
for j in range(32):
    T[30000 + j // 8] ^= 1 << (j % 8)
    cols.append(zlib.crc32(T) ^ now)
    T[30000 + j // 8] ^= 1 << (j % 8)
# Gauss-Jordan over GF(2): row i is bit i of the CRC, 32 unknowns + rhs
rows = [sum(((cols[j] >> i) & 1) << j for j in range(32)) | (((now ^ want) >> i) & 1) << 32
        for i in range(32)]
for j in range(32):
    p = next(i for i in range(j, 32) if rows[i] >> j & 1)
    rows[j], rows[p] = rows[p], rows[j]
    rows = [r ^ rows[j] if i != j and r >> j & 1 else r for i, r in enumerate(rows)]
x = sum((rows[j] >> 32 & 1) << j for j in range(32))
for j in range(32):
    if x >> j & 1:
        T[30000 + j // 8] ^= 1 << (j % 8)
assert zlib.crc32(T) == want and T != t[s0:s0 + span]
with open(sys.argv[2], "r+b") as f:
    for off, n in ((20000, 16), (30000, 4)):
        f.seek(s0 - shift + off)
        f.write(T[off:off + n])
PY
	cp "$D/slotA.img" "$D/forged.img"
	expect_refusal 10 "image SHA-256 differs from the manifest" \
		"$TANDEM_IMAGE" verify --keyring "$D/keys" --base "$D/forged.img" "$D/d3.tnd"
	(set +o pipefail; yes | tr -d '\n' | head -c 16777216 >"$D/slotB.img")
	snapshot
	expect_refusal 13 "target bytes 1310720 to 1572864 come out with SHA-256 [0-9a-f]\{64\}, the signed delta says" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/d.tnd"
	assert_active_untouched
	cmp -s -n 1310720 "$D/target.img" "$D/slotB.img" || fail "slot B lacks the target's first spans"
	! cmp -s -i 1310720 -n 1000 "$D/target.img" "$D/slotB.img" || fail "the forged span reached slot B"
	# format 3's CRC-32 checks would pass: the device does not take the
	# record's word for it, hashes slot A whole first, and writes nothing
	refused_for_base "$D/d3.tnd"
}

test_delta_corrupted_refused() {
	setup
	local size
	size=$(stat -c %s "$D/d.tnd")
	cp "$D/d.tnd" "$D/bad.tnd"
	printf '\x5a' | dd of="$D/bad.tnd" bs=1 seek=$((size - 10)) conv=notrunc 2>/dev/null
	snapshot
	expect_refusal 12 "does not match the signed manifest" \
		"$TANDEM" -c "$CONF" install --progress=none "$D/bad.tnd"
	assert_active_untouched "$D/target.img"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/d.tnd"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "retry did not install"
}

test_delta_identical_and_tiny() {
	new_device dev 1M
	head -c 100000 /dev/urandom >"$D/base.img"
	dd if="$D/base.img" of="$D/slotA.img" conv=notrunc 2>/dev/null
	build_bundle "$D/same.tnd" "$D/base.img" --base "$D/base.img"
	[ "$(stat -c %s "$D/same.tnd")" -lt 4096 ] || fail "identical images make a large delta"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/same.tnd"
	same_prefix "$D/base.img" "$D/slotB.img"
	printf 'a' >"$D/one.img"
	build_bundle "$D/one.tnd" "$D/one.img" --base "$D/base.img"
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/one.tnd"
	same_prefix "$D/one.img" "$D/slotB.img"
}

test_delta_squashfs_xz_blocks_rebuilt() {
	command -v mksquashfs >/dev/null || fail "mksquashfs (squashfs-tools) is missing"
	new_device dev 8M
	sqpair "$D"
	dd if="$D/base.img" of="$D/slotA.img" conv=notrunc 2>/dev/null
	build_bundle "$D/v2.tnd" "$D/target.img" --base "$D/base.img" --version 2.0
	build_bundle "$D/v1.tnd" "$D/target.img" --base "$D/base.img" --version 2.0 --no-delta-xz
	"$TANDEM_IMAGE" inspect "$D/v2.tnd" | grep -q "^delta format: *6 " ||
		fail "squashfs xz pair did not make a format 6 (xz, SHA-256 checked) delta"
	"$TANDEM_IMAGE" inspect "$D/v1.tnd" | grep -q "^delta format: *5 " ||
		fail "--no-delta-xz did not make a format 5 (SHA-256 checked) delta"
	# Edited xz blocks differ throughout when compressed; diffing their
	# contents must pay off several times over.
	[ "$(stat -c %s "$D/v2.tnd")" -lt $(($(stat -c %s "$D/v1.tnd") / 3)) ] ||
		fail "format 2 delta ($(stat -c %s "$D/v2.tnd") B) not much smaller than format 1 ($(stat -c %s "$D/v1.tnd") B)"
	snapshot
	"$TANDEM" -c "$CONF" -q install --progress=none "$D/v2.tnd"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "format 2: slot B does not hold the target"
	[ "$(sha256sum <"$D/slotA.img")" = "$SNAP_A" ] || fail "the base slot changed"
	dd if=/dev/zero of="$D/slotB.img" bs=1M count=8 conv=notrunc 2>/dev/null
	"$TANDEM" -c "$CONF" -q install --progress=none --no-activate - <"$D/v1.tnd"
	same_prefix "$D/target.img" "$D/slotB.img" || fail "format 1: slot B does not hold the target"
}

run_tests
