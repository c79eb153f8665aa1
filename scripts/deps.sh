#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what the build, the tests and the demo need (with "bench", the
# benchmark peers too; with "deb", what building the Debian packages
# needs).  Installs only what is missing; as root through apt-get,
# otherwise it says what to install.  When another apt or dpkg holds the
# package lock (unattended-upgrades on a fresh machine, say), it waits for
# it, up to MP_DPKG_WAIT seconds (default 600), saying so.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev nginx-light
      python3 man-db openssl curl libopenmpi-dev openmpi-bin python3-mpi4py
      valgrind)
case "${1:-}" in
bench) pkgs+=(aria2 wget2 curl gnuplot-nox) ;;
deb) pkgs+=(debhelper dpkg-dev fakeroot lintian) ;;
fuzz) pkgs+=(clang libclang-rt-dev) ;;
esac
wait_max=${MP_DPKG_WAIT:-600}
locks=(${MP_DPKG_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock
       /var/lib/apt/lists/lock /var/cache/apt/archives/lock})

# Unpacked and configured counts, whether or not its triggers have run yet
# (a package installed alongside man-db is "triggers-pending" for a while).
installed() {
	case $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) in
	installed | triggers-pending | triggers-awaited) return 0 ;;
	*) return 1 ;;
	esac
}

# The process holding one of the package locks, as "name (pid N)", if any.
# dpkg and apt take them with fcntl(), which /proc/locks lists by inode.
lock_holder() {
	local f ino pid
	for f in "${locks[@]}"; do
		[ -e "$f" ] || continue
		ino=$(stat -c %i "$f")
		pid=$(awk -v ino="$ino" '$2 == "POSIX" || $2 == "OFDLCK" {
			split($6, id, ":"); if (id[3] == ino) { print $5; exit } }' \
			/proc/locks)
		if [ -n "$pid" ]; then
			echo "$(cat /proc/"$pid"/comm 2>/dev/null || echo '?') (pid $pid)"
			return 0
		fi
	done
	return 1
}

wait_for_lock() {
	local waited=0 holder
	while holder=$(lock_holder); do
		if [ "$waited" -eq 0 ]; then
			echo "deps: the package lock is held by $holder;" \
				"waiting for it (up to ${wait_max}s)..." >&2
		fi
		if [ "$waited" -ge "$wait_max" ]; then
			echo "deps: still held by $holder after ${wait_max}s;" \
				"run make again once it is done" >&2
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	if [ "$waited" -gt 0 ]; then
		echo "deps: the package lock is free after ${waited}s" >&2
	fi
}

missing=()
for p in "${pkgs[@]}"; do
	installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "multiproc needs these Debian packages: ${missing[*]}" >&2
	echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt waits on the lock too (the lock can be taken between our look and
# its), but silently: we said why above.
apt=(apt-get -qq -o DPkg::Lock::Timeout="$wait_max")
wait_for_lock
"${apt[@]}" update
wait_for_lock
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
