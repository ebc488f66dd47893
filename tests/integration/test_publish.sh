#!/bin/bash
# SPDX-License-Identifier: MIT
# tandem-image publish: a channel directory made from three releases of
# small synthetic images, read back with inspect/verify as a device would;
# deltas made, verified and left out when useless; the sequence; re-signing
# before expiry; refusals that leave the published index untouched; a cut
# publish finished by running it again.
. "$(dirname "$0")/lib.sh"

TI() { "$TANDEM_IMAGE" -q "$@"; }

# images DIR: v1..v3 are successive releases (a few edits each), vx is
# unrelated random data of the same size (a "major upgrade").
images() {
	python3 - "$1" <<'PY'
import os, random, sys
d = sys.argv[1]; r = random.Random(11)
v1 = bytearray(r.randbytes(1 << 20)) + bytes(512 << 10) + b"release config line\n" * 30000
v2 = bytearray(v1); v2[4096:4200] = r.randbytes(104); v2[700000:700000] = b"inserted" * 100
v3 = bytearray(v2); v3[200000:200064] = r.randbytes(64); v3 += r.randbytes(3000)
for name, data in (("v1", v1), ("v2", v2), ("v3", v3), ("vx", r.randbytes(len(v1)))):
    open(os.path.join(d, name + ".img"), "wb").write(data)
PY
}

setup() {
	D=$WORK/pub
	rm -rf "$D"
	mkdir -p "$D"
	TI keygen --out "$D/key.pem" --pub "$D/pub.pem"
	TI keygen --out "$D/other.pem" --pub "$D/other.pub.pem"
	images "$D"
	CH=$D/channel
}

# bundle VERSION IMAGE [KEY]: a full bundle signed with KEY (default key.pem).
bundle() {
	TI build --key "$D/${3:-key.pem}" --image "$D/$2.img" --version "$1" --compatible sim \
		--chunk-size 64K --out "$D/$1.tnd"
}

