#!/bin/bash
# SPDX-License-Identifier: MIT
# integrations.sh [WORK_DIR]: make check-integrations. Checks
# integrations/ with the tools of the projects they plug into, on the
# committed HEAD (a clone), without a network:
#   Buildroot: utils/check-package on the br2-external (no warning);
#     make defconfig with it, every option and the fewest, and what
#     tandem.mk derives from them (printvars, tandem-show-info);
#     board/tandem/post-image.sh on two ext4 images: a full and a delta
#     bundle that tandem-image verify accepts, and a clear stop without
#     a signing key;
#   Yocto: bitbake-layers add-layer, bitbake -p, bitbake -e of tandem,
#     tandem-native and of an image with the tandem-bundle class, whose
#     task sits between the ext4 image and do_image_complete (bitbake -g).
# Nothing is built with Buildroot or bitbake: that needs the internet.
#
# The projects are not part of Tandem. Point at a source tree, or at a
# bare git directory (the snapshot is checked out of it), of each:
#   TANDEM_BUILDROOT  Buildroot (its HEAD; TANDEM_BUILDROOT_REF)
#   TANDEM_POKY       poky, at TANDEM_POKY_REF (default scarthgap)
#   TANDEM_META_OE    meta-openembedded, at TANDEM_POKY_REF too
# Without one of them the run fails, saying which. Needs root for the
# host packages (scripts/deps.sh --for integrations) and the
# en_US.UTF-8 locale bitbake wants; bitbake refuses root, so it runs as
# TANDEM_BITBAKE_USER (default builder, created when missing).
# Ends with "N passed, N failed". Not part of make check.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$top/build/check-integrations}
py=${PYTHON:-/usr/bin/python3}
user=${TANDEM_BITBAKE_USER:-builder}

missing=""
for v in TANDEM_BUILDROOT TANDEM_POKY TANDEM_META_OE; do
	[ -n "${!v:-}" ] && [ -d "${!v}" ] || missing="$missing $v"
done
if [ -n "$missing" ]; then
	echo "check-integrations: set$missing to a source tree or a bare git directory of" \
		"Buildroot, poky and meta-openembedded (tests/packaging/integrations.sh says more)" >&2
	exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "check-integrations: needs root (host packages, the locale, the bitbake user)" >&2; exit 2; }
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
	echo "check-integrations: uncommitted changes are not checked: the run clones HEAD ($(git -C "$top" rev-parse --short HEAD))"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "  PASS  $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $*"; }
check() { # DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
# Runs a command with its output in a log; its tail when it fails.
logged() { # NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$work/$name.log" 2>&1; then return 0; fi
	tail -n 30 "$work/$name.log" | sed 's/^/        | /'
	return 1
}
has() { grep -qE -- "$2" "$work/$1"; } # LOG REGEX

"$top/scripts/deps.sh" --for kconfig,build,demo,integrations || exit 2
if ! locale -a 2>/dev/null | grep -qix 'en_US.utf-\?8'; then
	echo "check-integrations: generating the en_US.UTF-8 locale (bitbake needs it)"
	sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen && locale-gen >/dev/null || exit 2
fi
id "$user" >/dev/null 2>&1 || { echo "check-integrations: adding the user $user for bitbake"; useradd -m "$user" || exit 2; }

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
# A tree from a source tree (used as it is) or a bare git directory.
tree() { # NAME DIR REF
	if [ -d "$2/.git" ] || [ ! -f "$2/HEAD" ]; then
		echo "$2"
	else
		mkdir -p "$work/$1" && git --git-dir="$2" archive "$3" | tar -x -C "$work/$1" && echo "$work/$1"
	fi
}
br=$(tree buildroot "$TANDEM_BUILDROOT" "${TANDEM_BUILDROOT_REF:-HEAD}") || { echo "no Buildroot tree" >&2; exit 2; }
poky=$(tree poky "$TANDEM_POKY" "${TANDEM_POKY_REF:-scarthgap}") || { echo "no poky tree" >&2; exit 2; }
oe=$(tree meta-openembedded "$TANDEM_META_OE" "${TANDEM_POKY_REF:-scarthgap}") || { echo "no meta-openembedded tree" >&2; exit 2; }
git clone -q "$top" "$work/tandem"
src=$work/tandem
branch=$(git -C "$src" branch --show-current)

echo "== Buildroot ($(git --git-dir="$TANDEM_BUILDROOT" describe --always 2>/dev/null || echo "$br"))"
ext=$src/integrations/buildroot
check "utils/check-package -b: no warning" sh -c \
	"cd '$br' && find '$ext' -type f ! -name '*.md' | xargs '$py' utils/check-package -b >'$work/check-package.log' 2>&1 &&
	 grep -q '^0 warnings generated' '$work/check-package.log' || { cat '$work/check-package.log'; false; }"

brconfig() { # NAME: make defconfig from $work/NAME.defconfig, then the variables
	logged "br-$1" make -C "$br" O="$work/br-$1" BR2_EXTERNAL="$ext" BR2_DEFCONFIG="$work/$1.defconfig" defconfig &&
		make -s -C "$br" O="$work/br-$1" printvars \
			VARS='TANDEM_KCONFIG TANDEM_FINAL_DEPENDENCIES TANDEM_SITE TANDEM_UPD_LDLIBS' >"$work/br-$1.vars" 2>&1 &&
		make -s -C "$br" O="$work/br-$1" tandem-show-info >"$work/br-$1.info" 2>&1
}
cat >"$work/all.defconfig" <<EOF
BR2_aarch64=y
BR2_TOOLCHAIN_BUILDROOT_GLIBC=y
BR2_INIT_SYSTEMD=y
BR2_PACKAGE_TANDEM=y
BR2_PACKAGE_TANDEM_DAEMON=y
BR2_PACKAGE_LIBCURL=y
BR2_PACKAGE_OPENSSL=y
EOF
cat >"$work/fewest.defconfig" <<EOF
BR2_arm=y
BR2_cortex_a8=y
BR2_PACKAGE_TANDEM=y
BR2_PACKAGE_TANDEM_INSTALL_THREADS=1
# BR2_PACKAGE_TANDEM_UBOOT is not set
# BR2_PACKAGE_TANDEM_LIBDEFLATE is not set
BR2_PACKAGE_TANDEM_SHA256_MBEDTLS=y
# BR2_PACKAGE_TANDEM_DELTA is not set
# BR2_PACKAGE_TANDEM_PROGRESS_TTY is not set
# BR2_PACKAGE_TANDEM_HTTP is not set
# BR2_PACKAGE_TANDEM_SERIAL is not set
# BR2_PACKAGE_TANDEM_PROVISION is not set
EOF
if brconfig all; then
	check "every option: the packages they select are on" \
		sh -c "for p in LIBUBOOTENV LIBDEFLATE NETTLE XZ LIBCURL MBEDTLS CJSON; do grep -qx BR2_PACKAGE_\$p=y '$work/br-all/.config' || exit 1; done"
	check "every option: Tandem's Kconfig from them" has br-all.vars \
		'^TANDEM_KCONFIG=CONFIG_UPDATER=y CONFIG_IMAGE_TOOLS=n CONFIG_INSTALL_THREADS=2 CONFIG_READBACK_WINDOW_MIB=16 CONFIG_DELTA=y CONFIG_DELTA_XZ=y CONFIG_PROGRESS_TTY=y CONFIG_SERIAL=y CONFIG_PROVISION=y CONFIG_BOOTLOADER_UBOOT=y CONFIG_INFLATE_LIBDEFLATE=y CONFIG_HTTP=y CONFIG_SHA256_NETTLE=y$'
	check "every option: dependencies (tandem-show-info)" sh -c \
		"for d in host-python-kconfiglib host-python3 libubootenv libdeflate nettle xz libcurl mbedtls cjson zlib; do grep -q \"\\\"\$d\\\"\" '$work/br-all.info' || exit 1; done"
	check "every option: libyaml for the static libubootenv" has br-all.vars '^TANDEM_UPD_LDLIBS=-ldl -lyaml -lz$'
	check "TANDEM_SITE is the Tandem tree" has br-all.vars "^TANDEM_SITE=$src\$"
else
	fail "make defconfig with every option"
fi
if brconfig fewest; then
	check "the fewest options: Tandem's Kconfig from them" has br-fewest.vars \
		'^TANDEM_KCONFIG=CONFIG_UPDATER=y CONFIG_IMAGE_TOOLS=n CONFIG_INSTALL_THREADS=1 CONFIG_READBACK_WINDOW_MIB=16 CONFIG_DELTA=n CONFIG_DELTA_XZ=n CONFIG_PROGRESS_TTY=n CONFIG_SERIAL=n CONFIG_PROVISION=n CONFIG_BOOTLOADER_UBOOT=n CONFIG_INFLATE_LIBDEFLATE=n CONFIG_HTTP=n CONFIG_SHA256_MBEDTLS=y$'
	check "the fewest options: no optional library" sh -c \
		"! grep -qE '\"(libubootenv|libdeflate|nettle|xz|libcurl|openssl)\"' '$work/br-fewest.info'"
else
	fail "make defconfig with the fewest options"
fi

# post-image.sh with a host tandem-image built from the clone, as a
# Buildroot build would call it (BR2_CONFIG, BINARIES_DIR).
bin=$work/post-image/images
mkdir -p "$bin" "$work/post-image/tree" "$work/post-image/keys" "$work/host"
post_image() { # CONFIG: as Buildroot calls it, with BR2_CONFIG and BINARIES_DIR
	BR2_CONFIG=$1 TANDEM_BUNDLE_VERSION=1.1 "$ext/board/tandem/post-image.sh" "$bin"
}
full_and_delta() {
	post_image "$work/post-image/.config" >"$work/post-image.log" 2>&1 &&
		[ -f "$bin/tandem-1.1.tnd" ] && [ -f "$bin/tandem-1.1.delta.tnd" ] && return 0
	sed 's/^/        | /' "$work/post-image.log"
	return 1
}
no_key_stops() {
	local out
	out=$(post_image "$work/post-image/nokey.config" 2>&1) && return 1
	grep -q 'set BR2_TANDEM_BUNDLE_KEY' <<<"$out"
}
if logged host-tool make -C "$src" O="$work/host" KCONFIG_CONFIG="$work/host/.config" all &&
	"$work/host/tandem-image" keygen --out "$work/post-image/release.key" --pub "$work/post-image/keys/release.pem" >/dev/null; then
	for v in 1.0 1.1; do
		echo "$v" >"$work/post-image/tree/version"
		head -c 1M /dev/urandom >"$work/post-image/tree/payload-$v"
		mkfs.ext4 -q -F -d "$work/post-image/tree" "$work/post-image/rootfs-$v.ext4" 8M >/dev/null
	done
	cp "$work/post-image/rootfs-1.1.ext4" "$bin/rootfs.ext4"
	cat >"$work/post-image/.config" <<EOF
BR2_TANDEM_BUNDLE_KEY="$work/post-image/release.key"
BR2_TANDEM_BUNDLE_COMPATIBLE="myboard"
BR2_TANDEM_BUNDLE_IMAGE="rootfs.ext4"
BR2_TANDEM_BUNDLE_VERSION="1.0"
BR2_TANDEM_BUNDLE_BASE="$work/post-image/rootfs-1.0.ext4"
BR2_TANDEM_IMAGE="$work/host/tandem-image"
EOF
	check "post-image.sh: tandem-1.1.tnd and tandem-1.1.delta.tnd" full_and_delta
	check "the bundles verify; the delta rebuilds 1.1 from 1.0" sh -c \
		"'$work/host/tandem-image' verify --keyring '$work/post-image/keys' '$bin/tandem-1.1.tnd' >/dev/null &&
		 '$work/host/tandem-image' verify --keyring '$work/post-image/keys' \
			--base '$work/post-image/rootfs-1.0.ext4' '$bin/tandem-1.1.delta.tnd' >/dev/null &&
		 '$work/host/tandem-image' inspect '$bin/tandem-1.1.delta.tnd' | grep -q 'version: *1.1'"
	sed '/BR2_TANDEM_BUNDLE_KEY/d' "$work/post-image/.config" >"$work/post-image/nokey.config"
	check "post-image.sh without a key stops and says so" no_key_stops
else
	fail "a host tandem-image for post-image.sh"
fi

echo "== Yocto (poky $(git --git-dir="$TANDEM_POKY" describe --always "${TANDEM_POKY_REF:-scarthgap}" 2>/dev/null || echo "$poky"))"
chown -R "$user" "$work"
as_user() { su "$user" -s /bin/bash -c "cd '$work' && . '$poky/oe-init-build-env' yocto >/dev/null && $*"; }
if logged yocto-layers as_user "bitbake-layers add-layer '$oe/meta-oe' '$oe/meta-python' '$oe/meta-networking' '$src/integrations/meta-tandem'"; then
	pass "bitbake-layers add-layer meta-oe meta-python meta-networking meta-tandem"
else
	fail "bitbake-layers add-layer ... meta-tandem"
	finish
fi
cat >>"$work/yocto/conf/local.conf" <<EOF
# integrations.sh: parse only, no network
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
TANDEM_GIT_BRANCH = "$branch"
IMAGE_CLASSES += "tandem-bundle"
TANDEM_SIGNING_KEY = "$work/release.key"
EOF
chown "$user" "$work/yocto/conf/local.conf"
check "bitbake -p (takes minutes)" logged bitbake-p as_user "bitbake -p"
if logged bitbake-e-tandem as_user "bitbake -e tandem"; then
	e=bitbake-e-tandem.log
	check "tandem: PACKAGECONFIG, all features" has $e '^PACKAGECONFIG="uboot libdeflate sha256-nettle delta delta-xz progress http serial provision"$'
	check "tandem: Kconfig from PACKAGECONFIG" sh -c "grep '^PACKAGECONFIG_CONFARGS=' '$work/$e' >'$work/confargs' &&
		for o in BOOTLOADER_UBOOT=y INFLATE_LIBDEFLATE=y SHA256_NETTLE=y DELTA=y DELTA_XZ=y PROGRESS_TTY=y \
			HTTP=y SERIAL=y PROVISION=y IMAGE_TOOLS=n; do grep -qw CONFIG_\$o '$work/confargs' || exit 1; done"
	check "tandem: DEPENDS" sh -c "grep '^DEPENDS=' '$work/$e' | grep -q 'python3-kconfiglib-native mbedtls zlib cjson' &&
		for d in libubootenv libyaml libdeflate nettle xz curl; do grep '^DEPENDS=' '$work/$e' | grep -qw \$d || exit 1; done"
	check "tandem: SRC_URI is the Tandem tree, branch $branch" has $e "^SRC_URI=\"git://$src;protocol=file;branch=$branch\"\$"
	check "tandem: libcurl at run time (dlopen)" has $e '^RDEPENDS:tandem=".*libcurl'
	check "tandem: tandem-confirm.service, tandem-daemon.service" sh -c \
		"grep -qx 'SYSTEMD_SERVICE:tandem=\"tandem-confirm.service\"' '$work/$e' && grep -qx 'SYSTEMD_SERVICE:tandem-daemon=\"tandem-daemon.service\"' '$work/$e'"
	check "tandem: mbedtls 2.28 preferred" has $e '^PREFERRED_VERSION_mbedtls="2.28%"$'
else
	fail "bitbake -e tandem"
fi
if logged bitbake-e-native as_user "bitbake -e tandem-native"; then
	check "tandem-native: PACKAGECONFIG image-tools, no device program" sh -c \
		"grep -qx 'PACKAGECONFIG=\"image-tools sha256-nettle delta-xz\"' '$work/bitbake-e-native.log' &&
		 grep -qx 'TANDEM_UPDATER=\"n\"' '$work/bitbake-e-native.log'"
else
	fail "bitbake -e tandem-native"
fi
if logged bitbake-e-image as_user "bitbake -e core-image-minimal"; then
	check "an image with tandem-bundle: DEPENDS tandem-native, do_tandem_bundle" sh -c \
		"grep '^DEPENDS=' '$work/bitbake-e-image.log' | grep -qw tandem-native &&
		 grep -q '^do_tandem_bundle() {' '$work/bitbake-e-image.log'"
else
	fail "bitbake -e core-image-minimal"
fi
if logged bitbake-g as_user "bitbake -g core-image-minimal"; then
	check "do_tandem_bundle after do_image_ext4, before do_image_complete (bitbake -g)" sh -c \
		"grep -q '\"core-image-minimal.do_tandem_bundle\" -> \"core-image-minimal.do_image_ext4\"' '$work/yocto/task-depends.dot' &&
		 grep -q '\"core-image-minimal.do_image_complete\" -> \"core-image-minimal.do_tandem_bundle\"' '$work/yocto/task-depends.dot'"
else
	fail "bitbake -g core-image-minimal"
fi
finish
