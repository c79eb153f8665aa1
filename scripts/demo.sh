#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The demo: the tutorial's examples in its order, each with a line saying
# what it shows, then mpget downloading a set of images from a local HTTP
# server that this script starts and stops (only 127.0.0.1 is used).
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)

for src in "$here"/examples/[0-9]*.c; do
	name=$(basename "$src" .c)
	# The first line of each example says what it shows.
	about=$(head -n 1 "$src" | sed -e 's|^/\* *||' -e 's| *\*/$||')
	echo
	echo "${bold}== examples/$name.c: $about${plain}"
	if [ "$name" = 06-download-images ] && [ -x "$here/scripts/demo-mpget.sh" ]; then
		echo "(it needs a web server: it runs below, against a local one)"
		continue
	fi
	"$build/examples/$name"
done

if [ -x "$here/scripts/demo-mpget.sh" ]; then
	"$here/scripts/demo-mpget.sh" "$build"
fi
