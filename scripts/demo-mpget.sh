#!/usr/bin/env bash
# The end of the demo: the tutorial's image downloader, twice.  A local
# nginx (127.0.0.1 only, started and stopped here) serves a few hundred
# generated images; examples/06-download-images fetches three of them with
# one process per URL, as the tutorial does; then mpget fetches all of
# them with a few worker processes, shows its progress and summary, and
# every file is checked against its sha-256.
set -euo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
count=${MPGET_DEMO_FILES:-300}

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

echo
echo "${bold}== mpget: all $count images, $(nproc) worker processes, 8 connections${plain}"
echo "\$ mpget -j 8 -d images -i urls.txt"
mkdir -p "$work/got"
"$mpget" -j 8 -d "$work/got/images" -i "$work/urls.txt"
(cd "$work/got/images" && sha256sum -c --quiet "$work/SHA256SUMS") &&
	echo "all $count files verified (sha-256)"
