#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark (bench/bench-* programs and bench/*.sh scripts) with
# its peers; write bench/results.md (tables: median, min and max of each
# contender's interleaved runs), bench/results.{svg,png} (a chart of the
# ratios of medians) and, between the README's bench markers, a summary:
# the headline ratios only.
#
# BENCH_QUICK=1: every benchmark small and 3 runs each, a smoke test (a
# minute or so): the results go to BUILD/bench/ and the README is left
# alone, since such figures mean nothing.  BENCH_OUT=DIR writes the
# results there instead (and leaves the README alone too); BENCH_README=
# FILE puts the summary in FILE's markers, whatever the mode.
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd) || exit 1
build=$(cd "$build" && pwd) || exit 1
cd "$here" || exit 1 # the benchmarks find their Python peers in bench/python/
quick=
[ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ] && quick=1
outdir=${BENCH_OUT:-}
readme=$here/README.md
if [ -n "$outdir" ] || [ -n "$quick" ]; then
	readme=
	outdir=${outdir:-$build/bench}
else
	outdir=$here/bench
fi
readme=${BENCH_README:-$readme}
mkdir -p "$outdir" || exit 1
out=$outdir/results.md
csv=$(mktemp)
export MP_BENCH_CSV=$csv
t0=$(date +%s)

runs="7 each; mpget and the 1 GiB fork case: 5"
[ -z "$quick" ] || runs="3 each, quick mode"
[ -z "${BENCH_RUNS:-}" ] || runs="BENCH_RUNS=$BENCH_RUNS"
machine="Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)."
{
	echo "# Benchmark results"
	echo
	echo "$machine" \
	     "Each contender ran several times ($runs), interleaved with its" \
	     "peers in the same run; the tables show the median, min and max" \
	     "of those runs, and every ratio is of medians (ours over the" \
	     "peer's, more is better).  Nothing is pinned to a CPU unless its" \
	     "row says so."
	[ -z "$quick" ] || echo "**Quick mode (BENCH_QUICK): small sizes, 3 runs; not figures.**"
} >"$out"
for b in "$build"/bench/bench-*; do
	if [ ! -f "$b" ] || [ ! -x "$b" ]; then continue; fi
	echo "running $(basename "$b")" >&2
	"$b" | tee -a "$out"
done
for s in "$here"/bench/*.sh; do
	[ -x "$s" ] || continue
	echo "running $(basename "$s")" >&2
	"$s" "$build" | tee -a "$out"
done
if command -v gnuplot >/dev/null && [ -s "$csv" ]; then
	"$here/scripts/bench-chart.sh" "$csv" "$outdir/results"
fi
# The README shows a summary of this run, between its bench markers: the
# ratios each benchmark marked as a headline (bench.h's BENCH_HEADLINE).
if [ -n "$readme" ] && grep -q '^headline,' "$csv"; then
	table=$(mktemp)
	{
		echo "$machine Ratios of the medians of interleaved runs" \
		     "($runs), ours over the peer's, more is better;" \
		     "every peer, with min and max, is in bench/results.md."
		echo
		echo "| scenario | comparison | ratio of medians |"
		echo "| --- | --- | ---: |"
		# The CSV writes a name's commas as semicolons.
		awk -F, '$1 == "headline" {
			gsub(/;/, ",", $2); gsub(/;/, ",", $3)
			printf "| %s | %s | %.2fx |\n", $2, $3, $4 }' "$csv"
	} >"$table"
	awk -v table="$table" '
		/<!-- bench:start -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0 }
		!skip { print }' "$readme" >"$readme.new" &&
		mv "$readme.new" "$readme"
	rm -f "$table"
fi
rm -f "$csv"
echo "wrote $out in $(($(date +%s) - t0)) s" >&2
