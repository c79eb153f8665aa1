#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make install-check`: install the build twice and check what a user and a
# packager get.
#  1. Into a temporary prefix (cmake --install --prefix): the tree is
#     complete, every exported symbol is versioned MULTIPROC_*, every
#     public function has a man page `man` finds, and a program builds and
#     runs against it with pkg-config (shared, then static) and with
#     CMake's find_package(multiproc) (shared, then static).
#  2. With DESTDIR and PREFIX=/usr, as a package build does: nothing lands
#     outside DESTDIR, the .pc file prints the usual flags for /usr, and
#     scripts/uninstall.sh takes every file away again.
set -euo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
manifest=$build/install_manifest.txt
# Our installs must not replace the manifest of the user's `make install`.
[ -f "$manifest" ] && cp "$manifest" "$tmp/manifest.saved"
restore() {
	if [ -f "$tmp/manifest.saved" ]; then
		cp "$tmp/manifest.saved" "$manifest"
	else
		rm -f "$manifest"
	fi
	rm -rf "$tmp"
}
trap restore EXIT
fail() {
	echo "install-check: $*" >&2
	exit 1
}

version=$(sed -n 's/^project(multiproc VERSION \([0-9.]*\).*/\1/p' \
	"$here/CMakeLists.txt")
major=${version%%.*}
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libmultiproc.so -print -quit)")
[ -d "$libdir" ] || fail "no libmultiproc.so installed"
for f in include/multiproc.h include/multiproc/version.h bin/mpget \
	share/man/man1/mpget.1 share/man/man7/multiproc.7 \
	share/man/man3/mp_queue.3 share/doc/multiproc/tutorial.md; do
	[ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in libmultiproc.a libmultiproc.so.$major libmultiproc.so.$version \
	pkgconfig/multiproc.pc cmake/multiproc/multiprocConfig.cmake; do
	[ -e "$libdir/$f" ] || fail "$f not installed in $libdir"
done
grep -q "MP_VERSION_STRING \"$version\"" "$prefix/include/multiproc/version.h" ||
	fail "version.h does not say $version"
echo "tree: ok ($(find "$prefix" -type f | wc -l) files, libdir ${libdir#"$prefix"/})"

# Symbol versions: every symbol the library defines is mp_* at MULTIPROC_x,
# or an internal mp__* that libmultiproc-mpi uses, at MULTIPROC_PRIVATE.
so=$libdir/libmultiproc.so.$version
bad=$(readelf --dyn-syms -W "$so" |
	awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $8 != "" && $4 != "SECTION"' |
	awk '$8 !~ /^mp_[a-z0-9_]+@@MULTIPROC_[0-9.]+$/ && $8 !~ /^MULTIPROC_/ &&
		$8 !~ /^mp__[a-z0-9_]+@@MULTIPROC_PRIVATE$/ {print $8}')
[ -z "$bad" ] || fail "unversioned or non-mp_ symbols exported: $bad"
readelf -d "$so" | grep "SONAME.*libmultiproc.so.$major" >/dev/null ||
	fail "soname is not libmultiproc.so.$major"
echo "symbols: ok ($(readelf --dyn-syms -W "$so" | grep -c '@@MULTIPROC_') versioned)"

# Man pages: every public function of the header, by its own name.
# (those of <multiproc/mpi.h> only when libmultiproc-mpi is built).
with_mpi=0
[ -e "$build/libmultiproc-mpi.so" ] && with_mpi=1
functions=$(python3 - "$here/include/multiproc" "$with_mpi" <<'EOF'
import glob, re, sys
pub = re.compile(r"^(?:MP_EXTERN|static inline)\b[^;{]*?\b(mp_\w+)\s*\(", re.M)
names = set()
for h in glob.glob(sys.argv[1] + "/*.h"):
    if h.endswith("/mpi.h") and sys.argv[2] != "1":
        continue
    names.update(pub.findall(open(h, encoding="utf-8").read()))
print("\n".join(sorted(names)))
EOF
)
n=0
for fn in $functions; do
	page=$(MANPATH=$prefix/share/man man -w "$fn" 2>/dev/null) ||
		fail "man $fn: no page"
	case "$page" in "$prefix"/*) ;; *) fail "man $fn finds $page" ;; esac
	n=$((n + 1))
done
MANPATH=$prefix/share/man MANWIDTH=80 man -P cat mp_queue_put 2>/dev/null |
	grep "mp_queue_put" >/dev/null || fail "man mp_queue_put does not show mp_queue(3)"
for page in "$prefix"/share/man/man*/*; do
	[ -L "$page" ] || grep -q '^\.so ' "$page" && continue
	man -l "$page" >/dev/null 2>&1 || fail "man page does not render: $page"
done
echo "man pages: ok ($n functions, man mp_queue_put shows mp_queue(3))"

# A program against it: pkg-config, shared then static.
cp "$here/examples/01-process.c" "$tmp/app.c"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
cc -std=gnu11 -o "$tmp/app-pc" "$tmp/app.c" $(pkg-config --cflags --libs multiproc) \
	-Wl,-rpath,"$(pkg-config --variable=libdir multiproc)"
"$tmp/app-pc" | tail -n 1
readelf --dyn-syms -W "$tmp/app-pc" | grep "mp_process_new@MULTIPROC_" >/dev/null ||
	fail "the program does not bind mp_process_new at a symbol version"
# shellcheck disable=SC2046
cc -std=gnu11 -static -o "$tmp/app-static" "$tmp/app.c" \
	$(pkg-config --static --cflags --libs multiproc)
"$tmp/app-static" | tail -n 1
! readelf -d "$tmp/app-static" 2>/dev/null | grep NEEDED >/dev/null ||
	fail "the static program needs shared libraries"
echo "pkg-config builds (shared, static): ok"

# And with CMake: multiproc::multiproc, then multiproc::multiproc_static.
mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(multiproc $version REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE multiproc::multiproc)
add_executable(app-static ../app.c)
target_link_libraries(app-static PRIVATE multiproc::multiproc_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/app" | tail -n 1
"$tmp/cm/build/app-static" | tail -n 1
! readelf -d "$tmp/cm/build/app-static" | grep 'NEEDED.*libmultiproc' >/dev/null ||
	fail "multiproc::multiproc_static links the shared library"
echo "find_package builds (shared, static): ok"

# libmultiproc-mpi, when the build has it: its files, its symbols
# (mp_mpi_* at MULTIPROC_MPI_x), and the MPI example built with
# pkg-config and with find_package (multiproc::mpi), run on 2 ranks.
if [ -e "$build/libmultiproc-mpi.so" ]; then
	for f in include/multiproc/mpi.h share/man/man3/mp_mpi_pool_new.3; do
		[ -e "$prefix/$f" ] || fail "$f not installed"
	done
	for f in libmultiproc-mpi.so libmultiproc-mpi.so.$major \
		pkgconfig/multiproc-mpi.pc cmake/multiproc/multiprocMpiTargets.cmake; do
		[ -e "$libdir/$f" ] || fail "$f not installed in $libdir"
	done
	mso=$libdir/libmultiproc-mpi.so.$version
	bad=$(readelf --dyn-syms -W "$mso" |
		awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $8 != "" && $4 != "SECTION"' |
		awk '$8 !~ /^mp_mpi_[a-z0-9_]+@@MULTIPROC_MPI_[0-9.]+$/ &&
			$8 !~ /^MULTIPROC_MPI_/ {print $8}')
	[ -z "$bad" ] || fail "libmultiproc-mpi exports: $bad"
	cp "$here/examples/13-mpi-pool.c" "$tmp/mpi-app.c"
	# shellcheck disable=SC2046
	cc -std=gnu11 -o "$tmp/mpi-app" "$tmp/mpi-app.c" \
		$(pkg-config --cflags --libs multiproc-mpi) -Wl,-rpath,"$libdir"
	mkdir -p "$tmp/cmm"
	cat >"$tmp/cmm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(mpiapp C)
find_package(multiproc $version REQUIRED)
add_executable(mpi-app ../mpi-app.c)
target_link_libraries(mpi-app PRIVATE multiproc::mpi)
CM
	cmake -S "$tmp/cmm" -B "$tmp/cmm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
	cmake --build "$tmp/cmm/build" >/dev/null
	for app in "$tmp/mpi-app" "$tmp/cmm/build/mpi-app"; do
		# The whole output first: a pipe into grep -q could SIGPIPE mpirun.
		out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
			mpirun --oversubscribe -np 2 "$app" 2>&1) &&
			grep -q "1 worker processes" <<<"$out" ||
			{ printf '%s\n' "$out" >&2; fail "$app under mpirun -np 2 failed"; }
	done
	echo "libmultiproc-mpi (files, symbols, pkg-config and find_package builds under mpirun): ok"
fi

# 2. DESTDIR with PREFIX=/usr, as dh_auto_install does.
stage=$tmp/stage
DESTDIR=$stage cmake --install "$build" --prefix /usr >/dev/null
outside=$(grep -v "^/usr/" "$manifest" || true)
[ -z "$outside" ] || fail "installed outside PREFIX=/usr: $outside"
while IFS= read -r f || [ -n "$f" ]; do
	[ -e "$stage$f" ] || [ -L "$stage$f" ] || fail "$f is not in DESTDIR"
done <"$manifest"
pc=$(find "$stage" -name multiproc.pc)
grep -qx 'prefix=/usr' "$pc" || fail "$pc: prefix is not /usr"
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs multiproc | xargs)
[ "$flags" = "-lmultiproc" ] ||
	fail "pkg-config for a /usr install prints '$flags', not '-lmultiproc'"
DESTDIR=$stage "$here/scripts/uninstall.sh" "$manifest" >/dev/null
left=$(find "$stage" -type f -o -type l)
[ -z "$left" ] || fail "uninstall left: $left"
echo "DESTDIR install with PREFIX=/usr, then uninstall: ok"
