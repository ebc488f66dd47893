#!/bin/bash
# SPDX-License-Identifier: MIT
#
# net.sh [BUILD_DIR]: the network rows of `make bench` (issues 5 and 8).
#
# Debian's nginx on loopback (tests/lib/nginx.sh) serves the 512 MiB
# benchmark image's bundle over HTTPS and a channel published with
# `tandem-image publish`. Measured in the same run:
#   - network install into a file slot: `tandem install https://...`
#     (authenticated, fsync, read-back) beside `curl | dd conv=fsync` of
#     the raw image (no verification at all: the transport's limit);
#   - what a poll costs: requests and bytes received for a poll with
#     nothing new (304) and for the first poll of a device (200, index),
#     from `tandem poll --json`, and the bytes nginx sent (access log).
# RAUC's HTTP streaming needs its nbd-based streaming support, which
# Debian's rauc 1.8 build cannot use here (no nbd device): its row says so.
# Every slot is compared with the image. Timings are printed, not asserted.
#
# Env: NET_RUNS=3 (medians)
set -euo pipefail
export LC_ALL=C TZ=UTC

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=$(cd "$TOP" && realpath -m "${1:-build}")
B=$O/bench/net
RUNS=${NET_RUNS:-3}
SNAP=$O/bench/bin
IMG=$O/bench/images/usr-512.ext4
BUN=$O/bench/images/usr-512.tnd
CSV=$O/bench/net.csv

log() { echo "net-bench: $*" >&2; }
die() { echo "net-bench: error: $*" >&2; exit 1; }

[ -f "$IMG" ] && [ -f "$BUN" ] || die "run the full-install section first ($IMG, $BUN)"
[ -x "$SNAP/tandem" ] || die "no $SNAP/tandem"
. "$TOP/tests/lib/nginx.sh"
. "$TOP/tests/lib/machine.sh"
trap nginx_down EXIT
rm -rf "$B" && mkdir -p "$B/www/b"
ln "$BUN" "$B/www/b/u.tnd" 2>/dev/null || cp "$BUN" "$B/www/b/u.tnd"
ln "$IMG" "$B/www/b/u.img" 2>/dev/null || cp "$IMG" "$B/www/b/u.img"
make_pki "$B/pki"

# A device whose keyring has the bundle's key (tests/bench/run.sh keys).
TANDEM_IMAGE=$SNAP/tandem-image "$TOP/tests/lib/simdev.sh" "$B/dev" 600M >/dev/null
cp "$O/bench/keys/pub/"*.pem "$B/dev/keys/"
python3 - "$B/dev/tandem.conf" "$B/pki/ca.pem" "$B/dev/id" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["server"] = {"url": "https://127.0.0.1:1/none", "ca": sys.argv[2], "device_id_file": sys.argv[3]}
c["bootloader"] = {"type": "none"}
c["compatible"] = "bench"
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
echo bench-device >"$B/dev/id"
nginx_up "$B/nginx" "$B/www" "$B/pki"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
drop() { sync; [ "$(id -u)" -ne 0 ] || echo 3 >/proc/sys/vm/drop_caches; }
size=$(stat -c %s "$IMG")
echo "what,runs,median_s,mib_s,peak_rss_kib,bytes" >"$CSV"
rows=""

# install ROWNAME CMD...: RUNS timed runs into slot B, each checked.
install_rows() {
	local name=$1 i t rss
	shift
	: >"$B/times"
	for i in $(seq "$RUNS"); do
		truncate -s 0 "$B/dev/slotB.img"
		truncate -s 600M "$B/dev/slotB.img"
		drop
		/usr/bin/time -f '%e %M' -o "$B/t" "$@" >/dev/null 2>"$B/err" ||
			die "$name failed: $(tail -1 "$B/err")"
		cmp -s -n "$size" "$IMG" "$B/dev/slotB.img" || die "$name: slot B differs from the image"
		tail -1 "$B/t" >>"$B/times"
	done
	t=$(awk '{print $1}' "$B/times" | median)
	rss=$(awk '{print $2}' "$B/times" | median)
	echo "$name,$RUNS,$t,$(echo "$size / 1048576 / $t" | bc -l),$rss," >>"$CSV"
	rows+=$(printf '| %s | %s | %.2f | %.0f | %.1f |' "$name" "$RUNS" "$t" \
		"$(echo "$size / 1048576 / $t" | bc -l)" "$(echo "$rss / 1024" | bc -l)")$'\n'
}

