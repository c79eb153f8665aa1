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
	case "$name" in
	*-mpi-*)
		# MPI examples: only with libmultiproc-mpi, under mpirun.
		if [ ! -x "$build/examples/$name" ]; then
			echo "(libmultiproc-mpi is not built: skipped)"
			continue
		fi
		OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
			mpirun --oversubscribe -np 4 "$build/examples/$name"
		continue ;;
	esac
	"$build/examples/$name"
done

if [ -x "$here/scripts/demo-mpget.sh" ]; then
	"$here/scripts/demo-mpget.sh" "$build"
fi
