#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mpget against the downloaders people use, in the same run, on the same
# local nginx (127.0.0.1 only, one worker process); every byte of every
# downloaded file is checked (sha-256 for the small files, cmp for the
# big ones), and a run with a wrong or missing file does not count.
#
#   bench/bench-mpget.sh BUILD_DIR
#
# Scenarios (MPGET_BENCH_SCENARIOS, default "small large split"):
#   small  MPGET_BENCH_FILES files of 16 KiB (default 2000), 8
#          connections each, 5 runs.  xargs starts a curl per file, so it
#          gets only MPGET_BENCH_XARGS files (default 200) and its rate is
#          extrapolated.
#   large  4 files of MPGET_BENCH_MB MiB (default 256), 4 connections,
#          5 runs.
#   split  one file of MPGET_BENCH_SPLIT_MB MiB (default 256) from a
#          location nginx limits to MPGET_BENCH_RATE per connection
#          (default 4m, the WAN case splitting is for): mpget -x 8 -s 8,
#          aria2c -x 8 -s 8 -k 1M and mpget on one connection, 3 runs.
# mpget's default fsyncs every file before its rename and its folder
# after (a file under its name survives a power cut whole); the peers do
# not, so mpget also runs with --no-fsync, the same work as theirs.  On
# the tmpfs used here a sync is cheap; on a disk it is not (mpget(1),
# --no-fsync).
# MPGET_BENCH_OLD=PATH adds another mpget build (e.g. an older commit) to
# the small and large scenarios, named MPGET_BENCH_OLD_NAME.
# MPGET_BENCH_DIR picks where files go (default: a tmpfs when there is
# one, so the disk does not decide).  The machines are shared and noisy:
# each implementation runs several times (BENCH_RUNS overrides), in
# rounds that interleave the implementations; the table shows the
# median, min and max of its runs, and the ratios are of medians.
# BENCH_QUICK=1: 200 small files, 8 MiB large ones, a 16 MiB split file,
# 50 for xargs, 3 runs (a smoke test of a minute, not figures).  Rows go
# to $MP_BENCH_CSV as well (bench.h's format).
set -uo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
	nfiles=${MPGET_BENCH_FILES:-200}
	mb=${MPGET_BENCH_MB:-8}
	split_mb=${MPGET_BENCH_SPLIT_MB:-16}
	nxargs=${MPGET_BENCH_XARGS:-50}
	reps_small=${BENCH_RUNS:-3}
	reps_large=${BENCH_RUNS:-3}
	reps_split=${BENCH_RUNS:-3}
else
	nfiles=${MPGET_BENCH_FILES:-2000}
	mb=${MPGET_BENCH_MB:-256}
	split_mb=${MPGET_BENCH_SPLIT_MB:-256}
	nxargs=${MPGET_BENCH_XARGS:-200}
	reps_small=${BENCH_RUNS:-5}
	# 1 GiB a run swings 2x with the host (0.8-1.8 s for mpget and wget2
	# alike, alternated by hand): 3 runs could not tell them apart.
	reps_large=${BENCH_RUNS:-5}
	reps_split=${BENCH_RUNS:-3}
fi
rate=${MPGET_BENCH_RATE:-4m}
scenarios=${MPGET_BENCH_SCENARIOS:-small large split}
mpget=$build/tools/mpget/mpget
old=${MPGET_BENCH_OLD:-}
old_name=${MPGET_BENCH_OLD_NAME:-mpget (old)}
nginx_sh=$here/tools/mpget/tests/nginx.sh

if [ ! -x "$mpget" ]; then
	echo "bench-mpget: $mpget is not built; skipped" >&2
	exit 0
fi
[ -z "$old" ] || [ -x "$old" ] || { echo "bench-mpget: no $old" >&2; exit 1; }
want() { [[ " $scenarios " == *" $1 "* ]]; }
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

# The files: random bytes, and the small ones' sums.
mkdir -p "$work/www/s" "$work/www/l" "$work/www/slow"
if want small; then
	head -c $((nfiles * 16384)) /dev/urandom |
		split -a 5 -d -b 16384 - "$work/www/s/f"
	(cd "$work/www/s" && sha256sum -- * >"$work/small.sum")
fi
if want large; then
	for i in 1 2 3 4; do
		head -c $((mb << 20)) /dev/urandom >"$work/www/l/big$i.bin"
	done
fi
want split && head -c $((split_mb << 20)) /dev/urandom >"$work/www/slow/big.bin"
echo "location /slow/ { limit_rate $rate; }" >"$work/server.conf"
port=$(MPGET_NGINX_SERVER=$work/server.conf "$nginx_sh" start \
	"$work/www" "$work/nginx" 1) || exit 1
