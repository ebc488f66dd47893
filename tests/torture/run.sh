#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh [--short] [--blk] [--build DIR] [--keep] [--one SCENARIO MODE N] [--backend uboot|grub]
#
# Power-cut torture test (see README.md here): runs installs, activations,
# confirms and rollbacks on a simulated device (tests/lib/simdev.sh), kills
# `tandem` with SIGKILL at every write-path system call (cutshim.so) and at
# spread-out times, optionally throws away what was not synced, and checks
# after each cut:
#   1. the environment parses (fw_printenv -c succeeds);
#   2. the slot the boot script would boot next holds a complete image
#      whose hash state.json records (installed or good), unless it is the
#      booted slot; the booted slot's content never changed;
#   3. state.json parses (or is absent on a device that had none) and
#      `tandem status` works;
#   4. the same command, run again, completes the work.
# Prints a closing "N passed, N failed" (N: cut points) and exits non-zero
# if any invariant broke; each failure names the one command that
# reproduces it.
#
#   --short   every phase of every scenario, about 120 cut points (make check)
#   --blk     the slots on loop devices (root, losetup): tandem takes its
#             block-device paths (BLKZEROOUT, O_DIRECT read-back, the
#             page-cache residency test), and the test fails unless the
#             complete runs show each of them ran
#   --build   the build whose tandem is tortured (default build/); the shim
#             is always the non-sanitised build/torture/cutshim.so
#   --keep    keep the work directory
#   --one     run a single cut point and keep its device for inspection
#   --backend the bootloader backend of the simulated device (default
#             uboot): grub keeps the boot state in a GRUB environment
#             block (tests/lib/grubenv.py boots it as grub.cfg does), and
#             tears writes on 512-byte sector boundaries only
set -euo pipefail

# libubootenv locks /run/lock/fw_printenv.lock for every environment,
# whatever fw_env.config names: the thousands of tandem and fw_printenv
# runs here would queue behind every other suite on the machine, and a
# lock leaked by one of them (an orphaned shell that inherited it, seen
# here) hangs them all. As root, run in a mount namespace with a
# /run/lock of its own.
if [ "$(id -u)" = 0 ] && [ -z "${TORTURE_OWN_RUNLOCK:-}" ] &&
	unshare -m --propagation private true 2>/dev/null; then
	export TORTURE_OWN_RUNLOCK=1
	# shellcheck disable=SC2016 # expanded by the inner shell
	exec unshare -m --propagation private sh -c \
		'mount -t tmpfs -o mode=1777 tmpfs /run/lock || echo "run.sh: /run/lock stays shared" >&2
		exec "$@"' sh "$0" "${@}"
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
short=0 keep=0 one="" blk=0 backend=uboot
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1 ;;
	--keep) keep=1 ;;
	--blk) blk=1 ;;
	--build)
		build=$(cd "${2:?--build DIR}" && pwd)
		shift
		;;
	--one)
		one="${2:?} ${3:?} ${4:?}"
		keep=1
		shift 3
		;;
	--backend)
		backend=${2:?--backend uboot|grub}
		shift
		;;
	*)
		echo "usage: run.sh [--short] [--blk] [--build DIR] [--keep] [--one SCENARIO MODE N] [--backend uboot|grub]" >&2
		exit 2
		;;
	esac
	shift
done

# install_big (17 MiB, two read-back windows) with --blk, not in its
# --short form: it costs a 17 MiB install per run, and make check runs
# the short form against the ASan build on shared cores.
big=0
[ "$blk" = 0 ] || [ "$short" = 1 ] || big=1

TANDEM=$build/tandem
# The image tool only makes the bundles (host side): the plain build's is
# faster than a sanitised one, and it is not what this test is about.
TANDEM_IMAGE=$top/build/tandem-image
[ -x "$TANDEM_IMAGE" ] || TANDEM_IMAGE=$build/tandem-image
export TANDEM_IMAGE
SHIM=$top/build/torture/cutshim.so
RESTORE=$top/build/torture/cutrestore
if [ ! -x "$RESTORE" ] || [ ! -f "$SHIM" ] || [ "$top/tests/torture/cutshim.c" -nt "$SHIM" ]; then
	# make check builds the programs, not this helper: build it here (never
	# with the sanitizers, whatever $build is).
	make -C "$top" --no-print-directory O=build torture-shim >/dev/null
