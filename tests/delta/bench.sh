#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench.sh [BUILD_DIR]: the delta table of `make bench` (issue 4, issue 8
# item 2), printed as Markdown on stdout; a CSV copy goes to
# BUILD_DIR/bench/delta.csv.
#
# For each real image pair from ../shared/bench/make-image-pair.sh (ext4
# and squashfs, v1 -> v2 after a round of security updates), in one run:
# patch size, encode time and peak RSS, apply time and peak RSS, for
# Tandem, bsdiff/bspatch, xdelta3 -9 and zstd --patch-from -19 --long.
# Tandem's "apply" is the device side: `tandem install` of the signed delta
# bundle into a simulated device whose booted slot holds v1 (base hash
# check, authenticated chunks, write, fsync, read-back, target hash); its
# patch size is the whole bundle (manifest and signature included). The
# full-image install of the same target is measured beside it, for the
# "delta install <= 1.25 x full install" target. Every applied output is
# compared with the target byte for byte: a wrong output fails the bench.
#
# Encoding runs once per tool (it is deterministic; the slow ones would
# not fit otherwise); applying runs DELTA_RUNS times (median).
#
# Env:
#   IMGPAIR=DIR          an existing pair (default: build it, cached, under
#                        BUILD_DIR/bench/imgpair, or use /work/imgpair-like
#                        directories named here)
#   DELTA_RUNS=5         apply runs per tool
#   DELTA_TMO=300        seconds before one encode is stopped (bsdiff on the
#                        ext4 pair needs far longer: its row then says so)
#   DELTA_PAIRS="ext4 squashfs"
set -euo pipefail
export LC_ALL=C TZ=UTC

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=$(cd "$TOP" && realpath -m "${1:-build}")
B=$O/bench/delta
RUNS=${DELTA_RUNS:-5}
TMO=${DELTA_TMO:-300}
PAIRS=${DELTA_PAIRS:-ext4 squashfs}
SNAP=$O/bench/bin
TANDEM=$SNAP/tandem
TIMG=$SNAP/tandem-image
CSV=$O/bench/delta.csv

log() { echo "delta-bench: $*" >&2; }
die() { echo "delta-bench: error: $*" >&2; exit 1; }

mkdir -p "$B" "$SNAP"
# Own copies of the binaries, like tests/bench/run.sh, so that a rebuild
# during the run cannot mix two versions into one table.
cp "$O/tandem" "$O/tandem-image" "$SNAP/" 2>/dev/null || die "build $O first"

IMG=${IMGPAIR:-$O/bench/imgpair}
if [ ! -f "$IMG/v2.squashfs" ]; then
	# The pair's builder lives in the workspace's shared directory, beside
	# the checkout (../shared), or where TANDEM_SHARED says.
	mk=""
	for d in ${TANDEM_SHARED:-} "$TOP/../shared" "$(dirname "$TOP")/../shared"; do
		[ -x "$d/bench/make-image-pair.sh" ] && { mk=$d/bench/make-image-pair.sh; break; }
	done
	if [ -z "$mk" ]; then
		printf '### Delta: real root filesystem pairs\n\nNot measured: no image pair (set IMGPAIR=DIR, or TANDEM_SHARED=DIR holding bench/make-image-pair.sh).\n\n'
		log "no make-image-pair.sh: delta table not measured"
		exit 0
	fi
	log "building the image pair in $IMG with $mk (once; cached)"
	"$mk" "$IMG" >&2 || die "make-image-pair.sh failed"
fi