for f in "$work"/www/s/*; do
	[ -e "$f" ] && echo "http://127.0.0.1:$port/s/$(basename "$f")"
done >"$work/small.urls"
for f in "$work"/www/l/*; do
	[ -e "$f" ] && echo "http://127.0.0.1:$port/l/$(basename "$f")"
done >"$work/large.urls"
echo "http://127.0.0.1:$port/slow/big.bin" >"$work/split.urls"

# curl -K config files: url + output per file.
curl_cfg() { # URLS OUTDIR
	while read -r u; do
		printf 'url = "%s"\noutput = "%s/%s"\n' "$u" "$2" "${u##*/}"
	done <"$1"
}

now() { date +%s.%N; }

# check SCENARIO URLS COUNT: every file of the first COUNT URLS is in
# $work/out with the right bytes.
check() {
	local names
	names=$(sed 's|.*/||' "$2" | head -n "$3")
	if [ "$1" = small ]; then
		(cd "$work/out" && sha256sum -c --quiet <(awk \
			'NR == FNR { w[$0] = 1; next } ($2 in w)' \
			<(echo "$names") "$work/small.sum")) >/dev/null 2>&1
		return
	fi
	local dir=l n
	[ "$1" = split ] && dir=slow
	for n in $names; do
		cmp -s "$work/www/$dir/$n" "$work/out/$n" || return 1
	done
}

# run IMPL SCENARIO URLS COUNT CMD...: time CMD (run in $work/out),
# check every file, add the time to the runs of IMPL in times[].
declare -A times count_of failed
order=()
run() {
	local impl=$1 scen=$2 urls=$3 count=$4
	shift 4
	local key="$scen,$impl"
	[ -n "${count_of[$key]:-}" ] || order+=("$key")
	count_of[$key]=$count
	[ -n "${failed[$key]:-}" ] && return
	rm -rf "$work/out"
	mkdir -p "$work/out"
	local t0 t1
	t0=$(now)
	if ! (cd "$work/out" && "$@") >/dev/null 2>"$work/err"; then
		failed[$key]="failed: $(head -c 200 "$work/err" | tr '\n' ' ')"
		return
	fi
	t1=$(now)
	if ! check "$scen" "$urls" "$count"; then
		failed[$key]="wrong or missing files"
		return
	fi
	times[$key]="${times[$key]:-} $(echo "$t1 - $t0" | bc -l)"
	# MP_BENCH_VERBOSE=1, as for the C benchmarks: each run as it ends.
	[ -z "${MP_BENCH_VERBOSE:-}" ] ||
		echo "$key: $(echo "$t1 - $t0" | bc -l) s" >&2
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
		case $scen in
		small)
			work=${count_of[$key]}
			unit=files/s ;;
		large)
			work=$(echo "${count_of[$key]} * $mb * 1.048576" | bc -l)
			unit=MB/s ;;
		split)
			work=$(echo "$split_mb * 1.048576" | bc -l)
			unit=MB/s ;;
		esac
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

# The contenders of one round, a function each; they see the locals of
# batch (s, j, count, urls, n) and splitting (urls, u).  Each round starts one
# further down the list, as bench.h's bench_interleave does, so that no
# contender always runs first, just after the last one's files are gone.
c_mpget() { run mpget "$s" "$urls" "$count" "$mpget" -q -j "$j" -i "$urls"; }
c_mpget_nofsync() {
	run "mpget --no-fsync" "$s" "$urls" "$count" \
		"$mpget" -q -j "$j" --no-fsync -i "$urls"
}
c_old() { run "$old_name" "$s" "$urls" "$count" "$old" -q -j "$j" -i "$urls"; }
c_aria2c() {
	run aria2c "$s" "$urls" "$count" \
		aria2c -q -j "$j" -x 1 -s 1 -i "$urls" \
		--file-allocation=none --auto-file-renaming=false \
		--allow-overwrite=true --summary-interval=0 \
		--console-log-level=error
}
c_curl_parallel() {
	run "curl --parallel" "$s" "$urls" "$count" \
		curl -s -f --parallel --parallel-immediate \
		--parallel-max "$j" -K "$work/$s.cfg"
}
c_wget2() {
	run wget2 "$s" "$urls" "$count" \
		wget2 -q --max-threads="$j" --no-robots -i "$urls" \
		--no-hsts --no-netrc
}
c_four_curls() {
	run "4 curl -K" "$s" "$urls" "$count" four_curls "$work/$s.part."
}
c_curl_one() {
	run "curl -K, 1 connection" "$s" "$urls" "$count" \
		curl -s -f -K "$work/$s.cfg"
}
c_xargs() {
	run "xargs -P $j curl" "$s" "$work/$s.xargs" "$n" \
		xargs -P "$j" -n 1 curl -s -f -O <"$work/$s.xargs"
}
c_split8() { run "mpget -x 8 -s 8" split "$urls" 1 "$mpget" -q -x 8 -s 8 "$u"; }
c_split_aria2c() {
	run "aria2c -x 8 -s 8 -k 1M" split "$urls" 1 \
		aria2c -q -x 8 -s 8 -k 1M --allow-overwrite=true \
		--file-allocation=none --console-log-level=error "$u"
}
c_split1() { run "mpget -x 1 -s 1" split "$urls" 1 "$mpget" -q -x 1 -s 1 "$u"; }

