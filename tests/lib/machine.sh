# SPDX-License-Identifier: MIT
# Sourced by the benchmark scripts: machine_line prints the machine a
# table was measured on, and pkgver PACKAGE a Debian package's version.
machine_line() {
	printf '`nproc` %s; %s RAM; kernel %s; %s' "$(nproc)" \
		"$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)" \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
}
pkgver() { dpkg-query -W -f='${Version}\n' "$1" 2>/dev/null | head -1 | grep . || echo 'not installed'; }
