#!/usr/bin/env bash
# Install what the build, the tests and the demo need (and with "bench",
# the benchmark peers).  Installs only what is missing; as root through
# apt-get, otherwise it says what to install.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev nginx-light
      python3 man-db)
if [ "${1:-}" = bench ]; then
	pkgs+=(aria2 wget2 curl gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "multiproc needs these Debian packages: ${missing[*]}" >&2
	echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