rotate() { # ROUND CONTENDER...: run them all, starting ROUND places in
	local round=$1 k
	shift
	for ((k = 0; k < $#; k++)); do
		local c=$(( (round + k) % $# + 1 ))
		"${!c}"
	done
}

batch() { # NAME CONNS COUNT ROUND: one round of the batch scenarios
	local s=$1 j=$2 count=$3 out=$work/out urls=$work/$1.urls n=$3
	local cs=(c_mpget c_mpget_nofsync)
	[ -n "$old" ] && cs+=(c_old)
	have aria2c && cs+=(c_aria2c)
	have curl && cs+=(c_curl_parallel)
	have wget2 && cs+=(c_wget2)
	if have curl; then
		curl_cfg "$urls" "$out" >"$work/$s.cfg"
		rm -f "$work/$s.part."*
		split_cfg "$urls" "$out" 4 "$work/$s.part."
		[ "$s" = small ] && [ "$nxargs" -lt "$n" ] && n=$nxargs
		head -n "$n" "$urls" >"$work/$s.xargs"
		cs+=(c_four_curls c_curl_one c_xargs)
	fi
	rotate "$4" "${cs[@]}"
}

splitting() { # ROUND: one round of the split scenario
	local urls=$work/split.urls u
	u=$(cat "$urls")
	local cs=(c_split8)
	have aria2c && cs+=(c_split_aria2c)
	cs+=(c_split1)
	rotate "$1" "${cs[@]}"
}

ratio() { # SCENARIO OURS PEER [headline]: the ratio of the medians
	local ours=${result[$1,$2]:-} peer=${result[$1,$3]:-} kind=ratio
	[ -n "$ours" ] && [ -n "$peer" ] && [ "$peer" != 0 ] || return 0
	local r
	r=$(printf '%.2f' "$(echo "$ours / $peer" | bc -l)")
	echo "| $1 | **$2 vs $3** | **${r}x** | | | ratio of medians | |"
	[ -n "${4:-}" ] && kind=headline # the README's summary
	if [ -n "${MP_BENCH_CSV:-}" ]; then
		echo "$kind,$1,${2//,/;} vs ${3//,/;},$r,x" >>"$MP_BENCH_CSV"
	fi
}

echo
echo "### mpget: downloads from a local nginx ($(nproc) CPUs shared by server and clients)"
echo
want small && echo "small: $nfiles files of 16 KiB, 8 connections (xargs:" \
	"first $nxargs files, rate extrapolated), $reps_small runs."
want large && echo "large: 4 files of $mb MiB, 4 connections, $reps_large runs."
want split && echo "split: one file of $split_mb MiB from a location" \
	"limited to $rate/s per connection, $reps_split runs."
echo "Every byte of every file is checked; median, min and max of" \
	"interleaved runs, ratios of medians.  mpget fsyncs each file by" \
	"default, the peers do not: \`mpget --no-fsync\` is the same work" \
	"as theirs."
[ -n "$old" ] && echo "\`$old_name\` is $old."
echo
echo "| scenario | implementation | median | min | max | unit | runs |"
echo "| --- | --- | ---: | ---: | ---: | --- | ---: |"
if want small; then
	for r in $(seq 0 $((reps_small - 1))); do batch small 8 "$nfiles" "$r"; done
fi
if want large; then
	for r in $(seq 0 $((reps_large - 1))); do batch large 4 4 "$r"; done
fi
if want split; then
	for r in $(seq 0 $((reps_split - 1))); do splitting "$r"; done
fi
table
for s in small large; do
	for p in aria2c "curl --parallel" wget2 "4 curl -K" \
		"curl -K, 1 connection" "xargs -P 8 curl" "xargs -P 4 curl"; do
		case $p in "curl --parallel" | wget2) h=1 ;; *) h= ;; esac
		ratio "$s" mpget "$p" $h
	done
	ratio "$s" "mpget --no-fsync" "curl --parallel"
	ratio "$s" "mpget --no-fsync" wget2
	ratio "$s" mpget "$old_name"
done
ratio split "mpget -x 8 -s 8" "aria2c -x 8 -s 8 -k 1M" 1
ratio split "mpget -x 8 -s 8" "mpget -x 1 -s 1"
