#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mpget against the batch downloaders people use, in the same run, on the
# same local nginx (127.0.0.1 only); every downloaded file's sha-256 is
# checked, and a run with a wrong file does not count.
#
#   bench/bench-mpget.sh BUILD_DIR
#
# Scenarios: MPGET_BENCH_FILES files of 16 KiB with 8 connections
# (default 2000), and 4 files of MPGET_BENCH_MB MiB with 4 connections
# (default 256).  xargs starts a curl per file, so it gets only
# MPGET_BENCH_XARGS files (default 200) and its rate is extrapolated.
# MPGET_BENCH_DIR picks where files go (default: a tmpfs when there is
# one, so the disk does not decide).  The machines are shared and noisy:
# each implementation runs MPGET_BENCH_REPS times (default 5), in rounds
# that interleave the implementations; the table shows the median, min
# and max of its runs, and the ratios are of medians.  BENCH_QUICK=1:
# 200 small files, 8 MiB large ones, 50 for xargs, 3 runs (a smoke test,
# not figures).  Rows go to $MP_BENCH_CSV as well (bench.h's format).
set -uo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
	nfiles=${MPGET_BENCH_FILES:-200}
	mb=${MPGET_BENCH_MB:-8}
	nxargs=${MPGET_BENCH_XARGS:-50}
	reps=${MPGET_BENCH_REPS:-${BENCH_RUNS:-3}}
else
	nfiles=${MPGET_BENCH_FILES:-2000}
	mb=${MPGET_BENCH_MB:-256}
	nxargs=${MPGET_BENCH_XARGS:-200}
	reps=${MPGET_BENCH_REPS:-${BENCH_RUNS:-5}}
fi
mpget=$build/tools/mpget/mpget
nginx_sh=$here/tools/mpget/tests/nginx.sh

if [ ! -x "$mpget" ]; then
	echo "bench-mpget: $mpget is not built; skipped" >&2
	exit 0
fi
base_dir=${MPGET_BENCH_DIR:-}
if [ -z "$base_dir" ]; then
	base_dir=/dev/shm
	[ -d /dev/shm ] && [ -w /dev/shm ] || base_dir=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$base_dir/mpget-bench.XXXXXX")
cleanup() {
	"$nginx_sh" stop "$work/nginx" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

have() { command -v "$1" >/dev/null 2>&1; }

# The files: random bytes, and their sums.
mkdir -p "$work/www/s" "$work/www/l"
head -c $((nfiles * 16384)) /dev/urandom |
	split -a 5 -d -b 16384 - "$work/www/s/f"
for i in 1 2 3 4; do
	head -c $((mb << 20)) /dev/urandom >"$work/www/l/big$i.bin"
done
(cd "$work/www/s" && sha256sum -- * >"$work/small.sum")
(cd "$work/www/l" && sha256sum -- * >"$work/large.sum")
port=$("$nginx_sh" start "$work/www" "$work/nginx" 1) || exit 1
for f in "$work"/www/s/*; do
	echo "http://127.0.0.1:$port/s/$(basename "$f")"
done >"$work/small.urls"
for i in 1 2 3 4; do
	echo "http://127.0.0.1:$port/l/big$i.bin"
done >"$work/large.urls"

# curl -K config files: url + output per file.
curl_cfg() { # URLS OUTDIR
	while read -r u; do
		printf 'url = "%s"\noutput = "%s/%s"\n' "$u" "$2" "${u##*/}"
	done <"$1"
}

now() { date +%s.%N; }

# run IMPL SCENARIO URLS SUMS COUNT CMD...: time CMD (run in $work/out),
# check every file, add the time to the runs of IMPL in times[].
declare -A times count_of failed
order=()
run() {
	local impl=$1 scen=$2 urls=$3 sums=$4 count=$5
	shift 5
	local key="$scen,$impl"
	[ -n "${count_of[$key]:-}" ] || order+=("$key")
	count_of[$key]=$count
	[ -n "${failed[$key]:-}" ] && return
	rm -rf "$work/out"
	mkdir -p "$work/out"
	local t0 t1 secs want
	t0=$(now)
	if ! (cd "$work/out" && "$@") >/dev/null 2>"$work/err"; then
		failed[$key]="failed: $(head -c 200 "$work/err" | tr '\n' ' ')"
		return
	fi
	t1=$(now)
	want=$(awk 'NR == FNR { w[$0] = 1; next } ($2 in w)' \
		<(sed 's|.*/||' "$urls" | head -n "$count") "$sums")
	if ! (cd "$work/out" && sha256sum -c --quiet <(echo "$want")) \
		>/dev/null 2>&1; then
		failed[$key]="wrong or missing files"
		return
	fi
	secs=$(echo "$t1 - $t0" | bc -l)
	times[$key]="${times[$key]:-} $secs"
}

# stats WORK TIMES...: "median min max runs" of the rates WORK / time.
stats() {
	local work=$1
	shift
	printf '%s\n' "$@" | awk -v w="$work" '{ print w / $1 }' | sort -g |
		awk '{ v[NR] = $1 }
		END {
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.0f %.0f %.0f %d\n", m, v[1], v[NR], NR
		}'
}

