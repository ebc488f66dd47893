#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh [BUILD_DIR]: the benchmark behind `make bench` (docs/performance.md).
#
# Measures, in one run on this machine, Tandem's full-image install beside
# the limits it is held to (dd conv=fsync of the raw image; a two-thread
# inflate of the same payload to nowhere) and beside RAUC and SWUpdate,
# plus scaling and footprint. Every contender runs BENCH_RUNS times,
# interleaved round by round so that a noisy neighbour hits all of them
# alike, with the page cache dropped before each run (when root). Every
# installed slot is compared with the image byte for byte. Timings are
# printed, never asserted: the exit status is non-zero only when a result
# is wrong (a slot that differs from its image) or the harness breaks.
#
# Inputs are built on first use and cached under BUILD_DIR/bench/ (never
# in git): images made of this machine's /usr (tests/bench/mkimage.sh),
# keys, bundles.
#
# Env:
#   BENCH_RUNS=5        runs per contender (medians are printed)
#   BENCH_SECTIONS="full scaling anchors footprint delta"   what to run
#   BENCH_TIMEOUT=600   seconds before any single command is stopped
set -euo pipefail
export LC_ALL=C TZ=UTC

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=$(cd "$TOP" && realpath -m "${1:-build}")
HERE=$TOP/tests/bench
B=$O/bench
RUNS=${BENCH_RUNS:-5}
SECTIONS=${BENCH_SECTIONS:-full scaling anchors footprint delta}
TMO=${BENCH_TIMEOUT:-600}
TANDEM=$O/tandem
TIMG=$O/tandem-image
RAW=$B/raw.tsv   # one line per measured run, read by report.py
META=$B/meta.tsv # key/value facts about the machine and the inputs
FAILED=0

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
has() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
# A wrong result is an error of the run, unlike a slow one.
wrong() { log "WRONG RESULT: $*"; FAILED=1; meta "error" "$*"; }

mkdir -p "$B/images" "$B/tmp"
: >"$RAW"
: >"$META"

