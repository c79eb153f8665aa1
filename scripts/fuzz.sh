#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every libFuzzer target of BUILD for SECONDS each, starting from the
# committed seed corpus (new inputs go to BUILD/corpus-TARGET; the
# committed corpus is left as it is).  A crash leaves its input in
# BUILD/TARGET-crash-* and fails the run.
#   scripts/fuzz.sh BUILD [SECONDS]
set -euo pipefail
build=${1:?usage: fuzz.sh BUILD [SECONDS]}
secs=${2:-60}
here=$(cd "$(dirname "$0")/.." && pwd)

run() { # target binary seeds max_len
	local t=$1 bin=$2 seeds=$3 len=$4
	mkdir -p "$build/corpus-$t"
	echo "fuzz: $t for ${secs}s"
	"$bin" -max_total_time="$secs" -max_len="$len" -print_final_stats=1 \
		-artifact_prefix="$build/$t-" "$build/corpus-$t" $seeds \
		2>"$build/fuzz-$t.log" ||
		{ tail -n 40 "$build/fuzz-$t.log"; echo "fuzz: $t failed" >&2; exit 1; }
	grep -E '^stat::number_of_executed_units' "$build/fuzz-$t.log" || true
}

run urllist "$build/tools/mpget/fuzz-urllist" "$here/tools/mpget/fuzz/corpus/urllist" 8192
run names "$build/tools/mpget/fuzz-names" "$here/tools/mpget/fuzz/corpus/names" 8192
run conn "$build/tests/fuzz-conn" "" 4096
echo "fuzz: no crash in $((3 * secs))s"
