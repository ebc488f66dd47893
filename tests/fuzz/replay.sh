#!/bin/bash
# SPDX-License-Identifier: MIT
# replay.sh BUILD_DIR: builds the fuzz targets' replay drivers into
# BUILD_DIR/fuzz-replay (make O=BUILD_DIR SANITIZE=1 fuzz-replay: gcc with
# ASan+UBSan, no libFuzzer needed) and runs every committed input of
# tests/fuzz/corpus/<target>/ through its target. A sanitizer report or a
# failed property fails that input; the driver then carries on with the
# inputs after it. Ends with "N passed, N failed" (inputs).
set -uo pipefail

build=$(cd "${1:?usage: replay.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
corpus=$top/tests/fuzz/corpus
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

make -C "$top" --no-print-directory O="$build" SANITIZE=1 fuzz-replay >/dev/null || {
	echo "replay.sh: cannot build the replay drivers" >&2
	echo "0 passed, 1 failed"
	exit 1
}
passed=0 failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for dir in "$corpus"/*/; do
	t=$(basename "$dir")
	drv=$build/fuzz-replay/fuzz_$t
	[ -x "$drv" ] || { echo "FAIL  $t: no driver $drv"; failed=$((failed + 1)); continue; }
	mapfile -t files < <(find "$dir" -maxdepth 1 -type f ! -name '.*' | LC_ALL=C sort)
	while [ "${#files[@]}" -gt 0 ]; do
		"$drv" "${files[@]}" >"$log" 2>&1
		rc=$?
		ok=$(grep -c '^ok ' "$log")
		passed=$((passed + ok))
		[ "$rc" -eq 0 ] && break
		# The input after the last one that ran through is the culprit.
		bad=${files[$ok]:-?}
		failed=$((failed + 1))
		echo "FAIL  $t: ${bad#"$top"/}"
		grep -v -e '^ok ' -e '^run ' "$log" | sed 's/^/      /' | head -40
		files=("${files[@]:$((ok + 1))}")
	done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
