#!/bin/bash
# SPDX-License-Identifier: MIT
# An install cut short (the process killed, as by a crash or a reboot)
# continues from its last durable checkpoint (docs/install.md, "Resume"):
# a new process, with nothing but the state directory and the slot to go
# on, reads and writes only the rest, and the slot still ends up holding
# exactly the signed image. A checkpoint that does not match the bundle,
# the slot or the chain is never followed blindly.
. "$(dirname "$0")/lib.sh"

IMG_MIB=48

# cut_install [AFTER [PERCENT]]: streams PERCENT (default 70) % of $D/u.tnd
# into `tandem install -`, waits for a checkpoint past image offset AFTER
# (default 0), and kills the process with SIGKILL. Prints the checkpoint's
# image offset.
cut_install() {
	python3 - "$TANDEM" "$CONF" "$D/u.tnd" "$D/state/resume.json" "${1:-0}" "${2:-70}" <<'PY'
import json, os, subprocess, sys, time
tandem, conf, bundle, ck = sys.argv[1:5]
after, percent = int(sys.argv[5]), int(sys.argv[6])
data = open(bundle, "rb").read()
p = subprocess.Popen([tandem, "-c", conf, "-q", "install", "--progress=none", "-"],
                     stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdin.write(data[: len(data) * percent // 100])
p.stdin.flush()
deadline = time.time() + 60
off = 0
while time.time() < deadline and p.poll() is None:
    try:
        off = json.load(open(ck))["image_offset"]
    except (OSError, ValueError):
        pass
    if off > after:
        break
    time.sleep(0.02)
p.kill()
p.wait()
# A later checkpoint may have landed between the read and the kill.
if off > after:
    off = json.load(open(ck))["image_offset"]
if off <= after:
    sys.exit("no checkpoint past %d was written" % after)
print(off)
PY
}

setup_cut() {
	new_device dev 64M
	# Incompressible, so that 70% of the bundle is 70% of the image: past
	# the first 16 MiB read-back window (CONFIG_READBACK_WINDOW_MIB).
	head -c $((IMG_MIB * 1048576)) /dev/urandom >"$D/v1.img"
	build_bundle "$D/u.tnd" "$D/v1.img" --chunk-size 256K
	CUT=$(cut_install) || fail "could not cut the install" || return 1
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["slots"]["B"]["state"]=="installing", s' \
		"$D/state/state.json" || fail "slot B not recorded as installing after the cut"
}

resumed_from() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resumed_from"])' "$1"; }

img_in_slot() { cmp -s -n "$(stat -c %s "$D/v1.img")" "$D/v1.img" "$D/slotB.img"; }

test_resume_after_kill() {
	setup_cut
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = "$CUT" ] || fail "resumed from $(resumed_from "$D/out.json"), checkpoint was at $CUT"
	[ "$CUT" -ge $((16 * 1048576)) ] || fail "checkpoint at $CUT: before the first read-back window"
	grep -q "resuming at chunk" "$D/err" || fail "no resume line: $(cat "$D/err")"
	img_in_slot || fail "slot B does not hold the image"
	[ ! -e "$D/state/resume.json" ] || fail "checkpoint left behind"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "B A" ] || fail "not activated"
}

# Through a pipe, the part before the checkpoint is read and dropped, and
# only the rest is written.
test_resume_from_stdin_with_progress() {
	setup_cut
	"$TANDEM" -c "$CONF" install --progress=json - <"$D/u.tnd" >"$D/events"
	python3 - "$D/events" "$CUT" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
done = ev[-1]
assert done["event"] == "done" and done["resumed_from"] == int(sys.argv[2]), done
first = [e for e in ev if e["event"] == "progress"][0]
assert first["written"] >= int(sys.argv[2]), first
PY
	img_in_slot || fail "slot B does not hold the image"
}

test_no_resume_starts_over() {
	setup_cut
	"$TANDEM" -c "$CONF" install --progress=none --json --no-resume "$D/u.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed despite --no-resume"
	grep -q "not resuming: --no-resume" "$D/err" || fail "$(cat "$D/err")"
	img_in_slot || fail "slot B does not hold the image"
}

# The slot changed under the checkpoint (lost writes, decay, another tool):
# its CRC no longer matches, and the install starts over.
test_damaged_prefix_starts_over() {
	setup_cut
	printf 'X' | dd of="$D/slotB.img" bs=1 seek=$((CUT / 2)) conv=notrunc 2>/dev/null
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed over a damaged prefix"
	grep -q "no longer holds what the checkpoint describes" "$D/err" || fail "$(cat "$D/err")"
	img_in_slot || fail "slot B does not hold the image"
}

# Another bundle: the checkpoint is not this install's.
test_other_bundle_starts_over() {
	setup_cut
	make_image "$D/v2.img" 4
	build_bundle "$D/u2.tnd" "$D/v2.img" --version 2.0
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u2.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed another bundle's checkpoint"
	grep -q "another bundle" "$D/err" || fail "$(cat "$D/err")"
	cmp -s -n "$(stat -c %s "$D/v2.img")" "$D/v2.img" "$D/slotB.img" || fail "slot B does not hold v2"
}

# The attack of issue 19 (hole 2), with the bundle file and state_dir in
# the attacker's hands (both on the data partition): a genuine bundle's
# header, manifest, signatures and records 0-15, then a self-consistent
# chain of the attacker's records, and a checkpoint naming the attacker's
# record 16 (its chain hash too, for the checkpoint format that trusted
# it). Nothing in state_dir is a root of trust: record 16 must hash to
# what the signed manifest names for that resume point, so it is refused
# before a byte of the attacker's reaches the slot.
test_forged_checkpoint_attack_refused() {
	setup_cut
	python3 - "$D/u.tnd" "$D/evil.tnd" "$D/state/resume.json" "$D/v1.img" <<'PY'
import hashlib, json, struct, sys, zlib
src, dst, ck, img = sys.argv[1:5]
b = open(src, "rb").read()
mlen, slen = struct.unpack(">II", b[16:24])
pos = 32 + mlen + slen
recs = []                                     # (offset, header, data)
while pos < len(b):
    h = b[pos:pos + 64]
    stored = struct.unpack(">I", h[12:16])[0]
    recs.append((pos, h, b[pos + 64:pos + 64 + stored]))
    pos += 64 + stored
K = 16
out = bytearray(b[:recs[K][0]])               # header .. genuine records 0-15
evil, nxt = [], bytes(32)
for i in range(len(recs) - 1, K - 1, -1):     # back to front: each names the next
    h = bytearray(recs[i][1])
    n = struct.unpack(">I", h[24:28])[0]
    data = (b"ATTACKER" * (n // 8 + 1))[:n]
    h[8] = 0                                  # stored
    h[9:12] = bytes(3)
    h[12:16] = struct.pack(">I", n)
    h[28:32] = struct.pack(">I", zlib.crc32(data))
    h[32:64] = nxt
    nxt = hashlib.sha256(bytes(h) + data).digest()
    evil.append(bytes(h) + data)
for r in reversed(evil):
    out += r
assert len(out) == len(b), "the attacker's payload must have the genuine size"
open(dst, "wb").write(out)
c = json.load(open(ck))
c["chunk"] = K
c["payload_read"] = recs[K][0] - (32 + mlen + slen)
c["image_offset"] = K * struct.unpack(">I", recs[0][1][24:28])[0]
c["prefix_crc"] = zlib.crc32(open(img, "rb").read(c["image_offset"]))
c["next_chunk_sha256"] = nxt.hex()            # what a checkpoint once carried
json.dump(c, open(ck, "w"))
PY
	cp "$D/slotB.img" "$D/slotB.before"
	expect_refusal 12 "does not match the signed manifest" \
		"$TANDEM" -c "$CONF" -q install --progress=none "$D/evil.tnd"
	! grep -qa ATTACKER "$D/slotB.img" || fail "the attacker's bytes reached slot B"
	cmp -s "$D/slotB.img" "$D/slotB.before" || fail "slot B changed: nothing may be written"
	[ ! -e "$D/state/resume.json" ] || fail "forged checkpoint kept"
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); b=s["slots"]["B"]
assert b["state"]=="installing" and "sha256" not in b, b
assert s["last_install"]["error_code"]=="E_INTEGRITY", s' "$D/state/state.json" ||
		fail "state.json says what is not true"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_ORDER)" = "A B" ] || fail "boot order changed"
	[ "$(fw_printenv -c "$D/fw_env.config" -n BOOT_B_LEFT)" = 0 ] || fail "slot B bootable"
	# the genuine bundle installs whole afterwards
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json"
	img_in_slot || fail "slot B does not hold the image"
}

# A checkpoint that names a record the manifest does not sign as a resume
# point is not followed: the install starts over (and succeeds).
test_checkpoint_off_a_resume_point_starts_over() {
	setup_cut
	python3 - "$D/state/resume.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chunk"] += 1
json.dump(c, open(sys.argv[1], "w"))
PY
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "followed a checkpoint off a resume point"
	grep -q "names no signed resume point" "$D/err" || fail "$(cat "$D/err")"
	img_in_slot || fail "slot B does not hold the image"
}

