#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench.sh [BUILD_DIR]: the serial rows of `make bench` (issues 7 and 8).
#
# Sends bundles with `tandem-image send` over the simulated serial line of
# the tests (two socat pty pairs and tests/serial/relay.py, which moves
# bytes at baud/10 bytes per second each way, as an 8N1 UART does) into
# `tandem receive` on a simulated device, and prints one Markdown table:
# the link's efficiency (payload bytes per second over the line rate) at
# several rates, and the time to push the real delta of the delta
# benchmark. Every installed slot is compared with its image. Timings are
# printed, never asserted.
#
# Env:
#   SERIAL_RATES="115200 1000000 3000000"  rates of the efficiency rows
#   SERIAL_SECONDS=15     about how long each efficiency transfer lasts
#   SERIAL_DELTA=FILE     the delta bundle to push (default: the squashfs
#                         delta the delta benchmark left in BUILD_DIR)
#   SERIAL_DELTA_PUB=PEM  the public key it was signed with (default: the
#                         delta benchmark's)
#   IMGPAIR=DIR           the image pair that delta applies to
set -euo pipefail
export LC_ALL=C TZ=UTC

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=$(cd "$TOP" && realpath -m "${1:-build}")
B=$O/bench/serial
SNAP=$O/bench/bin
RATES=${SERIAL_RATES:-115200 1000000 3000000}
SECS=${SERIAL_SECONDS:-15}
IMG=${IMGPAIR:-$O/bench/imgpair}
DELTA=${SERIAL_DELTA:-$O/bench/delta/squashfs/t.tnd}
DELTA_PUB=${SERIAL_DELTA_PUB:-$O/bench/delta/keys/pub/release.pem}
CSV=$O/bench/serial.csv

log() { echo "serial-bench: $*" >&2; }
die() { echo "serial-bench: error: $*" >&2; exit 1; }

mkdir -p "$B" "$SNAP"
[ -x "$SNAP/tandem" ] || cp "$O/tandem" "$O/tandem-image" "$SNAP/" 2>/dev/null ||
	die "build $O first"
TANDEM=$SNAP/tandem
TIMG=$SNAP/tandem-image
. "$TOP/tests/serial/line.sh"
. "$TOP/tests/lib/machine.sh"
trap line_down EXIT

# push DIR BAUD BUNDLE IMAGE: one transfer into slot B of the device in
# DIR; the sender's --json summary goes to DIR/send.json.
push() {
	local dir=$1 baud=$2 bundle=$3 image=$4 tmo rc=0
	# generous: the bundle at a quarter of the line rate, plus set-up
	tmo=$(($(stat -c %s "$bundle") * 40 / baud + 60))
	line_up "$dir/line" "$baud"
	timeout "$tmo" "$TANDEM" -c "$dir/dev/tandem.conf" receive --serial "$LINE_DEV" \
		--baud "$baud" --timeout 30 --progress=none --no-activate --json \
		>"$dir/recv.json" 2>"$dir/recv.err" &
	local recv=$!
	timeout "$tmo" "$TIMG" send --serial "$LINE_HOST" --baud "$baud" --timeout 30 --json \
		"$bundle" >"$dir/send.json" 2>"$dir/send.err" || rc=$?
	wait "$recv" || rc=$((rc ? rc : 1))
	line_down
	[ $rc -eq 0 ] || die "transfer at $baud baud failed: $(tail -1 "$dir/send.err") / $(tail -1 "$dir/recv.err")"
	cmp -s -n "$(stat -c %s "$image")" "$image" "$dir/dev/slotB.img" ||
		die "slot B differs from the image after the transfer at $baud baud"
}

# field FILE KEY: a number from the sender's summary.
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

