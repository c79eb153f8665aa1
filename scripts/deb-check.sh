#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI, after `make deb`: install the packages from OUT/deb, use them as a
# user would (man pages, pkg-config, CMake, mpget), and remove them.  Needs
# root; on a machine that has multiproc installed already it refuses.
set -euo pipefail
out=${1:-out}
here=$(cd "$(dirname "$0")/.." && pwd)
debs=$(cd "$out/deb" && pwd)
pkgs=(libmultiproc0 libmultiproc-dev libmultiproc-mpi0 libmultiproc-mpi-dev mpget)
fail() {
	echo "deb-check: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root (it installs the packages)"
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null |
		grep -x installed >/dev/null; then
		fail "$p is installed already; remove it first"
	fi
done

tmp=$(mktemp -d)
remove() {
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq \
		-o DPkg::Lock::Timeout=600 "${pkgs[@]}" \
		>/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap remove EXIT

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	-o DPkg::Lock::Timeout=600 \
	"$debs"/libmultiproc0_*.deb "$debs"/libmultiproc-dev_*.deb \
	"$debs"/libmultiproc-mpi0_*.deb "$debs"/libmultiproc-mpi-dev_*.deb \
	"$debs"/mpget_*.deb >"$tmp/apt.log" 2>&1 ||
	{ cat "$tmp/apt.log"; fail "apt-get install failed"; }
echo "installed: $(dpkg-query -W -f='${Package} ${Version}, ' "${pkgs[@]}")"

man -w mp_queue_put >/dev/null || fail "man mp_queue_put: no page"
MANWIDTH=80 man -P cat mp_queue_put 2>/dev/null | grep 'MP_QUEUE(3)' >/dev/null ||
	fail "man mp_queue_put does not show mp_queue(3)"
man -w 7 multiproc >/dev/null && man -w 1 mpget >/dev/null ||
	fail "multiproc(7) or mpget(1) missing"
echo "man mp_queue_put, multiproc(7), mpget(1): ok"

flags=$(pkg-config --cflags --libs multiproc | xargs)
[ "$flags" = "-lmultiproc" ] || fail "pkg-config prints '$flags'"
cp "$here/examples/01-process.c" "$tmp/app.c"
# No rpath, no LD_LIBRARY_PATH: the library is where the loader looks.
# shellcheck disable=SC2046
cc -std=gnu11 -o "$tmp/app" "$tmp/app.c" $(pkg-config --cflags --libs multiproc)
"$tmp/app" | tail -n 1
ldd "$tmp/app" | grep 'libmultiproc.so.0 => /.*lib/.*-linux-gnu/' >/dev/null ||
	fail "the program does not use the packaged libmultiproc.so.0"
echo "pkg-config build against the package: ok"

mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(multiproc REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE multiproc::multiproc)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/app" | tail -n 1
echo "find_package build against the package: ok"

# The pool on MPI: no file of libmultiproc-mpi-dev is in libmultiproc-dev,
# and the MPI example builds with pkg-config and runs under mpirun.
both=$(comm -12 <(dpkg -L libmultiproc-dev | sort) \
	<(dpkg -L libmultiproc-mpi-dev | sort) | while read -r f; do
	[ -d "$f" ] || echo "$f"; done)
[ -z "$both" ] || fail "in libmultiproc-dev and libmultiproc-mpi-dev: $both"
cp "$here/examples/13-mpi-pool.c" "$tmp/mpi-app.c"
# shellcheck disable=SC2046
cc -std=gnu11 -o "$tmp/mpi-app" "$tmp/mpi-app.c" \
	$(pkg-config --cflags --libs multiproc-mpi)
out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	mpirun --oversubscribe -np 2 "$tmp/mpi-app" 2>&1) &&
	grep -q "1 worker processes" <<<"$out" ||
	{ printf '%s\n' "$out" >&2; fail "the MPI example under mpirun failed"; }
mkdir -p "$tmp/cmm"
cat >"$tmp/cmm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(mpiapp C)
find_package(multiproc REQUIRED)
add_executable(mpi-app ../mpi-app.c)
target_link_libraries(mpi-app PRIVATE multiproc::mpi)
CM
cmake -S "$tmp/cmm" -B "$tmp/cmm/build" >/dev/null
cmake --build "$tmp/cmm/build" >/dev/null
out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	mpirun --oversubscribe -np 2 "$tmp/cmm/build/mpi-app" 2>&1) &&
	grep -q "1 worker processes" <<<"$out" ||
	{ printf '%s\n' "$out" >&2; fail "the CMake-built MPI example failed"; }
man -w mp_mpi_pool_new >/dev/null || fail "man mp_mpi_pool_new: no page"
echo "libmultiproc-mpi: pkg-config and find_package builds under mpirun, man page: ok"

mpget --version | head -n 1

remove
trap - EXIT
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null |
		grep -x installed >/dev/null; then
		fail "$p is still installed"
	fi
done
[ ! -e /usr/include/multiproc.h ] || fail "/usr/include/multiproc.h is left"
echo "removed: ok"
