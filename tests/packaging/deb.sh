#!/bin/bash
# SPDX-License-Identifier: MIT
# deb.sh [LOG_DIR]: make check-deb. The Debian packages, from a fresh
# clone, on a fresh minimal Debian bookworm (the workspace's
# fresh-machine.sh, as make check-fresh uses it; root, minutes):
#   1. build-dependencies from debian/control, dpkg-buildpackage -b,
#      lintian (no errors allowed), and the arm64 packages through
#      Debian's cross toolchain (DEB_ARM64=0 skips this);
#   2. everything step 1 installed is purged again, so the install below
#      proves the packages' own Depends;
#   3. the packages are installed with apt-get, and tests/demo.sh runs
#      the installed /usr/bin/tandem and /usr/bin/tandem-image; then an
#      install with Debian's layout: /etc/tandem/tandem.conf, the keyring
#      in /etc/tandem/keys, the state in /var/lib/tandem;
#   4. dpkg --purge: the file system must be as it was before step 3,
#      name for name (no files, no /etc/tandem, no state, no systemd
#      state), once the dependencies pulled in are autoremoved.
# Ends with "N passed, N failed". It clones the committed HEAD: an
# uncommitted change is not part of the run.
#
# deb.sh --inside runs the steps themselves, in the fresh machine; it
# installs and purges packages, so it refuses to run without that flag.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)

if [ "${1:-}" != --inside ]; then
	out=${1:-$top/build/check-deb}
	fm=$("$top/scripts/find-fresh-machine.sh" 2>&1) || { echo "check-deb: $fm" >&2; exit 2; }
	[ "$(id -u)" -eq 0 ] || { echo "check-deb: needs root (fresh-machine.sh uses debootstrap and chroot)" >&2; exit 2; }
	[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
		echo "check-deb: uncommitted changes are not tested: the run clones HEAD ($(git -C "$top" rev-parse --short HEAD))"
	mkdir -p "$out"
	log=$(cd "$out" && pwd)/deb.log
	echo "  FRESH   Debian packages: build, lintian, install, demo, purge (log: $log)"
	"$fm" "$top" env DEB_ARM64="${DEB_ARM64:-1}" tests/packaging/deb.sh --inside >"$log" 2>&1
	rc=$?
	grep -E '^  (PASS|FAIL|INFO) |^[0-9]+ passed, [0-9]+ failed$' "$log"
	[ "$rc" -eq 0 ] || { echo "check-deb: failed (exit $rc); the last lines of $log:" >&2; tail -n 30 "$log" | sed 's/^/        | /' >&2; }
	exit "$rc"
fi

# ------------------------------------------------------------ in the fresh machine
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "deb: --inside needs root" >&2; exit 2; }
work=$(mktemp -d /tmp/tandem-deb.XXXXXX)
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "  PASS  $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $*"; }
check() { # DESCRIPTION COMMAND...: one result line
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}
step() { printf '\n== %s\n' "$*"; }
# Runs a long command with its output in a log; its tail when it fails.
logged() { # NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$work/$name.log" 2>&1; then return 0; fi
	tail -n 40 "$work/$name.log"
	return 1
}
installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}:${Architecture}\n' | awk '$1 == "ii" { print $2 }' | sort; }
# The file system by name, without what changes on its own (logs, caches,
# apt's lists) and without the places the test writes to.
snapshot() {
	find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
		-o -path /src -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \) -prune -o -print | sort
}

step "1. build from a fresh clone"
git clone -q "$top" "$work/tandem"
src=$work/tandem
installed >"$work/before-build"
logged build-deps sh -c "apt-get install -y --no-install-recommends dpkg-dev lintian && cd '$src' && apt-get build-dep -y ./" ||
	{ fail "build-dependencies from debian/control"; finish; }
if (cd "$src" && logged build dpkg-buildpackage -us -uc -b); then
	pass "dpkg-buildpackage -us -uc -b: $(cd "$work" && echo *.deb)"
