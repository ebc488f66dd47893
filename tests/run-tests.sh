#!/bin/bash
# SPDX-License-Identifier: MIT
# run-tests.sh BUILD_DIR: runs every unit test binary and integration test
# script built into BUILD_DIR (normally the ASan+UBSan build) and prints a
# closing "N passed, N failed" line. Longer suites (QEMU end-to-end) run
# here in their short form when present.
set -uo pipefail

build=$(cd "${1:?usage: run-tests.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0 failed=0 failures=""

run() { # NAME CMD...
	local name=$1 log
	shift
	log=$(mktemp)
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS  $name"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		echo "FAIL  $name"
		sed 's/^/      /' "$log"
	fi
	rm -f "$log"
}

echo "== unit tests ($build/tests)"
units=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	units=$((units + 1))
	run "unit/${t##*/}" "$t"
done
# No binaries (a build without unit-tests) is a failure, not a pass.
[ "$units" -gt 0 ] || run "unit/none-built" sh -c "echo 'no unit test binaries in $build/tests (make unit-tests)'; false"

echo "== integration tests"
for t in "$top"/tests/integration/test_*.sh; do
	run "integration/${t##*/}" env BUILD="$build" "$t"
done
run "fuzz/replay" "$top/tests/fuzz/replay.sh" "$build"
echo "== every board configuration compiles"
run "build/configs" "$top/tests/build-configs.sh" "$build/configs"

if [ -x "$top/tests/e2e/run.sh" ]; then
	echo "== end-to-end (short form; make check-e2e runs them all)"
	run "e2e/short" "$top/tests/e2e/run.sh" --short
	# The same updater scenarios on GRUB for BIOS (x86, SeaBIOS), with the
	# power cuts at GRUB's and the updater's environment store.
	run "e2e/grub-short" "$top/tests/e2e/run.sh" --short --backend grub
fi
[ ! -x "$top/tests/torture/run.sh" ] || run "torture/short" "$top/tests/torture/run.sh" --short --build "$build" # power cuts (make check-torture: all); ASan tandem, non-ASan shim
[ ! -x "$top/tests/torture/run.sh" ] || run "torture/short-grub" "$top/tests/torture/run.sh" --short --backend grub --build "$build" # the GRUB block's stores
# The same with the slots on loop devices (root, losetup; fails, never skips, without)
[ ! -x "$top/tests/torture/run.sh" ] || run "torture/short-blk" "$top/tests/torture/run.sh" --short --blk --build "$build"

echo
[ -z "$failures" ] || echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
