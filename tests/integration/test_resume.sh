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

# A checkpoint that lies about the chain (a tampered state directory): the
# next record fails authentication, nothing unauthenticated is written,
# the checkpoint is dropped, and the install after that starts over.
test_forged_checkpoint_refused() {
	setup_cut
	python3 - "$D/state/resume.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["next_chunk_sha256"] = "00" * 32
json.dump(c, open(sys.argv[1], "w"))
PY
	cp "$D/slotB.img" "$D/slotB.before"
	expect_refusal 12 "does not match the signed manifest" "$TANDEM" -c "$CONF" -q install --progress=none "$D/u.tnd"
	cmp -s "$D/slotB.img" "$D/slotB.before" || fail "bytes reached the slot after a forged checkpoint"
	[ ! -e "$D/state/resume.json" ] || fail "forged checkpoint kept"
	"$TANDEM" -c "$CONF" install --progress=none --json "$D/u.tnd" >"$D/out.json"
	[ "$(resumed_from "$D/out.json")" = 0 ] || fail "resumed after the forged checkpoint was dropped"
	img_in_slot || fail "slot B does not hold the image"
}

# Cut twice: the second run leaves a later checkpoint, the third finishes.
test_cut_twice() {
	setup_cut
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