else
	fail "dpkg-buildpackage -us -uc -b"
	finish
fi
arch=$(dpkg --print-architecture)
lintian_run() { # CHANGES
	local tags
	lintian --fail-on error --tag-display-limit 0 "$1" >"$work/lintian.log" 2>&1
	local rc=$?
	tags=$(grep -v 'root privileges' "$work/lintian.log")
	[ -z "$tags" ] || printf '%s\n' "$tags" | sed 's/^/        /'
	echo "        lintian: $(grep -c '^E:' "$work/lintian.log") errors," \
		"$(grep -c '^W:' "$work/lintian.log") warnings"
	return $rc
}
check "lintian: no errors ($arch)" lintian_run "$work/tandem_"*"_$arch.changes"

if [ "${DEB_ARM64:-1}" = 1 ]; then
	dpkg --add-architecture arm64
	if logged arm64-deps sh -c "apt-get update -qq && apt-get install -y --no-install-recommends crossbuild-essential-arm64 &&
			cd '$src' && apt-get build-dep -y -a arm64 -P nocheck ./" &&
		(cd "$src" && logged build-arm64 dpkg-buildpackage -aarm64 -Pnocheck -us -uc -b); then
		pass "dpkg-buildpackage -aarm64 -Pnocheck: $(cd "$work" && echo *_arm64.deb)"
		dpkg-deb --fsys-tarfile "$work"/tandem_*_arm64.deb | tar -xO ./usr/bin/tandem >"$work/tandem-arm64"
		check "the arm64 tandem is an aarch64 program" \
			sh -c "od -A n -t x2 -j 18 -N 2 '$work/tandem-arm64' | grep -q 00b7"
		check "lintian: no errors (arm64)" lintian_run "$work/tandem_"*_arm64.changes
	else
		fail "the arm64 cross build"
	fi
else
	echo "  INFO  DEB_ARM64=0: the arm64 cross build skipped"
fi

step "2. purge what the build installed"
installed >"$work/after-build"
added=$(comm -13 "$work/before-build" "$work/after-build")
# arm64's libc6 and its kin are Essential for apt, though nothing of this
# amd64 system needs them: only they are removed with that allowed.
foreign=$(printf '%s\n' $added | grep ":arm64$" || true)
native=$(printf '%s\n' $added | grep -v ":arm64$" || true)
logged purge-build-deps sh -c "{ [ -z '$(echo $foreign)' ] || apt-get purge -y --allow-remove-essential $(echo $foreign); } &&
		apt-get purge -y $(echo $native) && apt-get autoremove --purge -y" ||
	fail "purging the build-dependencies"
dpkg --remove-architecture arm64 2>/dev/null || true
check "no build-dependency left (libmbedtls-dev, debhelper)" \
	sh -c '! dpkg-query -W -f="\${db:Status-Abbrev}\n" libmbedtls-dev debhelper 2>/dev/null | grep -q "^ii"'
# what the demo needs besides the packages (ext4 images, the environment)
logged demo-deps "$top/scripts/deps.sh" --for demo || fail "the demo's tools (scripts/deps.sh --for demo)"

step "3. install, demo, Debian's layout"
snapshot >"$work/fs-before"
debs=$(ls "$work"/tandem_*_"$arch".deb "$work"/tandem-image_*_"$arch".deb)
if logged install apt-get install -y --no-install-recommends $debs; then
	pass "apt-get install $(echo $debs | xargs -n1 basename | xargs)"
else
	fail "apt-get install of the packages"
	finish
