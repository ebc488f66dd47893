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
#   BENCH_SECTIONS="full scaling anchors footprint delta serial net"   what to run
#   BENCH_TIMEOUT=600   seconds before any single command is stopped
set -euo pipefail
export LC_ALL=C TZ=UTC

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=$(cd "$TOP" && realpath -m "${1:-build}")
HERE=$TOP/tests/bench
B=$O/bench
RUNS=${BENCH_RUNS:-5}
SECTIONS=${BENCH_SECTIONS:-full scaling anchors footprint delta serial net}
TMO=${BENCH_TIMEOUT:-600}
# The binaries under test are copied (below) before anything runs: the
# build directory may be rebuilt by someone else during a long run, and a
# table must describe one binary.
SNAP=$B/bin
TANDEM=$SNAP/tandem
TIMG=$SNAP/tandem-image
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
BENCH_PKGS="time e2fsprogs rauc swupdate dbus squashfs-tools cpio zstd openssl gzip xdelta3 bsdiff"
if [ -x "$TOP/scripts/deps.sh" ]; then
	timeout "$TMO" "$TOP/scripts/deps.sh" $BENCH_PKGS ||
		log "some benchmark packages are missing: their rows will say so"
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
for f in tandem tandem-image libtandem.a include/generated/tandem_config.h include/config/auto.conf; do
	[ -e "$O/$f" ] || die "$O/$f is missing (make bench builds it)"
done
rm -rf "$SNAP"
mkdir -p "$SNAP/include"
cp -p "$O/tandem" "$O/tandem-image" "$O/libtandem.a" "$SNAP/"
[ -x "$O/inflate2" ] && cp -p "$O/inflate2" "$SNAP/"
cp -rp "$O/include/generated" "$O/include/config" "$SNAP/include/"

# ------------------------------------------------------------ measuring
COLD=1
if [ "$IS_ROOT" = 1 ] && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then :; else
	COLD=0
	log "cannot drop the page cache (not root?): runs are warm-cache, noted in the table"