# timed OUT CMD...: runs CMD under /usr/bin/time and timeout; OUT gets
# "exit_s maxrss_kib rc timed_out". Peak RSS from GNU time (not a Python
# wrapper: a wrapper that forks itself would count its own resident
# memory as the child's peak); wall time from the clock in nanoseconds,
# as the full-install table does: time's 10 ms steps are an eighth of
# a 0.08 s squashfs install.
timed() {
	local out=$1 rc=0 t0 t1
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$out.t" timeout "$TMO" "$@" >/dev/null 2>"$out.err" || rc=$?
	t1=$(date +%s%N)
	# timeout exits 124; the peak RSS up to then (timeout waited for the
	# tool, so time sees it) is a lower bound of the tool's.
	if [ $rc -eq 124 ]; then
		echo "0 $(grep -Eo '^[0-9]+$' "$out.t" | tail -1 | grep . || echo 0) 124 True" >"$out"
	else
		echo "$(awk -v n=$((t1 - t0)) 'BEGIN {printf "%.4f", n / 1e9}') $(grep -Eo '^[0-9]+$' "$out.t" | tail -1) $rc False" >"$out"
	fi
	[ $rc -eq 0 ]
}
field() {
	local i
	case $2 in exit_s) i=1 ;; maxrss_kib) i=2 ;; rc) i=3 ;; timed_out) i=4 ;; esac
	awk -v i="$i" '{print $i}' "$1"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

K=$B/keys
[ -f "$K/key.pem" ] || { mkdir -p "$K/pub" && "$TIMG" keygen --out "$K/key.pem" --pub "$K/pub/release.pem" >/dev/null; }

echo "tool,pair,patch_bytes,encode_s,encode_rss_kib,apply_s,apply_rss_kib,status" >"$CSV"
rows=""

# row TOOL PAIR SIZE ENC_S ENC_RSS APPLY_S APPLY_RSS STATUS
row() {
	echo "$1,$2,$3,$4,$5,$6,$7,$8" >>"$CSV"
}

# apply_runs JSONPREFIX CMD...: RUNS runs, medians into APPLY_S / APPLY_RSS.
apply_runs() {
	local p=$1 i
	shift
	for i in $(seq 1 "$RUNS"); do
		# cold, as for Tandem's installs
		sync
		[ "$(id -u)" -ne 0 ] || echo 3 >/proc/sys/vm/drop_caches
		timed "$p.$i.json" "$@" || return 1
		[ "$(field "$p.$i.json" rc)" = 0 ] || return 1
	done
	APPLY_S=$(for i in $(seq 1 "$RUNS"); do field "$p.$i.json" exit_s; done | median)
	APPLY_RSS=$(for i in $(seq 1 "$RUNS"); do field "$p.$i.json" maxrss_kib; done | median)
}

# encode_one TOOL JSON CMD...: sets ENC_S ENC_RSS, or returns 1 on timeout/failure.
encode_one() {
	local json=$2
	shift 2
	timed "$json" "$@" || true
	if [ "$(field "$json" timed_out)" = True ]; then
		ENC_STATUS="did not finish in $TMO s"
		ENC_RSS=$(field "$json" maxrss_kib)
		return 1
	fi
	[ "$(field "$json" rc)" = 0 ] || { ENC_STATUS="failed (exit $(field "$json" rc))"; return 1; }
	ENC_S=$(field "$json" exit_s)
	ENC_RSS=$(field "$json" maxrss_kib)
}

check() { cmp -s "$1" "$2" || die "$3: applied output differs from the target"; }