log "network install, $RUNS runs each"
install_rows "tandem install https:// -> file slot" "$SNAP/tandem" -c "$B/dev/tandem.conf" -q \
	install --progress=none --no-activate --slot B "$NGINX_HTTPS/b/u.tnd"
install_rows "curl https:// of the raw image into dd conv=fsync -> file slot" sh -c \
	"curl -sS --cacert '$B/pki/ca.pem' '$NGINX_HTTPS/b/u.img' | dd of='$B/dev/slotB.img' bs=1M conv=fsync,notrunc iflag=fullblock status=none"

# The cost of polling: a channel with one release for the device's board.
log "poll cost"
"$SNAP/tandem-image" -q build --key "$O/bench/keys/bench.pem" --image "$O/bench/images/usr-64.ext4" \
	--version 9.0 --compatible bench --out "$B/r.tnd" 2>/dev/null ||
	die "cannot build the poll bench bundle"
"$SNAP/tandem-image" -q publish --channel "$B/www/ch" --key "$O/bench/keys/bench.pem" "$B/r.tnd" >/dev/null
python3 - "$B/dev/tandem.conf" "$NGINX_HTTPS/ch/index.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["server"]["url"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
poll_row() { # NAME: one poll, its own figures and nginx's
	: >"$B/nginx/access.log"
	"$SNAP/tandem" -c "$B/dev/tandem.conf" -q poll --once --json --no-activate >"$B/poll.json" 2>"$B/err" ||
		die "poll failed: $(tail -1 "$B/err")"
	local res req by sent
	res=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"])' "$B/poll.json")
	req=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$B/poll.json")
	by=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$B/poll.json")
	sent=$(awk '{s += $6} END {print s + 0}' "$B/nginx/access.log")
	echo "poll $1 ($res),1,,,,$by" >>"$CSV"
	prow+="| $1 | $res | $req | $by | $sent |"$'\n'
}
prow=""
poll_row "first poll of a device (index, then the release)"
poll_row "poll with nothing new (If-None-Match)"
index_size=$(stat -c %s "$B/www/ch/index.json")

cat <<EOF
### Network install and the cost of polling (loopback nginx, HTTPS)

$(machine_line); curl $(pkgver curl); libcurl $(pkgver libcurl4).

Debian's nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), TLS 1.3 on 127.0.0.1 with a test CA; the 512 MiB benchmark image ($(numfmt --to=iec "$size")) and its
bundle ($(numfmt --to=iec "$(stat -c %s "$BUN")")); page cache dropped before each run; medians of $RUNS runs.
Tandem authenticates every chunk before writing, fsyncs and reads the slot back;
\`curl\` into \`dd\` copies the raw image ($(echo "$size / $(stat -c %s "$BUN")" | bc)x the bytes over the wire) without any check.
Peak RSS includes libcurl with Debian's OpenSSL (loaded by tandem only for HTTP).
Bytes are HTTP headers and bodies; TLS adds its handshake (a few KiB per connection).

| path | runs | wall s | MiB/s of image | peak RSS MiB |
|---|---|---|---|---|
$rows| RAUC HTTP streaming | 0 | - | - | - | not run: needs nbd streaming, unavailable here |

Poll cost (one device, a channel index of $index_size bytes with one release):

| poll | result | requests | bytes received (tandem) | bytes sent (nginx access log) |
|---|---|---|---|---|
$prow
EOF