# ------------------------------------------------------------ cleanup
# Loop devices and background services must not outlive the run, even
# when it is interrupted: track them and undo them on exit.
LOOPS=()
PIDS=()
cleanup() {
	local p l
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for l in "${LOOPS[@]}"; do timeout 30 losetup -d "$l" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ deps
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
# Packages only the benchmark needs. Missing ones are not fatal: the rows
# that need them say so.
BENCH_PKGS="time e2fsprogs rauc swupdate dbus squashfs-tools cpio zstd openssl gzip"
if [ -x "$TOP/scripts/deps.sh" ]; then
	timeout "$TMO" "$TOP/scripts/deps.sh" $BENCH_PKGS ||
		log "some benchmark packages are missing: their rows will say so"
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
[ -x "$TANDEM" ] || die "$TANDEM is missing (make bench builds it)"
[ -x "$TIMG" ] || die "$TIMG is missing (make bench builds it)"

# ------------------------------------------------------------ measuring
COLD=1
if [ "$IS_ROOT" = 1 ] && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then :; else
	COLD=0
	log "cannot drop the page cache (not root?): runs are warm-cache, noted in the table"
fi
# Each run starts with nothing of its inputs or outputs cached, like a
# device that has just downloaded a bundle to storage and rebooted.
drop_caches() {
	sync
	[ "$COLD" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}

# measure SECTION NAME RUN BYTES CMD...: runs CMD under /usr/bin/time and
# appends "section name run wall user sys maxrss_kib bytes" to $RAW.
# Wall time is taken here in nanoseconds (time's %e has 10 ms steps).
# Returns CMD's status; its output is kept in $B/tmp/last.{out,err}.
measure() {
	local sec=$1 name=$2 run=$3 bytes=$4 t0 t1 rc=0 e u s m
	shift 4
	t0=$(date +%s%N)
	timeout "$TMO" /usr/bin/time -f '%e %U %S %M' -o "$B/tmp/time" "$@" \
		>"$B/tmp/last.out" 2>"$B/tmp/last.err" || rc=$?
	t1=$(date +%s%N)
	if [ "$rc" -ne 0 ]; then
		log "$name (run $run) failed with status $rc: $(tail -2 "$B/tmp/last.err" | tr '\n' ' ')"
		return "$rc"
	fi
	read -r e u s m <<<"$(tail -1 "$B/tmp/time")"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sec" "$name" "$run" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')" \
		"$u" "$s" "$m" "$bytes" >>"$RAW"
}

# add_row SECTION NAME RUN WALL USER SYS MAXRSS_KIB BYTES: for contenders
# whose numbers come from elsewhere (a service's log, a separate sync).
add_row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
# skip SECTION NAME REASON: a contender that cannot run says why.
skip() { printf '%s\t%s\tskip\t%s\n' "$1" "$2" "$3" >>"$RAW"; log "$2: skipped: $3"; }

# same FILE IMAGE SIZE: the first SIZE bytes of FILE (a slot) are the image.
same() { timeout "$TMO" cmp -n "$3" "$1" "$2" >/dev/null 2>&1; }

# ------------------------------------------------------------ inputs
KEY=$B/keys/bench.pem
if [ ! -f "$KEY" ]; then
	mkdir -p "$B/keys/pub"
	"$TIMG" keygen --out "$KEY" --pub "$B/keys/pub/bench.pem" >/dev/null
fi

# image SIZE_MIB: path of the cached test image (built on first use; a
# changed mkimage.sh or /usr is not detected: rm -r build/bench/images).
image() {
	local f=$B/images/usr-$1.ext4
	if [ ! -f "$f" ]; then
		log "building the ${1} MiB test image from /usr (cached in $B/images)"
		timeout "$TMO" "$HERE/mkimage.sh" "$1" "$f" >&2
	fi
	echo "$f"
}

# bundle IMAGE: path of the image's bundle; the first build is timed.
bundle() {
	local img=$1 out=${1%.ext4}.tnd
	if [ ! -f "$out" ] || [ "$out" -ot "$TIMG" ] || [ "$out" -ot "$img" ]; then
		SOURCE_DATE_EPOCH=1767225600 timeout "$TMO" "$TIMG" -q build --key "$KEY" --image "$img" \
			--version 1.0.0 --compatible bench --out "$out" >&2 || die "tandem-image build failed"
	fi
	echo "$out"
}

# The simulated device: booted from A, so B is the inactive target.
# slot_conf NAME SLOT_B_PATH: writes $B/dev/NAME.conf
mkdir -p "$B/dev/state" "$B/dev/keys"
cp "$B/keys/pub/bench.pem" "$B/dev/keys/"
echo "console=ttyS0 tandem.slot=A" >"$B/dev/cmdline"
truncate -s 1M "$B/dev/slotA.img"
slot_conf() {
	cat >"$B/dev/$1.conf" <<EOF
{ "compatible": "bench", "keyring": "$B/dev/keys", "state_dir": "$B/dev/state",
  "cmdline": "$B/dev/cmdline", "bootloader": {"type": "none"},
  "slots": {"A": "$B/dev/slotA.img", "B": "$2"} }
EOF
	echo "$B/dev/$1.conf"
}

# A loop device over a fully written backing file: the closest thing to a
# partition here (existing blocks, a block device's fsync and O_DIRECT).
LOOP=""
LOOP_WHY=""
loop_setup() {
	local size=$1 f=$B/dev/loop-backing.img
	[ -n "$LOOP" ] && return 0
	if ! command -v losetup >/dev/null; then LOOP_WHY="losetup not installed"; return 1; fi
	if [ "$IS_ROOT" != 1 ]; then LOOP_WHY="needs root for loop devices"; return 1; fi
	rm -f "$f"
	timeout "$TMO" dd if=/dev/zero of="$f" bs=1M count="$size" status=none conv=fsync
	if ! LOOP=$(timeout 60 losetup -f --show "$f" 2>"$B/tmp/losetup.err"); then
		LOOP_WHY="losetup failed: $(head -1 "$B/tmp/losetup.err")"
		LOOP=""
		return 1
	fi
	LOOPS+=("$LOOP")
	return 0
}
# Before every run into the loop slot, spoil one 4 KiB block in every MiB:
# a tool that skipped a region (say, zeros it assumed were there) would
# then fail the byte-for-byte check instead of passing by luck.
loop_spoil() {
	# loop_spoil DEV MIB: python's pwrite keeps it to one process, not one dd per MiB
	python3 - "$1" "$2" <<'PY'
import os, sys
dev, mib = sys.argv[1], int(sys.argv[2])
fd = os.open(dev, os.O_WRONLY)
try:
    for i in range(mib):
        os.pwrite(fd, (b"SPOILED-%08d" % i) * 256, i * 1048576 + 4096 * (i % 200))
    os.fsync(fd)
finally:
    os.close(fd)
PY
}

# ------------------------------------------------------------ machine facts
facts() {
	meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	meta nproc "$(nproc)"
	meta mem "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	meta kernel "$(uname -r)"
	meta cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
	meta runs "$RUNS"
	meta cold "$COLD"
	meta tandem "$(cd "$TOP" && git describe --tags --always --dirty 2>/dev/null || echo unknown)"
	meta cc "$(${CC:-gcc} --version | head -1)"
	meta zlib "$(dpkg-query -W -f='${Version}' zlib1g 2>/dev/null || echo unknown)"
	meta mbedtls "$(dpkg-query -W -f='${Version}' libmbedcrypto7 2>/dev/null || echo unknown)"
	meta coreutils "$(dd --version | head -1)"
	meta e2fsprogs "$(mkfs.ext4 -V 2>&1 | head -1)"
	meta rauc "$(dpkg-query -W -f='${Version}' rauc 2>/dev/null || echo 'not installed')"
	meta swupdate "$(dpkg-query -W -f='${Version}' swupdate 2>/dev/null || echo 'not installed')"
	meta fs "$(df -T "$B" | awk 'NR == 2 { print $2 " on " $1 }')"
}

# ------------------------------------------------------------ the baseline-B helper
INFLATE2=$B/inflate2
build_inflate2() {
	local cflags libs
	libs="$(pkg-config --libs zlib libcjson 2>/dev/null || echo '-lz -lcjson') -lmbedx509 -lmbedcrypto"
	cflags="-std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread"
	${CC:-gcc} $cflags -I"$TOP/lib" -I"$O/include/generated" \
		-include "$O/include/generated/tandem_config.h" -o "$INFLATE2" "$HERE/inflate2.c" \
		"$O/libtandem.a" $libs || die "cannot build the inflate2 helper"
}

# ------------------------------------------------------------ 1. full install
# Issue 2: Tandem install of the 512 MiB image into a file slot (and a loop
# device), beside dd conv=fsync (limit A) and a 2-thread inflate of the
# same payload (limit B).
section_full() {
	local img bun size mib r conf_file conf_loop slot=$B/dev/slotB.img
	img=$(image 512)
	size=$(stat -c %s "$img")
	mib=$((size / 1048576))
	meta full.image "$(basename "$img")"
	meta full.image_bytes "$size"
	meta full.image_sha256 "$(sha256sum <"$img" | cut -d' ' -f1)"
	meta full.content "$(debugfs -R stats "$img" 2>/dev/null | awk -F: '
		/^Block count/ { bc = $2 } /^Free blocks/ { fb = $2 }
		END { printf "%d MiB used of %d MiB", (bc - fb) * 4 / 1024, bc * 4 / 1024 }')"

	# Bundle build: timed in every round (it is a host step, cold cache too).
	bun=${img%.ext4}.tnd
	for ((r = 1; r <= RUNS; r++)); do
		drop_caches
		rm -f "$bun.new"
		SOURCE_DATE_EPOCH=1767225600 measure build "tandem-image build" "$r" "$size" \
			"$TIMG" -q build --key "$KEY" --image "$img" --version 1.0.0 --compatible bench \
			--out "$bun.new" || die "tandem-image build failed"
		mv -f "$bun.new" "$bun"
	done
	meta full.bundle_bytes "$(stat -c %s "$bun")"
	meta full.bundle_info "$("$TIMG" inspect --json "$bun" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)
def find(o, k):
    if isinstance(o, dict):
        for a, b in o.items():
            if a == k: return b
            r = find(b, k)
            if r is not None: return r
    return None
print("chunk %s, %s records" % (find(m, "chunk_size"), find(m, "chunks")))' 2>/dev/null || echo "?")"
	"$TIMG" verify --pub "$B/keys/pub/bench.pem" "$bun" >/dev/null || wrong "tandem-image verify refuses its own bundle"

	build_inflate2
	conf_file=$(slot_conf file "$slot")
	conf_loop=""
	if loop_setup "$mib"; then
		conf_loop=$(slot_conf loop "$LOOP")
		meta full.loop "$LOOP"
	else
		skip full "tandem install -> loop slot" "$LOOP_WHY"
		skip full "dd conv=fsync -> loop slot" "$LOOP_WHY"
	fi

	for ((r = 1; r <= RUNS; r++)); do
		log "full install: round $r of $RUNS"
		# Limit A: the raw image copied with the same durability.
		rm -f "$slot"
		drop_caches
		measure full "dd conv=fsync -> file slot" "$r" "$size" \
			dd if="$img" of="$slot" bs=1M conv=fsync status=none || wrong "dd failed"
		same "$slot" "$img" "$size" || wrong "dd: file slot differs from the image"

		# Limit B: the same payload inflated with both cores, output dropped.
		drop_caches
		measure full "inflate 2 threads -> nowhere" "$r" "$size" "$INFLATE2" --threads 2 "$bun" ||
			wrong "inflate2 failed"
		grep -q "\"out_bytes\":$size," "$B/tmp/last.out" || wrong "inflate2 produced the wrong size"
		drop_caches
		measure full "auth + inflate 2 threads -> nowhere" "$r" "$size" \
			"$INFLATE2" --threads 2 --auth "$B/dev/keys" "$bun" || wrong "inflate2 --auth failed"

		# Tandem into a fresh file slot (sparse, as truncate makes it).
		rm -rf "$slot" "$B/dev/state"/*
		truncate -s "$size" "$slot"
		drop_caches
		measure full "tandem install -> file slot" "$r" "$size" \
			"$TANDEM" -c "$conf_file" install --progress=none "$bun" || wrong "tandem install (file) failed"
		same "$slot" "$img" "$size" || wrong "tandem: file slot differs from the image"

		if [ -n "$conf_loop" ]; then
			loop_spoil "$LOOP" "$mib"
			drop_caches
			measure full "dd conv=fsync -> loop slot" "$r" "$size" \
				dd if="$img" of="$LOOP" bs=1M conv=fsync status=none || wrong "dd (loop) failed"
			same "$LOOP" "$img" "$size" || wrong "dd: loop slot differs from the image"
			loop_spoil "$LOOP" "$mib"
			rm -rf "$B/dev/state"/*
			drop_caches
			measure full "tandem install -> loop slot" "$r" "$size" \
				"$TANDEM" -c "$conf_loop" install --progress=none "$bun" ||
				wrong "tandem install (loop) failed"
			same "$LOOP" "$img" "$size" || wrong "tandem: loop slot differs from the image"
		fi
	done
	rm -f "$slot"
}

# ------------------------------------------------------------ main
facts
has full && section_full
python3 "$HERE/report.py" "$RAW" "$META" "$B" | tee "$B/results.md"
if [ "$FAILED" != 0 ]; then
	log "some results were WRONG (see above): this is a bug, not a slow run"
	exit 1
fi
