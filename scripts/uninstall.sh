#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make uninstall [DESTDIR=...]`: remove every file the last `make install`
# put (CMake lists them, without DESTDIR, in install_manifest.txt), then
# the folders of ours that are left empty.
set -euo pipefail
manifest=${1:-build/install_manifest.txt}
if [ ! -f "$manifest" ]; then
	echo "uninstall: no $manifest: nothing was installed from this build" >&2
	exit 1
fi
dest=${DESTDIR:-}
n=0
while IFS= read -r f || [ -n "$f" ]; do
	f=$dest$f
	if [ -e "$f" ] || [ -L "$f" ]; then
		rm -f -- "$f"
		n=$((n + 1))
	fi
done <"$manifest"
# Folders that hold only our files; shared ones (lib/, share/man/man3/)
# stay even when empty.
while IFS= read -r f || [ -n "$f" ]; do
	d=$(dirname "$dest$f")
	case "$d" in
	*/include/multiproc | */cmake/multiproc | */doc/multiproc | \
		*/doc/multiproc/examples)
		rmdir -p --ignore-fail-on-non-empty "$d" 2>/dev/null || true ;;
	esac
done < <(sort -r "$manifest")
rm -f "$manifest"
echo "removed $n files"
