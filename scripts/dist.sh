#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make dist`: OUT/multiproc-VERSION.tar.gz, the tracked files as they are
# in the working tree, under one folder, reproducible (owner 0, the last
# commit's time).  It builds and runs `make test` without git.
set -euo pipefail
out=${1:-out}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
version=$(sed -n 's/^project(multiproc VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	echo "dist: needs a git checkout (it packs the tracked files)" >&2
	exit 1
fi
name=multiproc-$version
mkdir -p "$out"
tarball=$out/$name.tar.gz
git ls-files -z --cached |
	while IFS= read -r -d '' f; do
		if [ -e "$f" ]; then printf '%s\0' "$f"; fi
	done |
	tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$(git log -1 --format=%ct)" \
		--transform="s,^,$name/," -cf - |
	gzip -n -9 >"$tarball"
echo "$tarball ($(tar -tzf "$tarball" | wc -l) files)"