# Offsets that lie (a tampered state directory): the record read there is
# not the one the signed resume point names, so it is refused before
# anything is written, the checkpoint is dropped, and the next install
# starts over.
test_checkpoint_lying_offsets_refused() {
	setup_cut
	python3 - "$D/state/resume.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["payload_read"] += 64
json.dump(c, open(sys.argv[1], "w"))
PY
	cp "$D/slotB.img" "$D/slotB.before"
	# which record: the resume point the cut's checkpoint names, which
	# depends on how far the killed install got (setup_cut)
	expect_refusal 12 "chunk [0-9]* of 192" "$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd"
	cmp -s "$D/slotB.img" "$D/slotB.before" || fail "bytes reached the slot after a forged checkpoint"
	[ ! -e "$D/state/resume.json" ] || fail "forged checkpoint kept"
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed after the forged checkpoint was dropped"
	img_in_slot || fail "slot B does not hold the image"
}

# Cut twice: the second run leaves a later checkpoint, the third finishes.
test_cut_twice() {
	new_device dev 64M
	head -c $((IMG_MIB * 1048576)) /dev/urandom >"$D/v1.img"
	build_bundle "$D/u.tnd" "$D/v1.img" --chunk-size 256K
	# 40% of the bundle holds only the first 16 MiB window: the first
	# checkpoint cannot run ahead of what the second cut must pass
	CUT=$(cut_install 0 40) || fail "could not cut the install" || return 1
	local first=$CUT
	CUT=$(cut_install "$first" 97) || fail "second cut failed" || return 1
	[ "$CUT" -gt "$first" ] || fail "second checkpoint $CUT not past the first $first"
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json"
	[ "$(resumed_from "$D/out.json")" = "$CUT" ] || fail "did not resume from the second checkpoint"
	img_in_slot || fail "slot B does not hold the image"
}

