#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Chart the benchmark ratios (of medians): for each scenario, ours against
# each peer, as one horizontal bar per comparison (OUT.svg and OUT.png).
# Input: the CSV the benchmarks append to (bench,scenario,impl,value,unit
# first); a row whose unit is "x" is a ratio (ours over the peer, more is
# better for us).
set -euo pipefail
csv=$1
out=${2%.svg}
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# The CSV writes a name's commas as semicolons: show them as commas.
awk -F, '$5 == "x" { gsub(/;/, ",", $2); gsub(/;/, ",", $3)
	printf "\"%s: %s\" %s\n", $2, $3, $4 }' "$csv" >"$data"
[ -s "$data" ] || exit 0
rows=$(wc -l <"$data")
for term in svg png; do
	if [ $term = svg ]; then
		setterm="set terminal svg size 1100,$((120 + rows * 24)) font 'sans,11' noenhanced"
	else
		setterm="set terminal png size 1100,$((120 + rows * 24)) font 'sans,9' noenhanced"
	fi
	gnuplot <<GP
$setterm
set output "$out.$term"
set lmargin 62
set title "multiproc against its peers (ratio of medians; right of 1 = we win)"
set style fill solid 0.8
set yrange [-1:$rows]
set logscale x 10
set xlabel "ratio, log scale"
set grid x
unset key
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb "red" lw 2
plot "$data" using (\$2 > 1 ? \$2 : 1):0:(\$2 > 1 ? 1 : \$2):(\$2 > 1 ? \$2 : 1):(\$0-0.4):(\$0+0.4):ytic(1) with boxxyerror lc rgb "#4472c4"
GP
done