for pair in $PAIRS; do
	base=$IMG/v1.$pair target=$IMG/v2.$pair
	[ -f "$base" ] && [ -f "$target" ] || die "missing $base or $target"
	W=$B/$pair
	rm -rf "$W" && mkdir -p "$W"
	tsize=$(stat -c %s "$target")
	log "$pair: $(stat -c %s "$base") -> $tsize bytes"

	# ---- Tandem: encode (host), then install on a simulated device.
	ENC_S="" ENC_RSS="" APPLY_S="" APPLY_RSS=""
	encode_one tandem "$W/t.enc.json" "$TIMG" build --key "$K/key.pem" --base "$base" \
		--image "$target" --version 2.0 --compatible sim --out "$W/t.tnd" ||
		die "tandem encode: $ENC_STATUS"
	T_ENC_S=$ENC_S T_ENC_RSS=$ENC_RSS
	"$TIMG" build --key "$K/key.pem" --image "$target" --version 2.0 --compatible sim \
		--out "$W/full.tnd" >/dev/null
	"$TIMG" build --key "$K/key.pem" --image "$base" --version 1.0 --compatible sim \
		--out "$W/base.tnd" >/dev/null
	slot=$(( ($(stat -c %s "$base") > tsize ? $(stat -c %s "$base") : tsize) ))
	TANDEM_IMAGE=$TIMG "$TOP/tests/lib/simdev.sh" "$W/dev" "$slot" >/dev/null
	cp "$K/pub/release.pem" "$W/dev/keys/"
	# As on a device Tandem updated before: slot A holds the base as an
	# install from slot B left it, recorded (so a checked delta, format 3
	# to 6, trusts the record and its own checks instead of hashing slot A
	# first).
	sed -i 's/tandem.slot=A/tandem.slot=B/' "$W/dev/cmdline"
	"$TANDEM" -q -c "$W/dev/tandem.conf" install --progress=none "$W/base.tnd" ||
		die "tandem: cannot install the base into slot A"
	sed -i 's/tandem.slot=B/tandem.slot=A/' "$W/dev/cmdline"
	cmp -s -n "$(stat -c %s "$base")" "$W/dev/slotA.img" "$base" || die "slot A does not hold the base"
	# tandem_apply NAME=BUNDLE...: RUNS rounds of installs into slot B, each
	# round every bundle once (round-robin: a slow spell of the machine
	# hurts the delta and the full install alike, and their ratio is what
	# the run is for); medians into T_APPLY_S[NAME] / T_APPLY_RSS[NAME]. NAME
	# "hashed" runs without the device's state, so that slot A has no
	# record and is hashed whole before anything is written.
	unset T_APPLY_S T_APPLY_RSS
	declare -A T_APPLY_S T_APPLY_RSS
	tandem_apply() {
		local i nb name
		for i in $(seq 1 "$RUNS"); do
			for nb in "$@"; do
				name=${nb%%=*}
				[ "$name" != hashed ] || mv "$W/dev/state/state.json" "$W/state.json.keep"
				sync
				[ "$(id -u)" -ne 0 ] || echo 3 >/proc/sys/vm/drop_caches
				timed "$W/$name.$i.json" "$TANDEM" -c "$W/dev/tandem.conf" install \
					--progress=none --no-activate --no-resume "${nb#*=}" ||
					die "tandem $name install failed: $(tail -1 "$W/$name.$i.json.err")"
				[ "$name" != hashed ] || mv "$W/state.json.keep" "$W/dev/state/state.json"
				cmp -s -n "$tsize" "$W/dev/slotB.img" "$target" ||
					die "tandem $name: slot B differs from the target"
			done
		done
		for nb in "$@"; do
			name=${nb%%=*}
			T_APPLY_S[$name]=$(for i in $(seq 1 "$RUNS"); do field "$W/$name.$i.json" exit_s; done | median)
			T_APPLY_RSS[$name]=$(for i in $(seq 1 "$RUNS"); do field "$W/$name.$i.json" maxrss_kib; done | median)
		done
	}
	if "$TIMG" inspect "$W/t.tnd" | grep -q "^delta format: *[246] "; then
		# xz streams rebuilt: the other side of the trade, no rebuilding
		encode_one tandem "$W/t3.enc.json" "$TIMG" build --key "$K/key.pem" --base "$base" \
			--image "$target" --version 2.0 --compatible sim --no-delta-xz --out "$W/t3.tnd" ||
			die "tandem encode: $ENC_STATUS"
		T3_ENC_S=$ENC_S T3_ENC_RSS=$ENC_RSS
		tandem_apply full="$W/full.tnd" delta="$W/t.tnd" delta3="$W/t3.tnd"
	else
		# a slot without Tandem's record of it (written by other means):
		# hashed whole before anything is written
		tandem_apply full="$W/full.tnd" delta="$W/t.tnd" hashed="$W/t.tnd"
	fi
	row tandem "$pair" "$(stat -c %s "$W/t.tnd")" "$T_ENC_S" "$T_ENC_RSS" "${T_APPLY_S[delta]}" "${T_APPLY_RSS[delta]}" ok
	row tandem-full-install "$pair" "$(stat -c %s "$W/full.tnd")" "" "" "${T_APPLY_S[full]}" "${T_APPLY_RSS[full]}" ok
	if [ -n "${T_APPLY_S[delta3]:-}" ]; then
		row "tandem-no-delta-xz" "$pair" "$(stat -c %s "$W/t3.tnd")" "$T3_ENC_S" "$T3_ENC_RSS" "${T_APPLY_S[delta3]}" "${T_APPLY_RSS[delta3]}" ok
	else
		row "tandem-base-not-recorded" "$pair" "$(stat -c %s "$W/t.tnd")" "" "" "${T_APPLY_S[hashed]}" "${T_APPLY_RSS[hashed]}" ok
	fi

	# ---- xdelta3 -9
	if encode_one xdelta3 "$W/x.enc.json" xdelta3 -9 -f -e -s "$base" "$target" "$W/x.patch"; then
		apply_runs "$W/x.app" xdelta3 -f -d -s "$base" "$W/x.patch" "$W/x.out" ||
			die "xdelta3 apply failed"
		check "$W/x.out" "$target" xdelta3
		row xdelta3 "$pair" "$(stat -c %s "$W/x.patch")" "$ENC_S" "$ENC_RSS" "$APPLY_S" "$APPLY_RSS" ok
	else
		row xdelta3 "$pair" "" "" "" "" "" "$ENC_STATUS"
	fi
	rm -f "$W/x.out"

	# ---- zstd --patch-from, window large enough for the whole image.
	wl=$(/usr/bin/python3 -c "import math,sys; print(max(27, math.ceil(math.log2(int(sys.argv[1])))+1))" "$tsize")
	if encode_one zstd "$W/z.enc.json" zstd -q -f -19 --long="$wl" --patch-from="$base" \
		"$target" -o "$W/z.patch"; then
		apply_runs "$W/z.app" zstd -q -f -d --long="$wl" --memory=2048MB --patch-from="$base" \
			"$W/z.patch" -o "$W/z.out" || die "zstd apply failed"
		check "$W/z.out" "$target" zstd
		row "zstd-19-long" "$pair" "$(stat -c %s "$W/z.patch")" "$ENC_S" "$ENC_RSS" "$APPLY_S" "$APPLY_RSS" ok
	else
		row "zstd-19-long" "$pair" "" "" "" "" "" "$ENC_STATUS"
	fi
	rm -f "$W/z.out"

	# ---- bsdiff / bspatch (suffix sort of the whole base: slow on big images)
	if encode_one bsdiff "$W/b.enc.json" bsdiff "$base" "$target" "$W/b.patch"; then
		apply_runs "$W/b.app" bspatch "$base" "$W/b.out" "$W/b.patch" || die "bspatch failed"
		check "$W/b.out" "$target" bsdiff
		row bsdiff "$pair" "$(stat -c %s "$W/b.patch")" "$ENC_S" "$ENC_RSS" "$APPLY_S" "$APPLY_RSS" ok
	else
		# a timed-out encoder's peak so far: a lower bound of its peak
		row bsdiff "$pair" "" "" "${ENC_RSS:-}" "" "" "$ENC_STATUS"
	fi
	rm -f "$W/b.out"
	rm -rf "$W/dev"
