# SPDX-License-Identifier: MIT
# Sourced by the serial tests and the serial benchmark: a simulated serial
# line made of two socat pty pairs and the pacing/fault relay between them.
#
#   line_up DIR BAUD [relay options...]   sets LINE_HOST and LINE_DEV
#   line_down                             stops it; counters in DIR/relay.json
#
# LINE_HOST is the host's end (tandem-image send --serial), LINE_DEV the
# device's (tandem receive --serial). Every wait here is bounded.

LINE_PIDS=""
LINE_DIR=""

line_up() {
	local dir=$1 baud=$2 i
	shift 2
	LINE_DIR=$dir
	mkdir -p "$dir"
	rm -f "$dir"/host "$dir"/ra "$dir"/rb "$dir"/dev "$dir"/relay.ready "$dir"/relay.json
	socat PTY,raw,echo=0,link="$dir/host" PTY,raw,echo=0,link="$dir/ra" 2>"$dir/socat1.log" &
	LINE_PIDS="$LINE_PIDS $!"
	socat PTY,raw,echo=0,link="$dir/rb" PTY,raw,echo=0,link="$dir/dev" 2>"$dir/socat2.log" &
	LINE_PIDS="$LINE_PIDS $!"
	for i in $(seq 50); do
		[ -e "$dir/host" ] && [ -e "$dir/ra" ] && [ -e "$dir/rb" ] && [ -e "$dir/dev" ] && break
		sleep 0.1
	done
	/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/relay.py" --a "$dir/ra" --b "$dir/rb" \
		--baud "$baud" --stats "$dir/relay.json" --ready "$dir/relay.ready" "$@" \
		2>"$dir/relay.log" &
	LINE_PIDS="$LINE_PIDS $!"
	for i in $(seq 50); do
		[ -e "$dir/relay.ready" ] && break
		sleep 0.1
	done
	[ -e "$dir/relay.ready" ] || { echo "serial line did not come up: $(cat "$dir"/*.log)" >&2; return 1; }
	LINE_HOST=$dir/host
	LINE_DEV=$dir/dev
}

line_down() {
	local p i
	# The relay first, so that it writes its counters; then socat.
	# (Callers may run under set -e: no command here may fail.)
	for p in $LINE_PIDS; do
		kill "$p" 2>/dev/null || true
	done
	for p in $LINE_PIDS; do
		for i in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	LINE_PIDS=""
	return 0
}
