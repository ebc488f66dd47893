#!/bin/sh
# SPDX-License-Identifier: MIT
# find-fresh-machine.sh: prints the path of the workspace's
# fresh-machine.sh (a fresh, minimal Debian bookworm in a chroot; make
# check-fresh, make check-deb), or says where it looked and fails.
# It lives in the workspace's shared directory, beside the checkout
# (../shared), or where TANDEM_SHARED says (as for tests/delta/bench.sh's
# image pair).
top=$(cd "$(dirname "$0")/.." && pwd)
for d in ${TANDEM_SHARED:-} "$top/../shared" "$(dirname "$top")/../shared"; do
	[ -x "$d/fresh-machine.sh" ] && { echo "$(cd "$d" && pwd)/fresh-machine.sh"; exit 0; }
done
echo "no fresh-machine.sh in ../shared beside the checkout ($(dirname "$top")/shared);" \
	"set TANDEM_SHARED=DIR to the directory holding it" >&2
exit 2