fi
dpkg -L tandem tandem-image >"$work/files"
check "/usr/bin/tandem --version: $(/usr/bin/tandem --version 2>&1 | head -n1)" /usr/bin/tandem --version
check "/usr/bin/tandem-image links its libraries" sh -c '! ldd /usr/bin/tandem-image | grep -q "not found"'
check "/usr/bin/tandem links its libraries" sh -c '! ldd /usr/bin/tandem | grep -q "not found"'
check "man pages tandem(1), tandem-image(1)" \
	test -f /usr/share/man/man1/tandem.1.gz -a -f /usr/share/man/man1/tandem-image.1.gz
check "conffiles: /etc/tandem/tandem.conf.example, nothing else" \
	test "$(dpkg-query -W -f='${Conffiles}' tandem tandem-image | awk 'NF { print $1 }')" = /etc/tandem/tandem.conf.example
check "/etc/tandem/keys/ is there and empty" sh -c '[ -d /etc/tandem/keys ] && [ -z "$(ls -A /etc/tandem/keys)" ]'
check "the systemd units are installed, not enabled" sh -c \
	'[ -f /lib/systemd/system/tandem-confirm.service ] && [ -f /lib/systemd/system/tandem-daemon.service ] &&
	 ! ls /etc/systemd/system/*.wants/tandem-* 2>/dev/null'
check "the BusyBox init script is an example" test -x /usr/share/doc/tandem/examples/S99tandem-confirm

if (cd "$top" && export TANDEM_BINDIR=/usr/bin && logged demo tests/demo.sh "$work/demo-build") &&
	grep -q '^\$ /usr/bin/tandem -c .* install ' "$work/demo.log" &&
	grep -q '^\$ /usr/bin/tandem-image build ' "$work/demo.log"; then
	pass "tests/demo.sh with /usr/bin/tandem and /usr/bin/tandem-image"
else
	fail "tests/demo.sh with /usr/bin/tandem and /usr/bin/tandem-image"
fi
# Debian's layout: the default configuration path, keyring and state
# directory, on the demo's simulated device.
dev=$work/demo-build/demo/device
grep -v -e '"keyring"' -e '"state_dir"' -e '"health_dir"' "$dev/tandem.conf" >/etc/tandem/tandem.conf
cp "$dev/keys/release.pem" /etc/tandem/keys/
mkdir -p /etc/tandem/health.d
printf '#!/bin/sh\nexit 0\n' >/etc/tandem/health.d/10-ok && chmod +x /etc/tandem/health.d/10-ok
if logged layout-install /usr/bin/tandem install --progress=none "$work/demo-build/demo/update-1.0.tnd" &&
	[ -f /var/lib/tandem/state.json ]; then
	pass "tandem install with /etc/tandem/tandem.conf, /etc/tandem/keys, state in /var/lib/tandem"
else
	fail "tandem install with /etc/tandem/tandem.conf, /etc/tandem/keys, state in /var/lib/tandem"
fi

step "4. purge"
if logged purge sh -c "dpkg --purge tandem tandem-image && apt-get autoremove --purge -y"; then
	pass "dpkg --purge tandem tandem-image"
else
	fail "dpkg --purge tandem tandem-image"
fi
# dpkg -L's directories that were there before (/usr/bin) stay, of course;
# /lib is /usr/lib on a merged-/usr system, and the snapshot has real paths.
leftovers() {
	local f left=0
	while read -r f; do
		[ -e "$f" ] || continue
		[ -d "$f" ] && grep -qxF "$(readlink -f "$f")" "$work/fs-before" && continue
		echo "        left: $f"
		left=1
	done <"$work/files"
	return $left
}
check "no file of the packages left" leftovers
check "no /etc/tandem, no /var/lib/tandem" sh -c '[ ! -e /etc/tandem ] && [ ! -e /var/lib/tandem ]'
snapshot >"$work/fs-after"
if diff -u "$work/fs-before" "$work/fs-after" >"$work/fs.diff"; then
	pass "the file system is as before the install, name for name"
else
	fail "the file system is as before the install: the differences"
	grep '^[-+]/' "$work/fs.diff" | head -n 30 | sed 's/^/        /'
fi
finish