# field EXPR: a Python expression over the index as `tandem-image inspect --json` shows it.
field() {
	TI inspect --json "$CH/index.json" >"$WORK/index.out" || return 1
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$WORK/index.out" "$1"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

test_publish_three_releases() {
	setup
	bundle 1.0 v1 && bundle 1.1 v2 && bundle 1.2 v3 || fail "cannot build the bundles"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd"
	[ "$(field 'j["index"]["sequence"]')" = 1 ] || fail "first sequence is not 1"
	[ "$(field 'len(j["index"]["releases"][0]["deltas"])')" = 0 ] || fail "deltas with no earlier release"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.1.tnd"
	[ "$(field 'j["index"]["sequence"]')" = 2 ] || fail "sequence did not grow"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.2.tnd"
	[ "$(field 'j["index"]["sequence"]')" = 3 ] || fail "sequence did not grow"
	"$TANDEM_IMAGE" verify --pub "$D/pub.pem" "$CH/index.json" | grep -q "OK (1 valid signature(s), sequence 3" ||
		fail "index does not verify"

	local rel='j["index"]["releases"][0]'
	[ "$(field "$rel[\"version\"]")" = 1.2 ] || fail "latest release is not 1.2"
	[ "$(field "$rel[\"image_sha256\"]")" = "$(sha "$D/v3.img")" ] || fail "image hash"
	[ "$(field "$rel[\"full\"][\"url\"]")" = sim/1.2.tnd ] || fail "full URL"
	cmp -s "$D/1.2.tnd" "$CH/sim/1.2.tnd" || fail "full bundle is not the one given"
	[ "$(field "$rel[\"full\"][\"sha256\"]")" = "$(sha "$CH/sim/1.2.tnd")" ] || fail "full sha256"
	[ "$(field "$rel[\"full\"][\"size\"]")" = "$(stat -c %s "$CH/sim/1.2.tnd")" ] || fail "full size"
	[ "$(field "$rel.get(\"rollout_percent\", 100)")" = 100 ] || fail "default rollout"
	# Two deltas, newest base first, each a file that matches the index and
	# rebuilds the new image from its base.
	[ "$(field "len($rel[\"deltas\"])")" = 2 ] || fail "expected two deltas"
	local i base img url
	for i in 0 1; do
		base=$(field "$rel[\"deltas\"][$i][\"base_version\"]")
		img=$([ "$base" = 1.1 ] && echo v2 || echo v1)
		[ "$base" = "$([ $i = 0 ] && echo 1.1 || echo 1.0)" ] || fail "delta $i base $base"
		url=$(field "$rel[\"deltas\"][$i][\"url\"]")
		[ "$url" = "sim/1.2-from-$base.tnd" ] || fail "delta URL $url"
		[ "$(field "$rel[\"deltas\"][$i][\"base_sha256\"]")" = "$(sha "$D/$img.img")" ] ||
			fail "delta $i base hash"
		[ "$(field "$rel[\"deltas\"][$i][\"sha256\"]")" = "$(sha "$CH/$url")" ] || fail "delta sha256"
		[ "$(field "$rel[\"deltas\"][$i][\"size\"]")" = "$(stat -c %s "$CH/$url")" ] || fail "delta size"
		[ "$(stat -c %s "$CH/$url")" -lt $(($(stat -c %s "$CH/sim/1.2.tnd") / 10)) ] ||
			fail "delta $url is not small"
		"$TANDEM_IMAGE" verify --pub "$D/pub.pem" --base "$D/$img.img" "$CH/$url" | grep -q "OK" ||
			fail "delta $url does not verify"
		"$TANDEM_IMAGE" verify --pub "$D/pub.pem" --base "$D/$img.img" --json "$CH/$url" |
			grep -q '"image_checked":true' || fail "delta image not rebuilt"
	done
	# --deltas 1 keeps only the newest base.
	bundle 1.3 v1
	TI publish --channel "$CH" --key "$D/key.pem" --deltas 1 "$D/1.3.tnd"
	[ "$(field "len($rel[\"deltas\"])")" = 1 ] || fail "--deltas 1 made more"
	[ ! -e "$CH/.publish-tmp" ] || fail "scratch directory left behind"
}

test_publish_useless_delta_left_out() {
	setup
	bundle 1.0 v1 && bundle 2.0 vx || fail "cannot build the bundles"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd"
	TI publish --channel "$CH" --key "$D/key.pem" --json "$D/2.0.tnd" >"$WORK/pub.json"
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); d=j["bundles"][0]["deltas"]; assert len(d)==1 and d[0]["kept"] is False, j' \
		"$WORK/pub.json" || fail "publish did not report the delta left out"
	[ "$(field 'len(j["index"]["releases"][0]["deltas"])')" = 0 ] || fail "useless delta listed"
	[ ! -e "$CH/sim/2.0-from-1.0.tnd" ] || fail "useless delta file kept"
	# A stricter ratio drops even a good delta; a looser one keeps it.
	bundle 2.1 vx
	cp "$D/vx.img" "$D/vy.img" && printf 'edit' | dd of="$D/vy.img" bs=1 seek=1000 conv=notrunc 2>/dev/null ||
		fail "cannot make vy.img"
	TI build --key "$D/key.pem" --image "$D/vy.img" --version 2.1 --compatible sim --chunk-size 64K --out "$D/2.1.tnd"
	TI publish --channel "$CH" --key "$D/key.pem" --delta-max-ratio 0.0001 "$D/2.1.tnd"
	[ "$(field 'len(j["index"]["releases"][0]["deltas"])')" = 0 ] || fail "ratio not applied"
}

# sq_setup: setup, plus the xz squashfs pair of sqpair as releases 1.0
# and 1.1 of sim (sq1.img, sq2.img; 1.0.tnd, 1.1.tnd).
sq_setup() {
	command -v mksquashfs >/dev/null || fail "mksquashfs (squashfs-tools) is missing"
	setup
	sqpair "$D"
	cp "$D/base.img" "$D/sq1.img" && cp "$D/target.img" "$D/sq2.img" || fail "cannot copy the squashfs pair"
	bundle 1.0 sq1 && bundle 1.1 sq2 || fail "cannot build the squashfs bundles"
}

# A squashfs root compressed with xz: publish's deltas rebuild the changed
# xz streams on the device (format 6), unless --no-delta-xz (format 5,
# what a device built without CONFIG_DELTA_XZ reads). Both rebuild v1.1.
test_publish_squashfs_no_delta_xz() {
	sq_setup
	local ch fmt flag
	for flag in "" --no-delta-xz; do
		ch=$D/channel$flag
		TI publish --channel "$ch" --key "$D/key.pem" "$D/1.0.tnd"
		TI publish --channel "$ch" --key "$D/key.pem" $flag "$D/1.1.tnd"
		fmt=$("$TANDEM_IMAGE" inspect "$ch/sim/1.1-from-1.0.tnd" | sed -n 's/^delta format: *\([0-9]*\).*/\1/p')
		[ "$fmt" = "$([ -n "$flag" ] && echo 5 || echo 6)" ] ||
			fail "publish $flag made a format $fmt delta"
		"$TANDEM_IMAGE" verify --pub "$D/pub.pem" --base "$D/sq1.img" \
			"$ch/sim/1.1-from-1.0.tnd" >/dev/null || fail "publish $flag: the delta does not verify"
	done
	[ "$(stat -c %s "$D/channel/sim/1.1-from-1.0.tnd")" -lt \
		"$(stat -c %s "$D/channel--no-delta-xz/sim/1.1-from-1.0.tnd")" ] ||
		fail "rebuilding xz streams did not make the delta smaller"
	# --delta-kinds plain is --no-delta-xz: the same delta, byte for byte
	ch=$D/channel-plain
	TI publish --channel "$ch" --key "$D/key.pem" "$D/1.0.tnd"
	TI publish --channel "$ch" --key "$D/key.pem" --delta-kinds plain "$D/1.1.tnd"
	cmp -s "$ch/sim/1.1-from-1.0.tnd" "$D/channel--no-delta-xz/sim/1.1-from-1.0.tnd" ||
		fail "--delta-kinds plain differs from --no-delta-xz"
	[ "$(CH=$ch field 'j["index"]["releases"][0]["deltas"][0].get("xz_rebuild", 0)')" = 0 ] ||
		fail "a one-kind channel records xz_rebuild"
	grep -q '"format":1,' "$ch/index.json" || fail "a one-kind channel is not index format 1"
}

# --delta-kinds both: each delta that rebuilds xz streams is also made
# without (in plain/), the index (format 2) records what each rebuilds, and
# both verify; an ext4-like image has nothing to rebuild and gets one.
test_publish_delta_kinds_both() {
	sq_setup
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd"
	TI publish --channel "$CH" --key "$D/key.pem" --delta-kinds both "$D/1.1.tnd"
	grep -q '"format":2,' "$CH/index.json" || fail "not index format 2"
	[ "$(field 'len(j["index"]["releases"][0]["deltas"])')" = 2 ] || fail "not two deltas"
	[ "$(field '[d["url"] for d in j["index"]["releases"][0]["deltas"]]')" = \
		"['sim/1.1-from-1.0.tnd', 'sim/plain/1.1-from-1.0.tnd']" ] || fail "urls: $(cat "$WORK/index.out")"
	[ "$(field 'j["index"]["releases"][0]["deltas"][0]["xz_rebuild"] > 0')" = True ] ||
		fail "the rebuilding delta does not say so"
	[ "$(field '"xz_rebuild" in j["index"]["releases"][0]["deltas"][1]')" = False ] ||
		fail "the plain delta records xz_rebuild"
	local f fmt
	for f in 1.1-from-1.0 plain/1.1-from-1.0; do
		"$TANDEM_IMAGE" verify --pub "$D/pub.pem" --base "$D/sq1.img" "$CH/sim/$f.tnd" >/dev/null ||
			fail "$f does not verify"
	done
	fmt=$("$TANDEM_IMAGE" inspect "$CH/sim/plain/1.1-from-1.0.tnd" | sed -n 's/^delta format: *\([0-9]*\).*/\1/p')
	[ "$fmt" = 5 ] || fail "the plain delta is format $fmt"
	"$TANDEM_IMAGE" verify --pub "$D/pub.pem" "$CH/index.json" >/dev/null || fail "index does not verify"
	# nothing to rebuild: one delta, and the index stays format 1
	bundle 2.0 v1 && bundle 2.1 v2 || fail "cannot build the bundles"
	local ch2=$D/ch2
	TI publish --channel "$ch2" --key "$D/key.pem" "$D/2.0.tnd"
	TI publish --channel "$ch2" --key "$D/key.pem" --delta-kinds both "$D/2.1.tnd"
	[ ! -e "$ch2/sim/plain" ] || fail "a plain delta was made where nothing is rebuilt"
	grep -q '"format":1,' "$ch2/index.json" || fail "index format 2 without a second kind"
	# two deltas per base must fit the index's 32
	expect_refusal 2 "--deltas must be 0 to 16" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" --delta-kinds both --deltas 17
	expect_refusal 2 "--delta-kinds must be smallest, plain or both" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" --delta-kinds xz
}

test_publish_resign_refreshes_expiry() {
	setup
	bundle 1.0 v1
	TANDEM_NOW=2030-01-01T00:00:00Z TI publish --channel "$CH" --key "$D/key.pem" --expires-in 1d "$D/1.0.tnd"
	[ "$(field 'j["index"]["expires"]')" = 2030-01-02T00:00:00Z ] || fail "expiry not now + 1d"
	local before
	before=$(sha "$CH/index.json")
	TANDEM_NOW=2030-01-01T12:00:00Z "$TANDEM_IMAGE" verify --pub "$D/pub.pem" "$CH/index.json" >/dev/null ||
		fail "fresh index refused"
	expect_refusal 13 "expired at 2030-01-02T00:00:00Z" \
		env TANDEM_NOW=2030-01-03T00:00:00Z "$TANDEM_IMAGE" verify --pub "$D/pub.pem" "$CH/index.json"
	# No bundles: re-sign only. Fresh expiry, sequence + 1, same releases.
	TANDEM_NOW=2030-01-03T00:00:00Z TI publish --channel "$CH" --key "$D/key.pem" --expires-in 7d
	[ "$(sha "$CH/index.json")" != "$before" ] || fail "index not rewritten"
	[ "$(field 'j["index"]["sequence"]')" = 2 ] || fail "re-sign did not raise the sequence"
	[ "$(field 'j["index"]["expires"]')" = 2030-01-10T00:00:00Z ] || fail "expiry not refreshed"
	[ "$(field 'j["index"]["releases"][0]["version"]')" = 1.0 ] || fail "releases lost"
	TANDEM_NOW=2030-01-03T00:00:00Z "$TANDEM_IMAGE" verify --pub "$D/pub.pem" "$CH/index.json" >/dev/null ||
		fail "re-signed index refused"
	# Rollout changes go the same way, for one board.
	TI publish --channel "$CH" --key "$D/key.pem" --compatible sim --rollout 30
	[ "$(field 'j["index"]["releases"][0]["rollout_percent"]')" = 30 ] || fail "rollout not set"
	[ "$(field 'j["index"]["sequence"]')" = 3 ] || fail "sequence"
	expect_refusal 5 'no release for "other"' \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" --compatible other --rollout 50
	expect_refusal 5 "has no index.json yet" \
		"$TANDEM_IMAGE" publish --channel "$D/empty" --key "$D/key.pem"
}

# Servers make an index's ETag from its mtime in seconds and its size:
# three re-signs in one second (same size) must still give three mtimes,
# or polling devices would be told nothing changed.
test_publish_index_mtime_always_moves() {
	setup
	bundle 1.0 v1
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd"
	local m1 m2 m3
	m1=$(stat -c %Y "$CH/index.json")
	TI publish --channel "$CH" --key "$D/key.pem"
	m2=$(stat -c %Y "$CH/index.json")
	TI publish --channel "$CH" --key "$D/key.pem"
	m3=$(stat -c %Y "$CH/index.json")
	[ "$m2" -gt "$m1" ] && [ "$m3" -gt "$m2" ] || fail "index mtimes $m1 $m2 $m3 do not increase"
}

test_publish_refusals() {
	setup
	bundle 1.0 v1 && bundle 1.1 v2 || fail "cannot build the bundles"
	TI publish --channel "$CH" --key "$D/key.pem" --rollout 20 "$D/1.0.tnd"
	[ "$(field 'j["index"]["releases"][0]["rollout_percent"]')" = 20 ] || fail "--rollout not applied"
	local idx
	idx=$(sha "$CH/index.json")
	ls -R "$CH" >"$WORK/files.before"

	# Signed by a key the channel does not publish with.
	TI build --key "$D/other.pem" --image "$D/v2.img" --version 1.1 --compatible sim --out "$D/bad.tnd"
	expect_refusal 11 "signed by no key in the keyring" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/bad.tnd"
	# Same version, other content.
	TI build --key "$D/key.pem" --image "$D/v2.img" --version 1.0 --compatible sim --out "$D/dup.tnd"
	expect_refusal 2 "already published with different content" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/dup.tnd"
	# Older than the latest.
	TI build --key "$D/key.pem" --image "$D/v2.img" --version 0.9 --compatible sim --out "$D/old.tnd"
	expect_refusal 13 "not newer than the published 1.0" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/old.tnd"
	# A delta bundle, a damaged bundle, a name that cannot be a file name.
	TI build --key "$D/key.pem" --image "$D/v2.img" --base "$D/v1.img" --version 1.1 --compatible sim --out "$D/d.tnd"
	expect_refusal 2 "publish takes full bundles" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/d.tnd"
	cp "$D/1.1.tnd" "$D/corrupt.tnd"
	printf 'X' | dd of="$D/corrupt.tnd" bs=1 seek=$(($(stat -c %s "$D/corrupt.tnd") - 100)) conv=notrunc 2>/dev/null
	expect_refusal 12 "" "$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/corrupt.tnd"
	TI build --key "$D/key.pem" --image "$D/v2.img" --version '1.1/x' --compatible sim --out "$D/slash.tnd"
	expect_refusal 2 "may hold only letters" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" "$D/slash.tnd"
	# Usage errors.
	expect_refusal 2 "needs --channel and --key" "$TANDEM_IMAGE" publish --channel "$CH" "$D/1.1.tnd"
	expect_refusal 2 "--expires-in" "$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" --expires-in 5x
	expect_refusal 2 "--rollout must be 0 to 100" \
		"$TANDEM_IMAGE" publish --channel "$CH" --key "$D/key.pem" --rollout 101 "$D/1.1.tnd"

	[ "$(sha "$CH/index.json")" = "$idx" ] || fail "a refused publish changed the index"
	ls -R "$CH" >"$WORK/files.after"
	diff "$WORK/files.before" "$WORK/files.after" || fail "a refused publish left files"
	# The same bundle again is not an error, and publishing goes on.
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd" "$D/1.1.tnd"
	[ "$(field 'j["index"]["releases"][0]["version"]')" = 1.1 ] || fail "1.1 not published"
}

test_publish_cut_before_index_is_finished_by_rerun() {
	setup
	bundle 1.0 v1 && bundle 1.1 v2 || fail "cannot build the bundles"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.0.tnd"
	# A publish killed after its bundle was in place, before the index:
	# the bundle is there, the index still names 1.0, a scratch file lies about.
	cp "$D/1.1.tnd" "$CH/sim/1.1.tnd"
	mkdir -p "$CH/.publish-tmp" && echo junk >"$CH/.publish-tmp/image.img" || fail "cannot plant the scratch file"
	[ "$(field 'j["index"]["releases"][0]["version"]')" = 1.0 ] || fail "the index does not name 1.0 before the rerun"
	TI publish --channel "$CH" --key "$D/key.pem" "$D/1.1.tnd"
	[ "$(field 'j["index"]["releases"][0]["version"]')" = 1.1 ] || fail "rerun did not finish the publish"
	[ "$(field 'len(j["index"]["releases"][0]["deltas"])')" = 1 ] || fail "rerun made no delta"
	[ ! -e "$CH/.publish-tmp" ] || fail "scratch left"
}

run_tests
