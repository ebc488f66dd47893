#!/bin/bash
# SPDX-License-Identifier: MIT
# check-fresh.sh LOG_DIR: make check-fresh. Runs what a new user runs, as
# the very first commands on a fresh, minimal Debian bookworm (git and
# make only), with the workspace's fresh-machine.sh:
#   1. make demo && make check   (the README's two commands)
#   2. make check                (alone: it must install what it needs)
#   3. make check-e2e            (only with CHECK_FRESH_E2E=1: the QEMU suite)
# Each run's output goes to LOG_DIR/NAME.log; one line per run says
# PASS or FAIL and how long it took. fresh-machine.sh clones the
# committed HEAD: uncommitted changes are not part of the runs. Needs
# root (debootstrap, chroot); each run takes minutes.
set -uo pipefail

out=${1:?usage: check-fresh.sh LOG_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)

fm=$("$top/scripts/find-fresh-machine.sh" 2>&1) || { echo "check-fresh: $fm" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "check-fresh: needs root (fresh-machine.sh uses debootstrap and chroot)" >&2; exit 2; }
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
	echo "check-fresh: uncommitted changes are not tested: the runs clone HEAD ($(git -C "$top" rev-parse --short HEAD))"

mkdir -p "$out"
out=$(cd "$out" && pwd)
failed=0 summary=""

run() { # NAME COMMAND...
	local name=$1 log=$out/$1.log t0=$SECONDS rc=0 took
	shift
	echo "  FRESH   $name: ${*:-make demo && make check} (log: $log)"
	"$fm" "$top" "$@" >"$log" 2>&1 || rc=$?
	took=$(((SECONDS - t0) / 60))m$(((SECONDS - t0) % 60))s
	if [ "$rc" -eq 0 ]; then
		summary="$summary  PASS  $name ($took)
"
	else
		failed=$((failed + 1))
		summary="$summary  FAIL  $name ($took, exit $rc; log: $log)
"
		tail -n 25 "$log" | sed 's/^/        | /'
	fi
}

run demo-check
run check make check
[ "${CHECK_FRESH_E2E:-0}" = 1 ] && run check-e2e make check-e2e

echo "check-fresh on $(git -C "$top" rev-parse --short HEAD):"
printf '%s' "$summary"
[ "$failed" -eq 0 ]
