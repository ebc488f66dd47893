#!/bin/bash
# SPDX-License-Identifier: MIT
# build-configs.sh OUT_DIR: builds every board's defconfig (with the host
# compiler: a check that each combination of options compiles, not a
# cross build) and the simulated board without CONFIG_DELTA_XZ (host
# tools that never rebuild xz streams), each in OUT_DIR/NAME with its own
# KCONFIG_CONFIG, so the top-level .config is never touched. A
# combination of options nobody builds by hand breaks here, not on a
# customer's board.
set -euo pipefail

out=${1:?usage: build-configs.sh OUT_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

build() { # NAME CONFIG
	echo "  BUILD   $1"
	make -s -C "$top" --no-print-directory -j"$jobs" O="$out/$1" KCONFIG_CONFIG="$2" all
}

for d in "$top"/board-configs/*/; do
	name=$(basename "$d")
	cfg=$out/$name.config
	make -s -C "$top" --no-print-directory KCONFIG_CONFIG="$cfg" "${name}_defconfig" >/dev/null
	build "$name" "$cfg"
done
# the simulated board, whose host tools use the delta encoder, without xz rebuilding
cfg=$out/sim-no-delta-xz.config
sed 's/^CONFIG_DELTA_XZ=y$/# CONFIG_DELTA_XZ is not set/' "$out/sim.config" >"$cfg"
grep -q '^# CONFIG_DELTA_XZ is not set$' "$cfg" || { echo "sim.config has no CONFIG_DELTA_XZ=y" >&2; exit 1; }
build sim-no-delta-xz "$cfg"
grep -q '^# CONFIG_DELTA_XZ is not set' "$out/sim-no-delta-xz/include/config/auto.conf" ||
	{ echo "sim-no-delta-xz: CONFIG_DELTA_XZ is still set" >&2; exit 1; }
echo "all configurations built"
