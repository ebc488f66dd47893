#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# post-image.sh BINARIES_DIR: signed Tandem bundles of the slot image
# Buildroot just made. Add it to BR2_ROOTFS_POST_IMAGE_SCRIPT as
# $(BR2_EXTERNAL_TANDEM_PATH)/board/tandem/post-image.sh; its settings are
# the BR2_TANDEM_* options (menu "Tandem bundle"), read from BR2_CONFIG,
# so that BR2_ROOTFS_POST_SCRIPT_ARGS stays free for the other scripts.
#
# Writes BINARIES_DIR/tandem-VERSION.tnd, a full bundle, and with
# BR2_TANDEM_BUNDLE_BASE also tandem-VERSION.delta.tnd, a delta from that
# earlier image.
set -euo pipefail

binaries=${1:?usage: post-image.sh BINARIES_DIR (Buildroot passes it)}
: "${BR2_CONFIG:?post-image.sh runs from Buildroot, which sets BR2_CONFIG}"

# The value of a string option of BR2_CONFIG ("" when unset).
option() {
	sed -n "s/^$1=\"\\(.*\\)\"\$/\\1/p" "$BR2_CONFIG"
}

fail() {
	echo "tandem post-image: $*" >&2
	exit 1
}

keys=$(option BR2_TANDEM_BUNDLE_KEY)
compatible=$(option BR2_TANDEM_BUNDLE_COMPATIBLE)
image=$(option BR2_TANDEM_BUNDLE_IMAGE)
version=${TANDEM_BUNDLE_VERSION:-$(option BR2_TANDEM_BUNDLE_VERSION)}
base=$(option BR2_TANDEM_BUNDLE_BASE)
tool=$(option BR2_TANDEM_IMAGE)

[ -n "$keys" ] || fail "set BR2_TANDEM_BUNDLE_KEY to the release signing key (tandem-image keygen)"
[ -n "$compatible" ] || fail "set BR2_TANDEM_BUNDLE_COMPATIBLE to the devices' \"compatible\""
[ -n "$version" ] || fail "set BR2_TANDEM_BUNDLE_VERSION, or TANDEM_BUNDLE_VERSION in make's environment"
command -v "${tool:-tandem-image}" >/dev/null ||
	fail "no ${tool:-tandem-image} on this build host: install the tandem-image Debian package, or run make in the Tandem tree and set BR2_TANDEM_IMAGE to its build/tandem-image"
[ -f "$binaries/${image:-rootfs.ext4}" ] ||
	fail "no $binaries/${image:-rootfs.ext4}: set BR2_TANDEM_BUNDLE_IMAGE to the slot image BR2_TARGET_ROOTFS_* makes"

args=()
for key in $keys; do
	[ -r "$key" ] || fail "cannot read the signing key $key"
	args+=(--key "$key")
done
args+=(--image "$binaries/${image:-rootfs.ext4}" --version "$version" --compatible "$compatible")

"${tool:-tandem-image}" build "${args[@]}" --out "$binaries/tandem-$version.tnd"
if [ -n "$base" ]; then
	[ -f "$base" ] || fail "BR2_TANDEM_BUNDLE_BASE $base is not a file"
	"${tool:-tandem-image}" build "${args[@]}" --base "$base" --out "$binaries/tandem-$version.delta.tnd"
fi
