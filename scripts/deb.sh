#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make deb`: the Debian packages (libmultiproc0, libmultiproc-dev,
# libmultiproc-mpi0, libmultiproc-mpi-dev, mpget)
# from the `make dist` tarball (a native package: debian/ is kept here,
# its version is the project's), built in OUT/deb/ (dpkg-buildpackage writes
# next to the source folder, so never next to this tree), then lintian,
# which must report no error.
set -euo pipefail
out=${1:-out}
here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^project(multiproc VERSION \([0-9.]*\).*/\1/p' \
	"$here/CMakeLists.txt")
debver=$(sed -n '1s/^multiproc (\([^)]*\)).*/\1/p' "$here/debian/changelog")
if [ "$debver" != "$version" ]; then
	echo "deb: debian/changelog is at $debver, CMakeLists.txt at $version:" \
		"add a debian/changelog entry (dch -v $version)" >&2
	exit 1
fi
tarball=$(cd "$out" && pwd)/multiproc-$version.tar.gz
mkdir -p "$out"
deb=$(cd "$out" && pwd)/deb
rm -rf "$deb"
mkdir -p "$deb"
tar -xzf "$tarball" -C "$deb"
cd "$deb/multiproc-$version"
echo "dpkg-buildpackage in $deb (log: $deb/build.log)"
if ! dpkg-buildpackage -us -uc >"$deb/build.log" 2>&1; then
	tail -n 40 "$deb/build.log"
	echo "deb: dpkg-buildpackage failed; the whole log is $deb/build.log" >&2
	exit 1
fi
cd "$deb"
changes=$(ls ./*.changes)
echo "lintian $changes"
lintian --fail-on error "$changes"
ls -1 ./*.deb
