#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The end of the demo: the tutorial's image downloader, twice.  A local
# nginx (127.0.0.1 only, started and stopped here) serves a few hundred
# generated images; examples/06-download-images fetches three of them with
# one process per URL, as the tutorial does; then mpget fetches all of
# them with a few worker processes, shows its progress and summary, and
# every file is checked against its sha-256.  From 127.0.0.1 mpget would
# be done before a person could read its progress line, so the demo caps
# its rate to take about MPGET_DEMO_SECONDS (default 5).
set -euo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
count=${MPGET_DEMO_FILES:-300}
seconds=${MPGET_DEMO_SECONDS:-5}

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)

mpget=$build/tools/mpget/mpget
example=$build/examples/06-download-images
for p in "$mpget" "$example"; do
	if [ ! -x "$p" ]; then
		echo "demo-mpget: $p is not built (libcurl missing?); skipped"
		exit 0
	fi
done
if ! command -v python3 >/dev/null ||
	! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
	echo "demo-mpget: needs nginx and python3 (scripts/deps.sh); skipped"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mpget-demo.XXXXXX")
cleanup() {
	"$here/tools/mpget/tests/nginx.sh" stop "$work/nginx" || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Small PPM images (a colour gradient each), and their sha-256 sums.
mkdir -p "$work/www/images"
python3 - "$work/www/images" "$count" <<'EOF'
import sys
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    w = h = 48 + i % 17
    px = bytearray()
    for y in range(h):
        for x in range(w):
            px += bytes(((x * 5 + i * 7) % 256, (y * 5 + i * 3) % 256,
                         (i * 11) % 256))
    with open("%s/image%04d.ppm" % (out, i), "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h) + px)
EOF
(cd "$work/www/images" && sha256sum ./*.ppm >"$work/SHA256SUMS")
port=$("$here/tools/mpget/tests/nginx.sh" start "$work/www" "$work/nginx")
base="http://127.0.0.1:$port/images"
for i in $(seq 0 $((count - 1))); do
	printf '%s/image%04d.ppm\n' "$base" "$i"
done >"$work/urls.txt"

echo
echo "${bold}== examples/06-download-images.c: the tutorial's way, one process per URL${plain}"
mkdir -p "$work/naive"
(cd "$work/naive" && "$example" $(head -n 3 "$work/urls.txt"))

total=$(cat "$work"/www/images/*.ppm | wc -c)
rate=$((total / seconds / 1024 + 1))K

echo
echo "${bold}== mpget: all $count images ($((total / 1024)) KiB), 8 connections${plain}"
echo "(capped at $rate/s, so that the live progress line can be seen)"
echo "\$ mpget -j 8 --limit-rate=$rate -d images -i urls.txt"
mkdir -p "$work/got"
"$mpget" -j 8 --limit-rate="$rate" -d "$work/got/images" -i "$work/urls.txt"
(cd "$work/got/images" && sha256sum -c --quiet "$work/SHA256SUMS") &&
	echo "all $count files verified (sha-256)"