echo "rows,baud,bytes,transfer_s,rate_Bps,efficiency,retransmitted_frames,how" >"$CSV"
rows=""
declare -A EFF
for baud in $RATES; do
	W=$B/$baud
	rm -rf "$W" && mkdir -p "$W"
	# incompressible, so that the bundle is as large as the image
	bytes=$((baud / 10 * SECS))
	head -c "$bytes" /dev/urandom >"$W/image"
	TANDEM_IMAGE=$TIMG "$TOP/tests/lib/simdev.sh" "$W/dev" $((bytes + (1 << 20))) >/dev/null
	"$TIMG" -q build --key "$W/dev/signing/key.pem" --image "$W/image" --version 1.0 \
		--compatible sim --out "$W/u.tnd"
	log "efficiency at $baud baud: $(stat -c %s "$W/u.tnd") bytes"
	push "$W" "$baud" "$W/u.tnd" "$W/image"
	s=$(field "$W/send.json" transfer_seconds)
	r=$(field "$W/send.json" rate)
	e=$(field "$W/send.json" efficiency)
	x=$(field "$W/send.json" retransmitted_frames)
	EFF[$baud]=$e
	echo "efficiency,$baud,$(stat -c %s "$W/u.tnd"),$s,$r,$e,$x,measured" >>"$CSV"
	rows+=$(printf '| %s | %s | %s B | %.1f s | %.0f B/s | **%.1f%%** | %s | measured |' \
		"efficiency" "$baud" "$(stat -c %s "$W/u.tnd")" "$s" "$r" "$(echo "$e * 100" | bc -l)" "$x")$'\n'
done

# The real delta: pushed for real at the fastest rate, and its time at
# 115200 baud computed from the efficiency measured there (a 2.6 MB push
# at 11.5 kB/s would take four minutes of the benchmark's time for a
# figure the efficiency row already determines).
if [ -f "$DELTA" ] && [ -f "$IMG/v1.squashfs" ] && [ -f "$IMG/v2.squashfs" ]; then
	fast=$(echo "$RATES" | tr ' ' '\n' | sort -n | tail -1)
	W=$B/delta
	rm -rf "$W" && mkdir -p "$W"
	tsize=$(stat -c %s "$IMG/v2.squashfs")
	TANDEM_IMAGE=$TIMG "$TOP/tests/lib/simdev.sh" "$W/dev" $((tsize + (1 << 20))) >/dev/null
	cp "$DELTA_PUB" "$W/dev/keys/delta.pem" 2>/dev/null || die "$DELTA_PUB is missing"
	dd if="$IMG/v1.squashfs" of="$W/dev/slotA.img" conv=notrunc status=none
	dbytes=$(stat -c %s "$DELTA")
	log "real delta ($dbytes bytes) at $fast baud"
	push "$W" "$fast" "$DELTA" "$IMG/v2.squashfs"
	s=$(field "$W/send.json" transfer_seconds)
	r=$(field "$W/send.json" rate)
	e=$(field "$W/send.json" efficiency)
	echo "delta,$fast,$dbytes,$s,$r,$e,$(field "$W/send.json" retransmitted_frames),measured" >>"$CSV"
	rows+=$(printf '| real squashfs delta | %s | %s B | %.1f s | %.0f B/s | %.1f%% | %s | measured, installed and checked |' \
		"$fast" "$dbytes" "$s" "$r" "$(echo "$e * 100" | bc -l)" "$(field "$W/send.json" retransmitted_frames)")$'\n'
	if [ -n "${EFF[115200]:-}" ]; then
		s=$(echo "$dbytes / (${EFF[115200]} * 11520)" | bc -l)
		echo "delta,115200,$dbytes,$s,,${EFF[115200]},,computed" >>"$CSV"
		rows+=$(printf '| real squashfs delta | 115200 | %s B | %.0f s | | %.1f%% | | computed: bytes / (efficiency at 115200 x 11520 B/s) |' \
			"$dbytes" "$s" "$(echo "${EFF[115200]} * 100" | bc -l)")$'\n'
	fi
else
	rows+="| real squashfs delta | | | | | | | not measured: run the delta benchmark first ($DELTA) |"$'\n'
fi

cat <<EOF
### Serial link (\`tandem-image send\` to \`tandem receive\`)

$(machine_line); socat $(pkgver socat).

Simulated 8N1 line: socat pty pairs and a pacing relay (tests/serial/relay.py)
at the given rate, no faults injected; the whole verified install runs
behind the receiver. Efficiency = bundle bytes per second / (baud / 10);
the protocol's ceiling is 97.5% (1024 data bytes per 1050 on the wire),
the target 90%. One run per row.

| what | baud | bundle | transfer | rate | efficiency | retransmitted frames | how |
|---|---:|---:|---:|---:|---:|---:|---|
$rows
EOF