fi
for f in "$TANDEM" "$TANDEM_IMAGE" "$SHIM" "$RESTORE"; do
	[ -e "$f" ] || { echo "run.sh: $f missing (make all torture-shim)" >&2; exit 2; }
done
case $backend in
uboot) command -v fw_printenv >/dev/null || { echo "run.sh: fw_printenv missing" >&2; exit 2; } ;;
grub) command -v grub-editenv >/dev/null || { echo "run.sh: grub-editenv missing (grub-common)" >&2; exit 2; } ;;
*) echo "run.sh: unknown backend $backend (uboot or grub)" >&2; exit 2 ;;
esac
# simdev.sh makes the device with this backend.
export SIM_BOOTLOADER=$backend
if [ "$blk" = 1 ]; then
	# No silent skip: a machine that cannot attach loop devices fails the
	# block-device run, it does not pass it.
	{ [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ] && command -v losetup >/dev/null; } ||
		{ echo "run.sh: --blk needs root, /dev/loop-control and losetup" >&2; exit 2; }
fi
# A preloaded library before the ASan runtime: tell ASan that is intended.
# SIGKILLed runs report no leaks, the reruns still do.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:verify_asan_link_order=0
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# On tmpfs when there is one: an fsync on a disk costs milliseconds, and
# the lost-writes model is the journal (cutshim.c), not the file system.
# (tmpfs refuses O_DIRECT, so tandem's read-back takes its buffered path.)
tmp=${TORTURE_TMPDIR:-$([ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$tmp/tandem-torture-XXXXXX")
# --blk: loop devices are shared by everyone on the machine: never a fixed
# number (losetup -f), each one listed in $WORK/loops as soon as it is
# attached and detached on every exit; a pin helper started here is
# stopped by its own PID.
BACKING="" PIN_PID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	local l
	[ -z "$PIN_PID" ] || kill "$PIN_PID" 2>/dev/null || true
	if [ -f "$WORK/loops" ]; then
		# --keep: the slots' content outlives the loop devices as files.
		if [ "$keep" = 1 ] && [ -n "${LOOP_A:-}" ]; then
			dd if="$LOOP_A" of="$DEV/slotA.img" bs=1M status=none 2>/dev/null || true
			dd if="$LOOP_B" of="$DEV/slotB.img" bs=1M status=none 2>/dev/null || true
		fi
		while read -r l; do
			timeout 30 losetup -d "$l" || echo "run.sh: cannot detach $l" >&2
		done <"$WORK/loops"
	fi
	[ -z "$BACKING" ] || rm -rf "$BACKING"
	[ "$keep" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# The device always lives at one path: simdev writes absolute paths into
# tandem.conf and fw_env.config, so templates are copied back to it.
# Test a snapshot of the binaries: the build directory may be rebuilt by
# someone else during the minutes this runs.
mkdir -p "$WORK/bin"
cp "$TANDEM" "$TANDEM_IMAGE" "$SHIM" "$RESTORE" "$WORK/bin/"
TANDEM=$WORK/bin/tandem TANDEM_IMAGE=$WORK/bin/${TANDEM_IMAGE##*/}
SHIM=$WORK/bin/cutshim.so RESTORE=$WORK/bin/cutrestore
export TANDEM_IMAGE
DEV=$WORK/dev
TPL=$WORK/tpl
CONF=$DEV/tandem.conf
mkdir -p "$TPL"

tandem() { "$TANDEM" -c "$CONF" -q "$@"; }
# slot X: where slot X lives (a file of the device, or its loop device)
slot() {
	if [ "$blk" = 0 ]; then echo "$DEV/slot$1.img"; elif [ "$1" = A ]; then echo "$LOOP_A"; else echo "$LOOP_B"; fi
}

# --blk: the backing files on a disk file system (build/, not tmpfs):
# with them there the loop devices run with --direct-io=on, so the
# device's reads and writes go to the disk and not through a second
# page cache, as on a board. (O_DIRECT on /dev/loopN itself works on any
# backing: the block layer, not the backing file system, serves it.)
SLOT_SIZE=2M
# Loop devices hold 18 MiB: install_big's 17 MiB image spans two read-back
# windows. The templates keep the first 2 MiB (a_good_big: all 18), the
# size the checks read; the rest of a device is never read.
BLK_SIZE_MIB=18
loop_attach() { # NAME: a new loop device on a fresh backing file; prints it
	local f=$BACKING/$1.img d
	truncate -s "${BLK_SIZE_MIB}M" "$f"
	d=$(timeout 30 losetup -f --show --direct-io=on "$f" 2>/dev/null) ||
		d=$(timeout 30 losetup -f --show "$f") || return 1
	echo "$d" >>"$WORK/loops"
	echo "$d"
}
if [ "$blk" = 1 ]; then
	blkdir=${TORTURE_BLKDIR:-$top/build/torture-blk}
	mkdir -p "$blkdir"
	BACKING=$(mktemp -d "$blkdir/run-XXXXXX")
	: >"$WORK/loops"
	if ! LOOP_A=$(loop_attach mainA) || ! LOOP_B=$(loop_attach mainB); then
		echo "run.sh: cannot attach a loop device" >&2
		exit 2
	fi
	# One page of slot B held in the page cache (blkpin.py): B's windows
	# take the O_DIRECT read-back, A's the buffered one.
	python3 "$top/tests/torture/blkpin.py" "$LOOP_B" "$WORK/pinned" &
	PIN_PID=$!
	for _ in $(seq 100); do [ -e "$WORK/pinned" ] && break; sleep 0.1; done
	[ -e "$WORK/pinned" ] || { echo "run.sh: cannot pin a page of $LOOP_B" >&2; exit 2; }
	export CUTSHIM_BLK_LOOPS="$LOOP_A:$LOOP_B"
fi

# sim_boot: one power-on, as the U-Boot script does it (tests/lib/simboot.sh).
. "$(dirname "$0")/../lib/simboot.sh"

save_tpl() { # NAME [MIB]: the device as it is now becomes template NAME
	rm -rf "${TPL:?}/$1"
	cp -a --sparse=always "$DEV" "$TPL/$1"
	# --blk: the template keeps the slots' first MIB MiB (2) as files
	if [ "$blk" = 1 ]; then
		dd if="$LOOP_A" of="$TPL/$1/slotA.img" bs=1M count="${2:-2}" status=none
		dd if="$LOOP_B" of="$TPL/$1/slotB.img" bs=1M count="${2:-2}" status=none
	fi
	python3 - "$TPL/$1" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
h = {s: hashlib.sha256(open(f"{d}/slot{s}.img", "rb").read()).hexdigest() for s in "AB"}
json.dump({"slots": h, "had_state": os.path.exists(f"{d}/state/state.json")},
          open(f"{d}/../{os.path.basename(d)}.json", "w"))
PY
}
load_tpl() {
	rm -rf "$DEV" && cp -a --sparse=always "$TPL/$1" "$DEV"
	if [ "$blk" = 1 ]; then
		dd if="$DEV/slotA.img" of="$LOOP_A" bs=1M conv=notrunc status=none
		dd if="$DEV/slotB.img" of="$LOOP_B" bs=1M conv=notrunc status=none
		rm "$DEV/slotA.img" "$DEV/slotB.img"
	fi
}

# image FILE SEED: 1 MiB of random, zero and text data (64 KiB chunks: 16
# records, two of them zero runs written with fallocate).
image() {
	{
		head -c 327680 /dev/urandom
		head -c 131072 /dev/zero
		# yes dies of SIGPIPE by design: not an error here
		(set +o pipefail; yes "torture image $2" | head -c 589824)
	} >"$1"
}

# ---------------------------------------------------------------- templates
make_templates() {
	"$top/tests/lib/simdev.sh" "$DEV" "$SLOT_SIZE"
	if [ "$blk" = 1 ]; then
		# The configuration names the loop devices; no slot file is left
		# for a check to read by mistake.
		python3 - "$CONF" "$LOOP_A" "$LOOP_B" <<-'PY'
			import json, sys
			c = json.load(open(sys.argv[1]))
			c["slots"] = {"A": sys.argv[2], "B": sys.argv[3]}
			json.dump(c, open(sys.argv[1], "w"), indent=1)
		PY
		rm "$DEV/slotA.img" "$DEV/slotB.img"
	fi
	# The factory image: the booted slot is never written, so its content
	# is what invariant 2 compares with.
	head -c 1048576 /dev/urandom >"$WORK/factory.img"
	dd if="$WORK/factory.img" of="$(slot A)" conv=notrunc status=none
	image "$WORK/v1.img" 1
	image "$WORK/v2.img" 2
	for v in 1 2; do
		"$TANDEM_IMAGE" -q build --key "$DEV/signing/key.pem" --image "$WORK/v$v.img" \
			--version "$v.0" --compatible sim --chunk-size 64K --out "$WORK/v$v.tnd"
	done
	# v2 as a delta against slot A's factory image (the decoder's writes)
	"$TANDEM_IMAGE" -q build --key "$DEV/signing/key.pem" --image "$WORK/v2.img" \
		--base "$WORK/factory.img" --version 2.0 --compatible sim --chunk-size 64K \
		--out "$WORK/d2.tnd"
	sim_boot "$DEV" >/dev/null
	save_tpl fresh # A booted, no state.json yet
	tandem confirm
	save_tpl a_good
	if [ "$big" = 1 ]; then
		# install_big: 17 MiB in 1 MiB records, mostly zero (BLKZEROOUT),
		# so that the first 16 MiB window is synced with sync_file_range,
		# read back and checkpointed before the last one.
		{
			head -c 1048576 /dev/urandom
			head -c $((15 << 20)) /dev/zero
			(set +o pipefail; yes "torture image 3" | head -c 1048576)
		} >"$WORK/v3.img"
		"$TANDEM_IMAGE" -q build --key "$DEV/signing/key.pem" --image "$WORK/v3.img" \
			--version 3.0 --compatible sim --chunk-size 1M --out "$WORK/v3.tnd"
		save_tpl a_good_big "$BLK_SIZE_MIB"
	fi
	tandem install --progress=none --no-activate "$WORK/v1.tnd"
	save_tpl b_noact
	load_tpl a_good
	tandem install --progress=none "$WORK/v1.tnd"
	save_tpl b_pending
	sim_boot "$DEV" >/dev/null
	save_tpl b_booted
	printf '#!/bin/sh\necho app down >&2\nexit 3\n' >"$DEV/health.d/app"
	chmod +x "$DEV/health.d/app"
	save_tpl b_unhealthy
	load_tpl b_booted
	tandem confirm
	save_tpl b_good
	load_tpl b_pending
	# B three times, then A. One boot a line: under set -e a failing boot
	# in the middle of an && list would not have stopped the script.
	sim_boot "$DEV" >/dev/null
	sim_boot "$DEV" >/dev/null
	sim_boot "$DEV" >/dev/null
	sim_boot "$DEV" >/dev/null
	[ "$(sed 's/.*tandem.slot=//' "$DEV/cmdline")" = A ] ||
		{ echo "template b_fellback: the fourth boot was not A" >&2; return 1; }
	save_tpl b_fellback
}

# ---------------------------------------------------------------- scenarios
# name | template | expected exit status of a complete run | command | post
# post: what a complete run leaves, checked by cutpoints.py after the rerun.
SCENARIOS="
install_fresh|fresh|0|install --progress=none WORK/v1.tnd|install B v1 activate
install_pending|b_pending|0|install --progress=none WORK/v2.tnd|install B v2 activate
install_a|b_good|0|install --progress=none WORK/v2.tnd|install A v2 activate
install_noact|a_good|0|install --progress=none --no-activate WORK/v2.tnd|install B v2 noactivate
install_delta|a_good|0|install --progress=none WORK/d2.tnd|install B v2 activate
confirm_new|b_booted|0|confirm|confirmed B
confirm_fallback|b_fellback|0|confirm|fellback B
confirm_unhealthy|b_unhealthy|24|confirm|unhealthy B
activate|b_noact|0|activate B|activated B
rollback|b_good|0|rollback|activated A
"
[ "$big" = 0 ] || SCENARIOS+="install_big|a_good_big|0|install --progress=none WORK/v3.tnd|install B v3 activate
"

scenarios_json() { # the table above, for cutpoints.py
	echo "$SCENARIOS" | python3 -c '
import json, sys
out = {}
for l in sys.stdin:
    if l.strip():
        n, t, rc, c, p = l.strip().split("|")
        out[n] = {"tpl": t, "rc": int(rc), "cmd": c, "post": p}
json.dump(out, sys.stdout, indent=1)'
}

# calls SCENARIO: a complete run under the shim, counting its write-path
# calls (and tracing them, to name a cut point); prints the count and
# the run's duration in milliseconds.
calls() {
	local t0 t1 line cmd want rc=0
	line=$(echo "$SCENARIOS" | grep "^$1|")
	IFS='|' read -r _ tpl want cmd _ <<<"$line"
	load_tpl "$tpl"
	rm -f "$WORK/count" "$WORK/trace.$1"
	t0=$(date +%s%N)
	# shellcheck disable=SC2086 # cmd is a word list by design
	timeout 120 env CUTSHIM_DIR="$DEV" CUTSHIM_BLK="${CUTSHIM_BLK_LOOPS:-}" LD_PRELOAD="$SHIM" CUTSHIM_COUNT="$WORK/count" \
		CUTSHIM_TRACE="$WORK/trace.$1" "$TANDEM" -c "$CONF" -q ${cmd//WORK/$WORK} >/dev/null 2>"$WORK/calls.err" || rc=$?
	t1=$(date +%s%N)
	# The plan is made from a complete run: one that failed is no plan.
	[ "$rc" = "$want" ] || {
		echo "run.sh: $1: the complete run exits $rc, expected $want: $(cat "$WORK/calls.err")" >&2
		return 1
	}
	echo "$(cat "$WORK/count") $(((t1 - t0) / 1000000))"
}

TORTURE_START=$(date +%s)
export TORTURE_START
# Not `make_templates || ...`: bash ignores set -e inside a function
# called on the left of || (and a `set -e` there too), so a failing step
# of the set-up went unnoticed. A subshell with set -e, its status read
# afterwards, stops at the first failing step.
set +e
(set -e; make_templates) >"$WORK/setup.log" 2>&1
rc=$?
set -e
[ "$rc" = 0 ] || { cat "$WORK/setup.log"; echo "torture: setting up the templates failed (exit $rc)" >&2; exit 1; }

scenarios_json >"$WORK/scenarios.json"
plan=$WORK/plan
: >"$plan"

# timed_delay N MS: the Nth of 12 kill times spread over 1.2 times a
# complete run (the last ones let the run finish).
timed_delay() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.3f", (n - 0.5) / 12 * ms * 1.2 / 1000 }'; }

# check_blk_paths: --blk's proof that the block-device paths ran. From
# the complete runs' traces (the shim's notes, "@N ..."), each of them
# must have happened on a loop device at least once; a plan without a
# BLKZEROOUT cut point fails too. Without this, a configuration that
# silently fell back to files would pass.
check_blk_paths() {
	local t=("$WORK"/trace.*) missing="" zc dr br mres mnon
	count_re() { cat "${t[@]}" | grep -Ec "$1" || true; }
	[ "$(count_re '^[0-9]+ pwrite /dev/loop')" -gt 0 ] || missing+=" slot-writes-on-a-block-device"
	[ "$(count_re '^[0-9]+ pwrite .*/slot[AB]\.img ')" -eq 0 ] || missing+=" (slot-files-written)"
	zc=$(count_re '^@[0-9]+ blkzeroout-result /dev/loop[0-9]+ [0-9]+ 0$')
	[ "$zc" -gt 0 ] || missing+=" BLKZEROOUT-that-succeeded"
	[ "$(count_re '^@[0-9]+ open-direct /dev/loop')" -gt 0 ] || missing+=" O_DIRECT-open"
	dr=$(count_re '^@[0-9]+ read-direct /dev/loop')
	[ "$dr" -gt 0 ] || missing+=" O_DIRECT-read-back"
	br=$(count_re '^@[0-9]+ read-buffered /dev/loop')
	[ "$br" -gt 0 ] || missing+=" buffered-read-back"
	mres=$(count_re '^@[0-9]+ mincore - [0-9]+ [1-9][0-9]*$')
	mnon=$(count_re '^@[0-9]+ mincore - [0-9]+ 0$')
	[ "$mres" -gt 0 ] || missing+=" mincore-found-resident-pages"
	[ "$mnon" -gt 0 ] || missing+=" mincore-found-none"
	local zcut
	zcut=$(awk '{print $1}' "$plan" | sort -u | while read -r sc; do
		awk '$2 == "ioctl-blkzeroout" {print $1}' "$WORK/trace.$sc" |
			while read -r n; do grep -c "^$sc [a-z]* $n\$" "$plan" || true; done
	done | awk '{s += $1} END {print s + 0}')
	[ "$zcut" -gt 0 ] || missing+=" BLKZEROOUT-cut-point-in-the-plan"
	# install_big: a window that is not the last, synced with
	# sync_file_range on the device, then a checkpoint saved after it.
	if [ "$big" = 1 ]; then
		grep -Eq '^[0-9]+ sync_file_range /dev/loop' "$WORK/trace.install_big" ||
			missing+=" sync_file_range-on-a-loop-device"
		grep -Eq '^[0-9]+ rename .*/state/resume\.json ' "$WORK/trace.install_big" ||
			missing+=" checkpoint-after-a-window"
	fi
	echo "  block-device paths in the complete runs: $zc BLKZEROOUT, $dr O_DIRECT and" \
		"$br buffered read-back preads, mincore $mres times resident, $mnon not;" \
		"$zcut cut points at a BLKZEROOUT"
	[ -z "$missing" ] || {
		echo "FAIL  --blk: never seen in the complete runs:$missing" >&2
		exit 1
	}
	check_blk_model
}

# check_blk_model: the lost-writes model really covers the loop device.
# install_fresh cut just before its fsync of slot B: killed, B holds what
# the install wrote (page cache kept); after cutrestore, B is back to the
# template byte for byte (nothing was flushed). Fails if the shim does not
# journal the block device or cutrestore cannot restore it.
check_blk_model() {
	local n rc=0 size tpl_sha killed_sha restored_sha out
	n=$(awk '$2 == "fsync" && $3 ~ /^\/dev\/loop/ {print $1; exit}' "$WORK/trace.install_fresh")
	[ -n "$n" ] || { echo "FAIL  --blk: install_fresh never fsyncs its slot" >&2; exit 1; }
	load_tpl fresh
	rm -f "$WORK/model.journal"
	# (in braces: bash's "Killed" report of the SIGKILL goes to /dev/null too)
	{ timeout 120 env CUTSHIM_DIR="$DEV" CUTSHIM_BLK="$CUTSHIM_BLK_LOOPS" LD_PRELOAD="$SHIM" \
		CUTSHIM_CUT="$n" CUTSHIM_JOURNAL="$WORK/model.journal" \
		"$TANDEM" -c "$CONF" -q install --progress=none "$WORK/v1.tnd"; } >/dev/null 2>&1 || rc=$?
	size=$(stat -c %s "$TPL/fresh/slotB.img")
	tpl_sha=$(sha256sum <"$TPL/fresh/slotB.img")
	killed_sha=$(head -c "$size" "$LOOP_B" | sha256sum)
	out=$(timeout 60 "$RESTORE" "$WORK/model.journal" "$DEV" 0)
	restored_sha=$(head -c "$size" "$LOOP_B" | sha256sum)
	echo "  lost-writes model on $LOOP_B: install killed before the slot's fsync (call $n," \
		"exit $rc), cutrestore: $out"
	if [ "$rc" != 137 ] || [ "$killed_sha" = "$tpl_sha" ] || [ "$restored_sha" != "$tpl_sha" ]; then
		echo "FAIL  --blk: the lost-writes model does not undo the unsynced writes of a loop" \
			"device (killed: $([ "$killed_sha" = "$tpl_sha" ] && echo unchanged || echo changed)," \
			"restored: $([ "$restored_sha" = "$tpl_sha" ] && echo "as the template" || echo "not as the template"))" >&2
		exit 1
	fi
}

if [ -n "$one" ]; then
	read -r scen mode n <<<"$one"
	out=$(calls "$scen") # an assignment: set -e sees its failure
	read -r _ ms <<<"$out"
	case $mode in
	timed | timedlost) echo "$scen $mode $n $(timed_delay "$n" "$ms")" >"$plan" ;;
	*) echo "$scen $mode $n" >"$plan" ;;
	esac
else
	# The plan, one "scenario mode N [delay]" line per cut point: every
	# call boundary in the kill, lost and lostrand modes, every write torn,
	# and 12 spread-out times per scenario in each timed mode.
	for scen in $(echo "$SCENARIOS" | cut -d'|' -f1); do
		out=$(calls "$scen")
		read -r total ms <<<"$out"
		[ "$total" -gt 0 ] || { echo "run.sh: $scen: no write-path call seen" >&2; exit 1; }
		for ((n = 1; n <= total; n++)); do
			for mode in kill lost lostrand; do echo "$scen $mode $n"; done
			if awk -v n="$n" '$1 == n && ($2 == "write" || $2 == "pwrite") {f = 1} END {exit !f}' \
				"$WORK/trace.$scen"; then
				echo "$scen tear $n"
			fi
		done >>"$plan"
		for ((n = 1; n <= 12; n++)); do
			echo "$scen timed $n $(timed_delay "$n" "$ms")"
			echo "$scen timedlost $n $(timed_delay "$n" "$ms")"
		done >>"$plan"
		echo "  $scen: $total write-path calls, $ms ms"
	done
	if [ "$short" = 1 ]; then
		# The sample (make check) cuts every phase of every scenario, not
		# points picked by their position in the plan: a phase is a run of
		# consecutive calls on one thing (the lock, one environment copy,
		# state.json with its temporary file and directory, a slot, the
		# zeroing of a block device's range). Each
		# is cut at its first call (kill) and at its last (lost: the
		# writes not yet synced are gone), and each scenario once at half
		# its run time (timedlost).
		for scen in $(echo "$SCENARIOS" | cut -d'|' -f1); do
			awk -v s="$scen" '
				/^@/ { next } # notes (--blk), not calls
				{ k = $3; sub(/\.tmp$/, "", k); if (k ~ /\/state$/) k = k "/state.json"
				  if ($2 ~ /^ioctl/) k = k " " $2 } # a zeroing is a phase too
				k != prev { if (last != "") print s, "lost", last; print s, "kill", $1 }
				{ prev = k; last = $1 }
				END { print s, "lost", last }' "$WORK/trace.$scen"
			grep "^$scen timedlost 6 " "$plan"
		done | sort -u -k1,1 -k3,3n -k2,2 >"$plan.short"
		mv "$plan.short" "$plan"
	fi
	echo "  $(wc -l <"$plan") cut points ($backend)"
	[ "$blk" = 0 ] || check_blk_paths
fi

# Cut points run in parallel, each worker on a device of its own; a
# single one (--one) on $WORK/dev.
jobs=$(nproc)
[ -z "$one" ] || jobs=1
if [ "$blk" = 1 ]; then
	# The devices' loop devices: first the one of $WORK/dev (--one), then
	# a pair for each worker (cutpoints.py: each claims one).
	echo "$LOOP_A $LOOP_B" >"$WORK/blk.loops"
	if [ -z "$one" ]; then
		for ((i = 1; i <= jobs; i++)); do
			if ! a=$(loop_attach "w${i}A") || ! b=$(loop_attach "w${i}B"); then
				echo "run.sh: cannot attach a loop device" >&2
				exit 2
			fi
			echo "$a $b" >>"$WORK/blk.loops"
		done
	fi
	export TORTURE_BLK=$WORK/blk.loops
fi
rc=0
python3 "$top/tests/torture/cutpoints.py" "$WORK" "$TANDEM" "$SHIM" "$RESTORE" \
	"${build#"$top"/}" "$plan" "$jobs" || rc=$?
[ -z "$one" ] || echo "device after the cut and the rerun: $DEV; complete run's calls: $WORK/trace.$scen"
[ -z "$one" ] || [ "$blk" = 0 ] ||
	echo "(--blk: its slots are copied to $DEV/slotA.img and slotB.img; the loop devices its tandem.conf names are detached)"
exit "$rc"
