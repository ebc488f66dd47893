#!/bin/bash
# SPDX-License-Identifier: MIT
#
# mkimage.sh SIZE_MIB OUT.ext4 [CONTENT_MIB]
#
# Builds an ext4 image of SIZE_MIB holding about CONTENT_MIB (default
# SIZE_MIB * 300 / 512, the ratio of issue 2's "300 MiB of real files in a
# 512 MiB filesystem") of real files taken from this machine's /usr:
# binaries, shared libraries, Python modules, data files, so that the
# payload compresses like a root filesystem does, and the free space is
# zeros like a freshly made image.
#
# The files are picked by a byte-uniform stride over the sorted list of
# /usr/{bin,sbin,lib,share} (so every part of /usr is represented, not
# just the first directories alphabetically), copied into a tree with all
# times clamped, and put into the image with a fixed UUID, hash seed and
# creation time: two runs on the same machine give the same bytes. On a
# machine with a different /usr the bytes differ; images.txt records the
# sha256 so tables from different machines are not compared blindly.
#
# Env: BENCH_SRC (default /usr), BENCH_EPOCH (default 1767225600).
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

die() { echo "mkimage: error: $*" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: $0 SIZE_MIB OUT.ext4 [CONTENT_MIB]" >&2; exit 2; }
size_mib=$1
out=$(realpath -m "$2")
content_mib=${3:-$((size_mib * 300 / 512))}
src=${BENCH_SRC:-/usr}
epoch=${BENCH_EPOCH:-1767225600}
uuid=7a1d3c52-0b6e-4f88-9e21-5c3a7d9b1e40
seed=3f6b2a19-8c4d-4e7a-b5f1-2d9c0e8a6b37

for t in mkfs.ext4 debugfs e2fsck find awk cp; do
	command -v "$t" >/dev/null || die "missing tool $t (apt-get install e2fsprogs findutils)"
done

work=$out.work
rm -rf "$work" "$out.tmp"
mkdir -p "$work/tree"

# Candidate files: regular, readable, no names that debugfs could not quote,
# at most 32 MiB each, and at most an eighth of the image, so that no
# single file dominates a small image (or no longer fits in it once /usr
# grew: a 64 MiB image failed on a 30 MiB Mesa driver).
max_mib=$((size_mib / 8 < 32 ? size_mib / 8 : 32))
(cd "$src" && find bin sbin lib share -xdev -type f -readable -size "-${max_mib}M" \
	-printf '%s %p\n' 2>/dev/null) | grep -v '[[:cntrl:]"\\]' | sort -k2 >"$work/all.txt" || true
[ -s "$work/all.txt" ] || die "no files found under $src"

# Systematic sampling: one file in every total/budget of the sorted list,
# so every part of /usr is represented (not just the first directories
# alphabetically) and the expected content is the budget.
budget=$((content_mib * 1024 * 1024))
awk -v budget="$budget" '
	{ total += $1; line[NR] = substr($0, index($0, " ") + 1) }
	END {
		f = budget / total; credit = 0
		for (i = 1; i <= NR; i++) {
			credit += f
			if (credit >= 1 || f >= 1) { credit -= 1; print line[i] }
		}
	}' "$work/all.txt" >"$work/pick.txt"

# The files live under $src relative to their top directory (bin/, lib/..).
# Copy them into tree/usr/... preserving the mode but not the owner
# (root-owned in the image: root_owner below) or the times (clamped).
(cd "$src" && tr '\n' '\0' <"$work/pick.txt" |
	xargs -0 cp --parents -t "$work/tree" --preserve=mode --no-dereference)
mkdir -p "$work/root/usr"
mv "$work/tree"/* "$work/root/usr/" 2>/dev/null || true
find "$work/root" -print0 | xargs -0 touch -h -d "@$epoch"

truncate -s "${size_mib}M" "$out.tmp"
E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -t ext4 -b 4096 -I 256 -i 8192 -m 0 -L bench \
	-U "$uuid" -E "hash_seed=$seed,root_owner=0:0,nodiscard,lazy_itable_init=0" \
	-d "$work/root" "$out.tmp" >"$work/mkfs.log" 2>&1 ||
	{ cat "$work/mkfs.log" >&2; die "mkfs.ext4 failed"; }
# mkfs.ext4 1.47.0 copies atime/ctime from the host tree: pin them.
(cd "$work/root" && find . -mindepth 1 -printf '%P\n') |
	awk -v t="$epoch" '{ printf "sif \"/%s\" atime @%d\nsif \"/%s\" ctime @%d\n", $0, t, $0, t }' \
		>"$work/debugfs.cmds"
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f "$work/debugfs.cmds" "$out.tmp" >"$work/debugfs.log" 2>&1 ||
	die "debugfs failed (see $work/debugfs.log)"
E2FSPROGS_FAKE_TIME=$epoch e2fsck -fn "$out.tmp" >"$work/fsck.log" 2>&1 ||
	{ cat "$work/fsck.log" >&2; die "e2fsck found problems"; }
files=$(wc -l <"$work/pick.txt")
used=$(du -sm --apparent-size "$work/root" | cut -f1)
mv -f "$out.tmp" "$out"
rm -rf "$work"
echo "mkimage: $out: ${size_mib} MiB ext4, $files files, ${used} MiB of content from $src"
