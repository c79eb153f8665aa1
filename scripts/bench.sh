#!/usr/bin/env bash
# Run every benchmark (bench/bench-* programs and bench/*.sh scripts) with
# its peers; write bench/results.md (tables) and bench/results.{svg,png}
# (a chart of the ratios).
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
cd "$here" # the benchmarks find their Python peers in bench/python/
out=$here/bench/results.md
csv=$(mktemp)
export MP_BENCH_CSV=$csv

{
	echo "# Benchmark results"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
	     "Linux $(uname -r). Ratios are ours over the peer's, measured in the same run."
} >"$out"
for b in "$build"/bench/bench-*; do
	[ -x "$b" ] || continue
	echo "running $(basename "$b")" >&2
	"$b" | tee -a "$out"
done
for s in "$here"/bench/*.sh; do
	[ -x "$s" ] || continue
	echo "running $(basename "$s")" >&2
	"$s" "$build" | tee -a "$out"
done
if command -v gnuplot >/dev/null && [ -s "$csv" ]; then
	"$here/scripts/bench-chart.sh" "$csv" "$here/bench/results"
fi
# The README shows the ratios of this run, between its bench markers.
if [ -s "$csv" ]; then
	table=$(mktemp)
	{
		sed -n 3p "$out"
		echo
		echo "| scenario | comparison | ratio (ours over the peer's, more is better) |"
		echo "| --- | --- | ---: |"
		awk -F, '$5 == "x" { printf "| %s | %s | %.2fx |\n", $2, $3, $4 }' "$csv"
	} >"$table"
	awk -v table="$table" '
		/<!-- bench:start -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0 }
		!skip { print }' "$here/README.md" >"$here/README.md.new" &&
		mv "$here/README.md.new" "$here/README.md"
	rm -f "$table"
fi
rm -f "$csv"
echo "wrote $out" >&2