# A delta cut after its first durable window: the decoder state cannot be
# saved, so the rerun reads the (small) op stream again from the start and
# skips to the checkpoint, without rewriting the prefix it finds intact;
# the slot then hashes to the signed image.
setup_delta_cut() {
	new_device dev 64M
	python3 - "$D" "$IMG_MIB" <<'PY'
import os, random, sys
d, mib = sys.argv[1], int(sys.argv[2]); r = random.Random(5)
base = bytearray(r.randbytes(mib << 20))
t = bytearray(base)
for i in range(0, len(t), 1 << 20):          # new data in every MiB: the
    t[i + 4096:i + 4096 + 20000] = r.randbytes(20000)  # op stream follows the image
open(os.path.join(d, "base.img"), "wb").write(base)
open(os.path.join(d, "v1.img"), "wb").write(t)
PY
	dd if="$D/base.img" of="$D/slotA.img" conv=notrunc 2>/dev/null
	build_bundle "$D/u.tnd" "$D/v1.img" --base "$D/base.img" --version 2.0
	CUT=$(cut_install) || fail "could not cut the delta install" || return 1
}

test_delta_resume_after_kill() {
	setup_delta_cut
	[ "$CUT" -ge $((16 * 1048576)) ] || fail "checkpoint at $CUT: before the first read-back window"
	cp "$D/slotB.img" "$D/slotB.cut"
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json" 2>"$D/err" ||
		fail "$(cat "$D/err")"
	[ "$(resumed_from "$D/out.json")" = "$CUT" ] || fail "resumed from $(resumed_from "$D/out.json"), checkpoint was at $CUT"
	grep -q "resuming the delta at" "$D/err" || fail "no resume line: $(cat "$D/err")"
	img_in_slot || fail "slot B does not hold the image"
	[ ! -e "$D/state/resume.json" ] || fail "checkpoint left behind"
}

# The rerun skips what the checkpoint covers: a byte changed there after
# the cut is caught when the slot is checked against the checkpoint, and
# the install starts over rather than keep it.
test_delta_resume_damaged_prefix_starts_over() {
	setup_delta_cut
	printf 'X' | dd of="$D/slotB.img" bs=1 seek=$((CUT / 2)) conv=notrunc 2>/dev/null
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json" 2>"$D/err"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed over a damaged prefix"
	img_in_slot || fail "slot B does not hold the image"
}

run_tests