fi
# Each run starts with nothing of its inputs or outputs cached, like a
# device that has just downloaded a bundle to storage and rebooted.
drop_caches() {
	timeout "$TMO" sync
	[ "$COLD" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}

# measure SECTION NAME RUN BYTES CMD...: runs CMD under /usr/bin/time and
# appends "section name run wall user sys maxrss_kib bytes" to $RAW.
# Wall time is taken here in nanoseconds (time's %e has 10 ms steps).
# Returns CMD's status; its output is kept in $B/tmp/last.{out,err}.
measure() {
	local sec=$1 name=$2 run=$3 bytes=$4 t0 t1 rc=0 u s m
	shift 4
	t0=$(date +%s%N)
	timeout "$TMO" /usr/bin/time -f '%e %U %S %M' -o "$B/tmp/time" "$@" \
		>"$B/tmp/last.out" 2>"$B/tmp/last.err" || rc=$?
	t1=$(date +%s%N)
	if [ "$rc" -ne 0 ]; then
		log "$name (run $run) failed with status $rc: $(tail -2 "$B/tmp/last.err" | tr '\n' ' ')"
		return "$rc"
	fi
	read -r _ u s m <<<"$(tail -1 "$B/tmp/time")"
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
# pkgver PKG: installed Debian version (one line even with several arches)
. "$TOP/tests/lib/machine.sh"
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
	meta tandem_sha256 "$(sha256sum <"$TANDEM" | cut -c1-12)"
	meta inflate "$(grep -q '^CONFIG_INFLATE_LIBDEFLATE=y' "$SNAP/include/config/auto.conf" && echo libdeflate || echo zlib)"
	meta zlib "$(pkgver zlib1g)"
	meta libdeflate "$(pkgver libdeflate0)"
	meta mbedtls "$(pkgver libmbedcrypto7)"
	meta coreutils "$(dd --version | head -1)"
	meta e2fsprogs "$(mkfs.ext4 -V 2>&1 | head -1)"
	meta rauc "$(pkgver rauc)"
	meta swupdate "$(pkgver swupdate)"
	meta fs "$(df -T "$B" | awk 'NR == 2 { print $2 " on " $1 }')"
	# other work on the machine skews wall times: say how busy it was
	meta load "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# ------------------------------------------------------------ the baseline-B helper
# Built by `make bench` with the same libraries as tandem (tests/bench/bench.mk).
INFLATE2=$SNAP/inflate2
build_inflate2() {
	[ -x "$INFLATE2" ] || die "no $O/inflate2: run the benchmark through make bench"
}

# ------------------------------------------------------------ RAUC and SWUpdate
# How they were made to run here is in the shared anchors-bench notes:
# Debian's rauc is a D-Bus client of its own service (private session bus,
# custom no-op bootloader backend, slots on loop devices); Debian's
# swupdate accepts only CMS-signed .swu files and never fsyncs, so a
# `sync` is timed after it (after RAUC too, to hold both to the same
# durability). Both write the same loop device as Tandem's loop slot.
RAUC_NAME="rauc plain (gzip squashfs) -> loop slot"
SWU_NAME_zlib="swupdate zlib -> loop slot"
SWU_NAME_zstd="swupdate zstd -> loop slot"
anchors_skip() {
	skip full "$RAUC_NAME" "$1"
	skip full "rauc verity -> loop slot" "$1"
	skip full "$SWU_NAME_zlib" "$1"
	skip full "$SWU_NAME_zstd" "$1"
}
# One certificate chain serves both (RAUC keyring, SWUpdate -k): a CA and
# a leaf usable for CMS signing (emailProtection) and code signing.
pki_setup() {
	local d=$B/pki
	[ -f "$d/leaf.pem" ] && return 0
	mkdir -p "$d"
	printf '%s\n' '[req]' 'distinguished_name = dn' '[dn]' \
		'[v3_bench_ca]' 'basicConstraints = critical,CA:TRUE' \
		'keyUsage = critical,keyCertSign,cRLSign' 'subjectKeyIdentifier = hash' \
		'[v3_bench_leaf]' 'basicConstraints = critical,CA:FALSE' \
		'keyUsage = critical,digitalSignature' 'extendedKeyUsage = emailProtection,codeSigning' \
		'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid' >"$d/openssl.cnf"
	(
		cd "$d"
		openssl req -config openssl.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=Tandem bench CA" \
			-extensions v3_bench_ca
		openssl req -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout leaf.key -out leaf.csr -subj "/CN=Tandem bench signer"
		openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-out leaf.pem.tmp -days 3650 -extfile openssl.cnf -extensions v3_bench_leaf
		mv leaf.pem.tmp leaf.pem
	) >"$B/tmp/pki.log" 2>&1
}

RAUC_OK=0
# shellcheck disable=SC2034 # read indirectly as ${!ok_var}
SWU_OK_zlib=0
# shellcheck disable=SC2034
SWU_OK_zstd=0
DBUS_ADDR=""
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }

rauc_setup() {
	local img=$1 d=$B/rauc t0 t1
	if ! command -v rauc >/dev/null; then
		skip full "$RAUC_NAME" "rauc not installed (apt-get install rauc)"; return 0
	fi
	if ! command -v dbus-daemon >/dev/null; then
		skip full "$RAUC_NAME" "dbus-daemon not installed (apt-get install dbus)"; return 0
	fi
	mkdir -p "$d/bundle"
	if [ ! -f "$d/plain.raucb" ] || [ "$d/plain.raucb" -ot "$img" ]; then
		log "building the RAUC plain bundle (mksquashfs of the image: minutes on a busy machine; cached)"
		rm -f "$d/bundle/rootfs.ext4" "$d/plain.raucb"
		ln "$img" "$d/bundle/rootfs.ext4" 2>/dev/null || cp "$img" "$d/bundle/rootfs.ext4"
		printf '%s\n' '[update]' 'compatible=bench' 'version=1.0.0' '' '[bundle]' 'format=plain' '' \
			'[image.rootfs]' 'filename=rootfs.ext4' >"$d/bundle/manifest.raucm"
		t0=$(date +%s%N)
		timeout "$TMO" rauc --cert="$B/pki/leaf.pem" --key="$B/pki/leaf.key" \
			--keyring="$B/pki/ca.pem" bundle "$d/bundle" "$d/plain.raucb.tmp" >"$B/tmp/rauc-bundle.log" 2>&1 &&
			mv "$d/plain.raucb.tmp" "$d/plain.raucb"
		t1=$(date +%s%N)
		printf '%s\n' "$(secs "$t0" "$t1")" >"$d/build-seconds"
	fi
	if [ ! -f "$d/plain.raucb" ]; then
		skip full "$RAUC_NAME" "rauc bundle failed: $(tail -1 "$B/tmp/rauc-bundle.log")"; return 0
	fi
	meta rauc.bundle_bytes "$(stat -c %s "$d/plain.raucb")"
	meta rauc.bundle_build_s "$(cat "$d/build-seconds" 2>/dev/null || echo '?')"
	# A no-op bootloader backend: A is booted and primary, every request
	# succeeds. Only the slot copy is measured.
	printf '%s\n' '#!/bin/sh' 'case "$1" in' 'get-primary|get-current) echo A ;;' \
		'get-state) echo good ;;' 'esac' 'exit 0' >"$d/bootloader.sh"
	chmod +x "$d/bootloader.sh"
	truncate -s 1M "$d/slotA.img"
	# A central status file: with per-slot status RAUC mounts the slot
	# after the copy and writes into it, which would change the bytes
	# the check below compares (and is not part of the copy's cost).
	printf '%s\n' '[system]' 'compatible=bench' 'bootloader=custom' "statusfile=$d/status.raucs" '' '[handlers]' \
		"bootloader-custom-backend=$d/bootloader.sh" '' '[keyring]' "path=$B/pki/ca.pem" '' \
		'[slot.rootfs.0]' "device=$d/slotA.img" 'type=ext4' 'bootname=A' '' \
		'[slot.rootfs.1]' "device=$LOOP" 'type=ext4' 'bootname=B' >"$d/system.conf"
	# A private session bus for the service and its client.
	rm -f "$d/bus.sock"
	dbus-daemon --session --address="unix:path=$d/bus.sock" --nofork --nopidfile \
		>"$B/tmp/dbus.log" 2>&1 &
	PIDS+=("$!")
	DBUS_ADDR="unix:path=$d/bus.sock"
	if timeout 10 sh -c "until [ -S '$d/bus.sock' ]; do sleep 0.1; done"; then
		RAUC_OK=1
	else
		skip full "$RAUC_NAME" "private dbus-daemon did not start (see $B/tmp/dbus.log)"
	fi
}

swu_setup() { # CODEC IMG
	local c=$1 img=$2 name_var=SWU_NAME_$1 dir=$B/swu/$1 f sha
	if ! command -v swupdate >/dev/null; then
		skip full "${!name_var}" "swupdate not installed (apt-get install swupdate)"; return 0
	fi
	if [ "$c" = zstd ] && ! command -v zstd >/dev/null; then
		skip full "${!name_var}" "zstd not installed (apt-get install zstd)"; return 0
	fi
	mkdir -p "$dir"
	f=$dir/rootfs.ext4.gz
	[ "$c" = zstd ] && f=$dir/rootfs.ext4.zst
	if [ ! -f "$f" ] || [ "$f" -ot "$img" ]; then
		log "compressing the image for SWUpdate ($c; cached)"
		# gzip -6 is zlib's default level, the one Tandem's bundles use;
		# zstd at its default level 3, as in the anchors-bench notes.
		if [ "$c" = zlib ]; then
			timeout "$TMO" gzip -n -6 -c "$img" >"$f.tmp"
		else
			timeout "$TMO" zstd -q -T2 -f -o "$f.tmp" "$img"
		fi
		mv "$f.tmp" "$f"
	fi
	sha=$(sha256sum <"$f" | cut -d' ' -f1)
	# sw-description names the loop device, which may differ between runs:
	# the small signed part is remade every time.
	cat >"$dir/sw-description" <<EOF
software =
{
	version = "1.0.0";
	hardware-compatibility: [ "1.0" ];
	stable: {
		copyB: {
			images: ( {
				filename = "$(basename "$f")";
				device = "$LOOP";
				type = "raw";
				sha256 = "$sha";
				installed-directly = true;
				compressed = "$c";
			} );
		};
	};
}
EOF
	if (
		cd "$dir"
		openssl cms -sign -in sw-description -out sw-description.sig -signer "$B/pki/leaf.pem" \
			-inkey "$B/pki/leaf.key" -outform DER -nosmimecap -binary &&
			printf 'sw-description\nsw-description.sig\n%s\n' "$(basename "$f")" |
			cpio -o -H crc >"../$c.swu" 2>/dev/null
	); then
		meta "swu.$c.bytes" "$(stat -c %s "$B/swu/$c.swu")"
		eval "SWU_OK_$c=1"
	else
		skip full "${!name_var}" "cannot build the .swu (openssl cms or cpio failed)"
	fi
}

anchors_setup() { # IMG
	if [ -z "$LOOP" ]; then anchors_skip "no loop device: $LOOP_WHY"; return 1; fi
	if ! command -v openssl >/dev/null; then anchors_skip "openssl not installed"; return 1; fi
	pki_setup || { anchors_skip "cannot make certificates (see $B/tmp/pki.log)"; return 1; }
	# verity bundles build with this rauc but need dm-verity to install
	if grep -qw device-mapper /proc/misc 2>/dev/null; then
		skip full "rauc verity -> loop slot" "not measured yet although this kernel has device-mapper"
	else
		skip full "rauc verity -> loop slot" "kernel has no device-mapper (dm-verity): RAUC cannot mount a verity bundle here"
	fi
	rauc_setup "$1"
	swu_setup zlib "$1"
	swu_setup zstd "$1"
	meta rauc.version "$(rauc --version 2>/dev/null || echo none)"
	return 0
}

# rauc_run RUN IMG SIZE MIB: one RAUC install, its service started fresh
# so that its peak RSS is this install's.
rauc_run() {
	local r=$1 img=$2 size=$3 mib=$4 d=$B/rauc svc t0 s0 s1 u s m rc=0 child
	[ "$RAUC_OK" = 1 ] || return 0
	loop_spoil "$LOOP" "$mib"
	export DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR DBUS_STARTER_BUS_TYPE=session
	/usr/bin/time -f '%e %U %S %M' -o "$B/tmp/rauc-service.time" \
		rauc --conf="$d/system.conf" service --override-boot-slot=A >"$B/tmp/rauc-service.log" 2>&1 &
	svc=$!
	PIDS+=("$svc")
	if ! timeout 20 sh -c "until rauc --conf='$d/system.conf' status >/dev/null 2>&1; do sleep 0.1; done"; then
		wrong "rauc service did not come up (see $B/tmp/rauc-service.log)"
		kill "$svc" 2>/dev/null || true
		return 0
	fi
	drop_caches
	t0=$(date +%s%N)
	timeout "$TMO" rauc --conf="$d/system.conf" install "$d/plain.raucb" >"$B/tmp/rauc-install.log" 2>&1 || rc=$?
	s0=$(date +%s%N)
	timeout "$TMO" sync
	s1=$(date +%s%N)
	# SIGTERM to rauc itself (time's child) stops the service cleanly and
	# lets time report the service's CPU and peak RSS.
	child=$(pgrep -P "$svc" || true)
	if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
	timeout 20 sh -c "while kill -0 $svc 2>/dev/null; do sleep 0.1; done" ||
		kill -9 "$svc" $child 2>/dev/null || true
	wait "$svc" 2>/dev/null || true
	unset DBUS_SESSION_BUS_ADDRESS DBUS_STARTER_BUS_TYPE
	if [ "$rc" != 0 ]; then
		wrong "rauc install failed: $(tail -1 "$B/tmp/rauc-install.log")"
		return 0
	fi
	read -r _ u s m <<<"$(tail -1 "$B/tmp/rauc-service.time")"
	add_row full "$RAUC_NAME" "$r" "$(secs "$t0" "$s1")" "$u" "$s" "$m" "$size"
	meta "note.$RAUC_NAME" "wall = install + sync (last sync $(secs "$s0" "$s1") s); CPU, RSS of the service; whole-bundle signature check first; no read-back"
	same "$LOOP" "$img" "$size" || wrong "rauc: loop slot differs from the image"
}

# swu_run CODEC RUN IMG SIZE MIB: one SWUpdate install, timed to its
# success log line (its client polls on for up to a second), plus a sync.
swu_run() {
	local c=$1 r=$2 img=$3 size=$4 mib=$5 ok_var=SWU_OK_$1 name_var=SWU_NAME_$1 out s0 s1 row
	[ "${!ok_var}" = 1 ] || return 0
	loop_spoil "$LOOP" "$mib"
	mkdir -p "$B/tmp/swu"
	drop_caches
	if ! out=$(TMPDIR=$B/tmp/swu python3 "$HERE/timed.py" --match "SWUPDATE successful" \
		--timeout "$TMO" --log "$B/tmp/swupdate-$c.log" -- \
		swupdate -l 4 -H board:1.0 -k "$B/pki/ca.pem" -e stable,copyB -i "$B/swu/$c.swu"); then
		wrong "swupdate $c failed: $(grep -a ERROR "$B/tmp/swupdate-$c.log" | head -1)"
		return 0
	fi
	s0=$(date +%s%N)
	timeout "$TMO" sync
	s1=$(date +%s%N)
	row=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); s = float(sys.argv[2])
print("%.4f\t%s\t%s\t%s" % (d["match_s"] + s, d["user_s"], d["sys_s"], d["maxrss_kib"]))' \
		"$out" "$(secs "$s0" "$s1")")
	printf 'full\t%s\t%s\t%s\t%s\n' "${!name_var}" "$r" "$row" "$size" >>"$RAW"
	meta "note.${!name_var}" "wall = to its success log line + sync (last sync $(secs "$s0" "$s1") s); sha256 of the stream; no fsync, no read-back"
	same "$LOOP" "$img" "$size" || wrong "swupdate $c: loop slot differs from the image"
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
	# (at most BENCH_BUILD_RUNS times, default 3: it is the slowest step)
	for ((r = 1; r <= RUNS && r <= ${BENCH_BUILD_RUNS:-3}; r++)); do
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
	meta "note.inflate 2 threads -> nowhere" "limit B: Tandem's own decoder ($(grep -q '^CONFIG_INFLATE_LIBDEFLATE=y' "$SNAP/include/config/auto.conf" && echo libdeflate || echo zlib)), no hashing, no writes"
	meta "note.zlib inflate 2 threads -> nowhere" "for comparison: zlib on the same records"
	meta "note.auth + inflate 2 threads -> nowhere" "adds the SHA-256 chain check on the reading thread"
	conf_file=$(slot_conf file "$slot")
	conf_loop=""
	if loop_setup "$mib"; then
		conf_loop=$(slot_conf loop "$LOOP")
		meta full.loop "$LOOP"
	else
		skip full "tandem install -> loop slot" "$LOOP_WHY"
		skip full "dd conv=fsync -> loop slot" "$LOOP_WHY"
	fi

	ANCHORS=0
	if has anchors && anchors_setup "$img"; then ANCHORS=1; fi
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
		measure full "zlib inflate 2 threads -> nowhere" "$r" "$size" "$INFLATE2" --threads 2 --zlib "$bun" ||
			wrong "inflate2 --zlib failed"
		grep -q "\"out_bytes\":$size," "$B/tmp/last.out" || wrong "inflate2 --zlib produced the wrong size"
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
		if [ "$ANCHORS" = 1 ]; then
			rauc_run "$r" "$img" "$size" "$mib"
			swu_run zlib "$r" "$img" "$size" "$mib"
			swu_run zstd "$r" "$img" "$size" "$mib"
		fi
	done
	rm -f "$slot"
}

