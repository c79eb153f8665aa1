#!/usr/bin/env bash
# Install to a temporary prefix, then build and run a program against it
# twice: with pkg-config and with CMake's find_package(multiproc).
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cp "$here/examples/01-process.c" "$tmp/app.c"

export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig
# shellcheck disable=SC2046
cc -std=gnu11 -o "$tmp/app-pc" "$tmp/app.c" $(pkg-config --cflags --libs multiproc) \
	-Wl,-rpath,"$(pkg-config --variable=libdir multiproc)"
"$tmp/app-pc" | tail -n 1
echo "pkg-config build: ok"

mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(multiproc 0.1 REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE multiproc::multiproc)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/app" | tail -n 1
echo "find_package build: ok"

for page in "$tmp"/prefix/share/man/man*/*; do
	[ -e "$page" ] || continue
	man -l "$page" >/dev/null 2>&1 || { echo "man page does not render: $page"; exit 1; }
done
echo "man pages: ok"