done

# ---- the table
. "$TOP/tests/lib/machine.sh"
/usr/bin/python3 - "$CSV" "$RUNS" "$TMO" "$(machine_line); xdelta3 $(pkgver xdelta3); bsdiff $(pkgver bsdiff); zstd $(pkgver zstd); liblzma $(pkgver liblzma5); page cache dropped before each apply run" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
runs, tmo = sys.argv[2], sys.argv[3]
print("### Delta: real root filesystem pairs (v1 -> v2 after security updates)\n")
print(sys.argv[4] + "\n")
print(f"Encode runs once per tool (limit {tmo} s); apply is the median of {runs} runs. "
      "Tandem's size is the whole signed bundle; its apply is a device install into slot B "
      "of a simulated device whose slot A holds the base as Tandem installed it "
      "(record checked, every 256 KiB of output checked against its SHA-256 in the signed "
      "delta before it is written, fsync, read-back). Every output was compared with the target byte "
      "for byte.\n")
for pair in dict.fromkeys(r["pair"] for r in rows):
    rs = [r for r in rows if r["pair"] == pair]
    anchors = [int(r["patch_bytes"]) for r in rs
               if not r["tool"].startswith("tandem") and r["patch_bytes"]]
    best = min(anchors) if anchors else None
    bs = next((r for r in rs if r["tool"] == "bsdiff"), None)
    print(f"#### {pair}\n")
    print("| tool | patch bytes | vs smallest anchor | encode s | encode peak RSS MiB "
          "| apply s | apply peak RSS MiB | status |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rs:
        size = int(r["patch_bytes"]) if r["patch_bytes"] else None
        rel = f"{size / best:.3f}" if size and best and r["tool"] != "tandem-full-install" else ""
        if r["tool"] == "tandem-base-not-recorded":
            rel = ""
        f = lambda k, d=1: f"{float(r[k]):.{d}f}" if r[k] else ""
        mib = lambda k: f"{int(float(r[k])) / 1024:.1f}" if r[k] else ""
        print(f"| {r['tool']} | {size if size is not None else ''} | {rel} | {f('encode_s')} "
              f"| {mib('encode_rss_kib')} | {f('apply_s', 3)} | {mib('apply_rss_kib')} | {r['status']} |")
    t = next(r for r in rs if r["tool"] == "tandem")
    full = next(r for r in rs if r["tool"] == "tandem-full-install")
    print()
    if best:
        print(f"- size: Tandem / smallest anchor = {int(t['patch_bytes']) / best:.3f} "
              "(target <= 0.90)")
    print(f"- delta install / full install of the same target = "
          f"{float(t['apply_s']) / float(full['apply_s']):.2f} (target <= 1.25)")
    for o in rs:
        if o["tool"] == "tandem-no-delta-xz":
            print(f"- without rebuilding xz streams (--no-delta-xz): "
                  f"{int(o['patch_bytes']) / best:.3f} of the smallest anchor, install "
                  f"{float(o['apply_s']) / float(full['apply_s']):.2f} of the full install")
        if o["tool"] == "tandem-base-not-recorded":
            print(f"- base not recorded (hashed first): install "
                  f"{float(o['apply_s']) / float(full['apply_s']):.2f} of the full install")
    print(f"- Tandem apply peak RSS = {int(t['apply_rss_kib']) / 1024:.1f} MiB (target <= 8)")
    if bs and bs["encode_s"]:
        print(f"- encode time vs bsdiff = {float(t['encode_s']) / float(bs['encode_s']):.2f} "
              f"(target <= 0.25), peak RSS vs bsdiff = "
              f"{int(t['encode_rss_kib']) / int(bs['encode_rss_kib']):.2f} (target <= 1)")
    elif bs:
        print(f"- bsdiff {bs['status']}: Tandem's encode ({float(t['encode_s']):.0f} s) is "
              f"at most {float(t['encode_s']) / float(tmo):.2f} of bsdiff's time (target <= 0.25)")
        if bs["encode_rss_kib"] and int(bs["encode_rss_kib"]) > 0:
            print(f"- bsdiff had reached {int(bs['encode_rss_kib']) / 1024:.0f} MiB when it was stopped: "
                  f"Tandem's encode peak RSS is at most "
                  f"{int(t['encode_rss_kib']) / int(bs['encode_rss_kib']):.2f} of bsdiff's (target <= 1)")
    # What the trade means for a device fed over a network: an install
    # streams, so it takes about the longer of the download and of the
    # install measured above (the link and the device's CPU work at once).
    # Computed from this run's figures, not measured over a link.
    kinds = [(r["tool"], int(r["patch_bytes"]), float(r["apply_s"]))
             for name in ("tandem-full-install", "tandem", "tandem-no-delta-xz")
             for r in rs if r["tool"] == name]
    print(f"\nTime to an installed slot over a link of a given rate, computed as max(download, "
          f"install above) for a streamed install:\n")
    print("| link | " + " | ".join(k[0] for k in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for mbit in (1, 10, 100, 1000):
        cells = [f"{max(b * 8 / (mbit * 1e6), a):.1f} s" for _, b, a in kinds]
        print(f"| {mbit} Mbit/s | " + " | ".join(cells) + " |")
    print()
PY