# The table: median, min and max of each implementation's runs.
declare -A result
table() {
	local key scen impl work unit med min max n
	for key in "${order[@]}"; do
		scen=${key%%,*}
		impl=${key#*,}
		if [ -n "${failed[$key]:-}" ]; then
			echo "| $scen | $impl | ${failed[$key]} | | | | 0 |"
			continue
		fi
		if [ "$scen" = small ]; then
			work=${count_of[$key]}
			unit=files/s
		else
			work=$(echo "${count_of[$key]} * $mb * 1.048576" | bc -l)
			unit=MB/s
		fi
		# shellcheck disable=SC2086 # the times are one word each
		read -r med min max n < <(stats "$work" ${times[$key]})
		result[$key]=$med
		echo "| $scen | $impl | $med | $min | $max | $unit | $n |"
		if [ -n "${MP_BENCH_CSV:-}" ]; then
			# A comma inside a name would split its CSV field.
			echo "mpget,$scen,${impl//,/;},$med,$unit,$min,$max" >>"$MP_BENCH_CSV"
		fi
	done
}

split_cfg() { # URLS OUTDIR PARTS PREFIX
	curl_cfg "$1" "$2" >"$work/all.cfg"
	local lines per
	lines=$(wc -l <"$work/all.cfg")
	per=$(( (lines / 2 + $3 - 1) / $3 * 2 ))
	split -l "$per" -d "$work/all.cfg" "$4"
}

four_curls() { # CFGPREFIX
	local pids=() rc=0
	for c in "$1"*; do
		curl -s -f -K "$c" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	return $rc
}

scenario() { # NAME URLS SUMS CONNS COUNT
	local s=$1 urls=$2 sums=$3 j=$4 count=$5 out=$work/out
	run mpget "$s" "$urls" "$sums" "$count" \
		"$mpget" -q -j "$j" -i "$urls"
	if have aria2c; then
		run aria2c "$s" "$urls" "$sums" "$count" \
			aria2c -q -j "$j" -x 1 -s 1 -i "$urls" \
			--file-allocation=none --auto-file-renaming=false \
			--allow-overwrite=true --summary-interval=0 \
			--console-log-level=error
	fi
	if have curl; then
		curl_cfg "$urls" "$out" >"$work/$s.cfg"
		run "curl --parallel" "$s" "$urls" "$sums" "$count" \
			curl -s -f --parallel --parallel-immediate \
			--parallel-max "$j" -K "$work/$s.cfg"
	fi
	if have wget2; then
		run wget2 "$s" "$urls" "$sums" "$count" \
			wget2 -q --max-threads="$j" --no-robots -i "$urls" \
			--no-hsts --no-netrc
	fi
	if have curl; then
		rm -f "$work/$s.part."*
		split_cfg "$urls" "$out" 4 "$work/$s.part."
		run "4 curl -K" "$s" "$urls" "$sums" "$count" \
			four_curls "$work/$s.part."
		run "curl -K, 1 connection" "$s" "$urls" "$sums" "$count" \
			curl -s -f -K "$work/$s.cfg"
		local n=$count
		[ "$s" = small ] && [ "$nxargs" -lt "$n" ] && n=$nxargs
		head -n "$n" "$urls" >"$work/$s.xargs"
		run "xargs -P $j curl" "$s" "$work/$s.xargs" "$sums" "$n" \
			xargs -P "$j" -n 1 curl -s -f -O <"$work/$s.xargs"
	fi
}

ratio() { # SCENARIO PEER: the ratio of the medians
	local ours=${result[$1,mpget]:-} peer=${result[$1,$2]:-} kind=ratio
	[ -n "$ours" ] && [ -n "$peer" ] && [ "$peer" != 0 ] || return 0
	local r
	r=$(printf '%.2f' "$(echo "$ours / $peer" | bc -l)")
	echo "| $1 | **mpget vs $2** | **${r}x** | | | ratio of medians | |"
	# The README's summary: the two strongest peers.
	case $2 in "curl --parallel" | wget2) kind=headline ;; esac
	if [ -n "${MP_BENCH_CSV:-}" ]; then
		echo "$kind,$1,mpget vs ${2//,/;},$r,x" >>"$MP_BENCH_CSV"
	fi
}

echo
echo "### mpget: batch downloads from a local nginx ($(nproc) CPUs shared by server and clients)"
echo
echo "small: $nfiles files of 16 KiB, 8 connections (xargs: first $nxargs files," \
	"rate extrapolated); large: 4 files of $mb MiB, 4 connections." \
	"Every file's sha-256 is checked; median, min and max of $reps" \
	"interleaved runs."
echo
echo "| scenario | implementation | median | min | max | unit | runs |"
echo "| --- | --- | ---: | ---: | ---: | --- | ---: |"
for _ in $(seq "$reps"); do
	scenario small "$work/small.urls" "$work/small.sum" 8 "$nfiles"
done
for _ in $(seq "$reps"); do
	scenario large "$work/large.urls" "$work/large.sum" 4 4
done
table
for s in small large; do
	for p in aria2c "curl --parallel" wget2 "4 curl -K" \
		"curl -K, 1 connection" "xargs -P 8 curl" "xargs -P 4 curl"; do
		ratio "$s" "$p"
	done
done