# ------------------------------------------------------------ 2. scaling
# Issue 8: install time and peak RSS for images of several sizes, all made
# the same way (60% real files, the rest free space), into a file slot.
# Memory should be flat and time linear in the image size.
SCALING_SIZES=${BENCH_SCALING_SIZES:-64 256 512 1024}
section_scaling() {
	local mib img bun size r slot=$B/dev/slotB.img conf
	conf=$(slot_conf file "$slot")
	for mib in $SCALING_SIZES; do
		img=$(image "$mib")
		bun=$(bundle "$img")
		meta "scaling.bundle.$mib MiB" "$(stat -c %s "$bun")"
	done
	for ((r = 1; r <= RUNS; r++)); do
		log "scaling: round $r of $RUNS"
		for mib in $SCALING_SIZES; do
			img=$B/images/usr-$mib.ext4
			bun=${img%.ext4}.tnd
			size=$(stat -c %s "$img")
			rm -rf "$slot" "$B/dev/state"/*
			truncate -s "$size" "$slot"
			drop_caches
			measure scaling "$mib MiB" "$r" "$size" \
				"$TANDEM" -c "$conf" install --progress=none "$bun" || wrong "tandem install ($mib MiB) failed"
			same "$slot" "$img" "$size" || wrong "tandem: $mib MiB slot differs from the image"
		done
	done
	rm -f "$slot"
}

# ------------------------------------------------------------ 3. footprint
# Stripped size and shared-library count of the device binary in the
# default configuration (the build under test) and in the minimal
# defconfig, built out of tree with its own .config so that the
# top-level .config is never touched; beside Debian's rauc and swupdate.
footprint_one() { # NAME BINARY NOTE
	local stripped=$B/tmp/fp.stripped
	if [ ! -x "$2" ]; then
		meta "footprint.$1.size" "$3"
		return 0
	fi
	strip -o "$stripped" "$2" 2>/dev/null || cp "$2" "$stripped"
	meta "footprint.$1.size" "$(stat -c %s "$stripped")"
	meta "footprint.$1.ldd" "$(ldd "$2" 2>/dev/null | wc -l)"
	meta "footprint.$1.note" "$3"
}
section_footprint() {
	local min=$B/min
	footprint_one "tandem (default config)" "$TANDEM" "the build under test (top-level .config)"
	rm -rf "$min"
	mkdir -p "$min"
	log "building the minimal configuration in $min"
	# The defconfig is expanded with olddefconfig on a copy of it: the same
	# result as `make minimal_defconfig`, and it works with Makefiles from
	# before that target was fixed (GNU make skips pattern rules of .PHONY
	# targets).
	cp "$TOP/board-configs/minimal/defconfig" "$min/.config"
	if (cd "$TOP" && timeout "$TMO" make --no-print-directory O="$min" KCONFIG_CONFIG="$min/.config" \
		olddefconfig && timeout "$TMO" make --no-print-directory O="$min" \
		KCONFIG_CONFIG="$min/.config" all) >"$B/tmp/min-build.log" 2>&1 &&
		grep -q '^# CONFIG_IMAGE_TOOLS is not set' "$min/.config"; then
		footprint_one "tandem (minimal_defconfig)" "$min/tandem" "board-configs/minimal/defconfig"
	else
		meta "footprint.tandem (minimal_defconfig).size" "build failed: $(grep -m1 -i error "$B/tmp/min-build.log" || tail -1 "$B/tmp/min-build.log")"
	fi
	footprint_one "rauc $(pkgver rauc)" "$(command -v rauc || echo /nonexistent)" \
		"Debian's build: glib, json-glib, curl, openssl, dbus client and service in one binary"
	footprint_one "swupdate $(pkgver swupdate)" \
		"$(command -v swupdate || echo /nonexistent)" "Debian's build"
}

# ------------------------------------------------------------ 4. delta (hook)
# The delta table (issue 4) belongs to tests/delta/bench.sh; this only
# runs it, with the same build directory and number of runs, and passes
# its Markdown through.
section_delta() {
	local d=$TOP/tests/delta/bench.sh
	if [ -x "$d" ]; then
		log "delta: running $d"
		BENCH_RUNS=$RUNS DELTA_RUNS=${DELTA_RUNS:-5} IMGPAIR=${IMGPAIR:-} timeout $((TMO * 3)) "$d" "$O" >"$B/delta.md" 2>"$B/tmp/delta.err" ||
			wrong "tests/delta/bench.sh failed: $(tail -1 "$B/tmp/delta.err")"
	else
		printf '### Delta\n\nNot measured: tests/delta/bench.sh does not exist yet.\n\n' >"$B/delta.md"
	fi
}

# ------------------------------------------------------------ 6. serial (hook)
# tests/serial/bench.sh: link efficiency at several rates and the time to
# push the delta the delta section just made (issue 7).
section_serial() {
	log "serial: running tests/serial/bench.sh"
	IMGPAIR=${IMGPAIR:-} timeout "$TMO" "$TOP/tests/serial/bench.sh" "$O" >"$B/serial.md" \
		2>"$B/tmp/serial.err" ||
		wrong "tests/serial/bench.sh failed: $(tail -1 "$B/tmp/serial.err")"
}

# ------------------------------------------------------------ 7. network (hook)
# tests/bench/net.sh: HTTPS install from a loopback nginx beside curl into
# dd, and what a poll costs (issue 5). Uses the full section's image.
section_net() {
	log "net: running tests/bench/net.sh"
	NET_RUNS=$RUNS timeout "$TMO" "$TOP/tests/bench/net.sh" "$O" >"$B/net.md" \
		2>"$B/tmp/net.err" ||
		wrong "tests/bench/net.sh failed: $(tail -1 "$B/tmp/net.err")"
}

# ------------------------------------------------------------ main
facts
t_start=$(date +%s)
has full && section_full
has scaling && section_scaling
has footprint && section_footprint
has delta && section_delta
has serial && section_serial
has net && section_net
meta duration_s "$(($(date +%s) - t_start))"
{
	python3 "$HERE/report.py" "$RAW" "$META" "$B"
	if has delta; then cat "$B/delta.md"; fi
	if has serial; then cat "$B/serial.md"; fi
	if has net; then cat "$B/net.md"; fi
} | tee "$B/results.md"
log "tables in $B/results.md, JSON in $B/*.json"
if [ "$FAILED" != 0 ]; then
	log "some results were WRONG (see above): this is a bug, not a slow run"
	exit 1
fi
