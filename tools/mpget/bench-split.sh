#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One big file from a location that nginx limits per connection (the WAN
# case splitting is for), in the same run: mpget -x 8 -s 8, aria2c -x 8
# -s 8 -k 1M, and mpget on one connection.  Every downloaded file's
# sha-256 is checked; a run with a wrong file does not count.
#
#   tools/mpget/bench-split.sh BUILD_DIR
#
# SPLIT_MB (default 256) is the file's size, SPLIT_RATE (default 4m) the
# per-connection limit, SPLIT_REPS (default 3) the runs of each, whose
# median is shown.  SPLIT_SINGLE=0 skips the one-connection runs (at the
# defaults they take 64 s each).  Figures on a shared machine are
# indicative only.
set -uo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
mb=${SPLIT_MB:-256}
rate=${SPLIT_RATE:-4m}
reps=${SPLIT_REPS:-3}
mpget=$build/tools/mpget/mpget
nginx_sh=$here/tests/nginx.sh
[ -x "$mpget" ] || { echo "bench-split: no $mpget" >&2; exit 1; }

base_dir=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || base_dir=${TMPDIR:-/tmp}
work=$(mktemp -d "$base_dir/mpget-split.XXXXXX")
cleanup() {
	"$nginx_sh" stop "$work/nginx" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/www/slow"
head -c $((mb << 20)) /dev/urandom >"$work/www/slow/big.bin"
sum=$(sha256sum <"$work/www/slow/big.bin" | cut -d' ' -f1)
echo "location /slow/ { limit_rate $rate; }" >"$work/server.conf"
port=$(MPGET_NGINX_SERVER=$work/server.conf "$nginx_sh" start \
	"$work/www" "$work/nginx" 2) || exit 1
url=http://127.0.0.1:$port/slow/big.bin

run() { # NAME COMMAND...: prints the seconds, or FAIL
	local out=$work/out t0 t1
	rm -rf "$out"
	mkdir -p "$out"
	t0=$(date +%s.%N)
	(cd "$out" && "${@:2}") >/dev/null 2>&1 || { echo FAIL; return; }
	t1=$(date +%s.%N)
	if [ "$(sha256sum <"$out/big.bin" | cut -d' ' -f1)" != "$sum" ]; then
		echo FAIL
		return
	fi
	echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A times
names=("mpget -x 8 -s 8" "aria2c -x 8 -s 8 -k 1M")
[ "${SPLIT_SINGLE:-1}" != 0 ] && names+=("mpget -x 1 -s 1")
for ((r = 0; r < reps; r++)); do
	for n in "${names[@]}"; do
		case $n in
		"mpget -x 8 -s 8")
			t=$(run "$n" "$mpget" -q -x 8 -s 8 "$url") ;;
		"aria2c -x 8 -s 8 -k 1M")
			command -v aria2c >/dev/null || continue
			t=$(run "$n" aria2c -q -x 8 -s 8 -k 1M --allow-overwrite \
				--file-allocation=none "$url") ;;
		"mpget -x 1 -s 1")
			t=$(run "$n" "$mpget" -q -x 1 -s 1 "$url") ;;
		esac
		[ "$t" = FAIL ] && { echo "$n: wrong file or failure" >&2; continue; }
		times[$n]+="$t "
	done
done
printf '%-26s %8s  (%s MiB, %s per connection, median of %s)\n' \
	"" seconds "$mb" "$rate" "$reps"
for n in "${names[@]}"; do
	[ -n "${times[$n]:-}" ] || continue
	m=$(tr ' ' '\n' <<<"${times[$n]}" | grep . | median)
	printf '%-26s %8.2f  %s\n' "$n" "$m" "${times[$n]}"
done
