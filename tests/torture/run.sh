#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh [--short] [--build DIR] [--keep] [--one SCENARIO MODE N] [--backend uboot|grub]
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
#   --short   a sample of about 60 cut points (tests/run-tests.sh)
#   --build   the build whose tandem is tortured (default build/); the shim
#             is always the non-sanitised build/torture/cutshim.so
#   --keep    keep the work directory
#   --one     run a single cut point and keep its device for inspection
#   --backend the bootloader backend of the simulated device (default
#             uboot): grub keeps the boot state in a GRUB environment
#             block (tests/lib/grubenv.py boots it as grub.cfg does), and
#             tears writes on 512-byte sector boundaries only
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
short=0 keep=0 one="" backend=uboot
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1 ;;
	--keep) keep=1 ;;
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
		echo "usage: run.sh [--short] [--build DIR] [--keep] [--one SCENARIO MODE N] [--backend uboot|grub]" >&2
		exit 2
		;;
	esac
	shift
done

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
# A preloaded library before the ASan runtime: tell ASan that is intended.
# SIGKILLed runs report no leaks, the reruns still do.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:verify_asan_link_order=0
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# On tmpfs when there is one: an fsync on a disk costs milliseconds, and
# the lost-writes model is the journal (cutshim.c), not the file system.
# (tmpfs refuses O_DIRECT, so tandem's read-back takes its buffered path.)
tmp=${TORTURE_TMPDIR:-$([ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")}
WORK=$(mktemp -d "$tmp/tandem-torture-XXXXXX")
cleanup() { [ "$keep" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT
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

# sim_boot: one power-on, as the U-Boot script does it (tests/lib/simboot.sh).
. "$(dirname "$0")/../lib/simboot.sh"

save_tpl() { # NAME: the device as it is now becomes template NAME
	rm -rf "${TPL:?}/$1"
	cp -a --sparse=always "$DEV" "$TPL/$1"
	python3 - "$TPL/$1" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
h = {s: hashlib.sha256(open(f"{d}/slot{s}.img", "rb").read()).hexdigest() for s in "AB"}
json.dump({"slots": h, "had_state": os.path.exists(f"{d}/state/state.json")},
          open(f"{d}/../{os.path.basename(d)}.json", "w"))
PY
}
load_tpl() { rm -rf "$DEV" && cp -a --sparse=always "$TPL/$1" "$DEV"; }

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
	"$top/tests/lib/simdev.sh" "$DEV" 2M
	# The factory image: the booted slot is never written, so its content
	# is what invariant 2 compares with.
	head -c 1048576 /dev/urandom >"$WORK/factory.img"
	dd if="$WORK/factory.img" of="$DEV/slotA.img" conv=notrunc status=none
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
	timeout 120 env CUTSHIM_DIR="$DEV" LD_PRELOAD="$SHIM" CUTSHIM_COUNT="$WORK/count" \
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
		# About 60 cut points: a stride through the plan samples every
		# scenario and mode.
		stride=$((($(wc -l <"$plan") + 59) / 60))
		awk -v s="$stride" 'NR % s == 1 || s == 1' "$plan" >"$plan.short"
		mv "$plan.short" "$plan"
	fi
	echo "  $(wc -l <"$plan") cut points ($backend)"
fi

# Cut points run in parallel, each worker on a device of its own; a
# single one (--one) on $WORK/dev.
jobs=$(nproc)
[ -z "$one" ] || jobs=1
rc=0
python3 "$top/tests/torture/cutpoints.py" "$WORK" "$TANDEM" "$SHIM" "$RESTORE" \
	"${build#"$top"/}" "$plan" "$jobs" || rc=$?
[ -z "$one" ] || echo "device after the cut and the rerun: $DEV; complete run's calls: $WORK/trace.$scen"
exit "$rc"
