#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tests of scripts/deps.sh against fake dpkg-query, apt-get and id (on
# PATH), and a package lock held by a helper process:
#   triggers_pending  a package in "triggers-pending" state counts as
#                     installed: apt-get is not run
#   lock_wait         with the lock held, deps.sh says so and waits; once
#                     it is released, apt-get runs (the fake apt-get fails
#                     as the real one does when it finds the lock held)
#   lock_bounded      a lock never released: deps.sh gives up after
#                     MP_DPKG_WAIT seconds with a message, exit 1
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
holder_pid=
cleanup() {
	[ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "not ok - $*"
	exit 1
}

mkdir "$tmp/bin"
# dpkg-query -W -f=FORMAT PKG: the state named in $tmp/state-PKG, else
# "installed".
# With -f='${Status}' it says "install ok STATE", as dpkg-query does.
cat >"$tmp/bin/dpkg-query" <<EOF
#!/bin/sh
for a; do p=\$a; done
state=installed
[ -f "$tmp/state-\$p" ] && state=\$(cat "$tmp/state-\$p")
case "\$2" in
*Status-Status*) printf '%s' "\$state" ;;
*) printf 'install ok %s' "\$state" ;;
esac
EOF
# apt-get: logs its call; fails, as apt does, while the lock is held.
cat >"$tmp/bin/apt-get" <<EOF
#!/bin/sh
if ! python3 -c 'import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)' "$tmp/lock" 2>/dev/null; then
	echo "E: Could not get lock $tmp/lock" >&2
	exit 100
fi
echo "apt-get \$*" >>"$tmp/apt.log"
EOF
printf '#!/bin/sh\necho 0\n' >"$tmp/bin/id"
chmod +x "$tmp/bin/"*
touch "$tmp/lock" "$tmp/apt.log"
export PATH=$tmp/bin:$PATH MP_DPKG_LOCKS=$tmp/lock

# The lock holder: takes the lock, says "locked", lets go when its input
# closes.
hold_lock() {
	mkfifo "$tmp/release" "$tmp/held"
	python3 -c 'import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()' "$tmp/lock" <"$tmp/release" >"$tmp/held" &
	holder_pid=$!
	exec 7>"$tmp/release"
	read -r line <"$tmp/held"
	[ "$line" = locked ] || fail "lock holder did not start"
}

# triggers_pending
printf 'triggers-pending' >"$tmp/state-man-db"
"$here/scripts/deps.sh" >"$tmp/out" 2>&1 || fail "triggers_pending: exit $?"
[ ! -s "$tmp/apt.log" ] ||
	fail "triggers_pending: apt-get ran: $(cat "$tmp/apt.log")"
echo "ok - triggers_pending"

# lock_wait
printf 'not-installed' >"$tmp/state-cmake"
hold_lock
mkfifo "$tmp/err"
"$here/scripts/deps.sh" >"$tmp/out" 2>"$tmp/err" 7>&- &
deps_pid=$!
exec 8<"$tmp/err"
read -r line <&8
case "$line" in
*"package lock is held by python3 (pid $holder_pid)"*"waiting"*) ;;
*) fail "lock_wait: first message was: $line" ;;
esac
exec 7>&- # release the lock
wait "$holder_pid" || true
holder_pid=
cat <&8 >"$tmp/err.rest"
wait "$deps_pid" || fail "lock_wait: deps.sh failed: $(cat "$tmp/err.rest")"
grep -q "package lock is free" "$tmp/err.rest" ||
	fail "lock_wait: no 'free' message"
grep -q "apt-get .*install .*cmake" "$tmp/apt.log" ||
	fail "lock_wait: cmake not installed: $(cat "$tmp/apt.log")"
echo "ok - lock_wait"

# lock_bounded
rm -f "$tmp/release" "$tmp/held"
: >"$tmp/apt.log"
hold_lock
if MP_DPKG_WAIT=1 "$here/scripts/deps.sh" >"$tmp/out" 2>&1; then
	fail "lock_bounded: deps.sh succeeded with the lock held"
fi
grep -q "still held by python3 (pid $holder_pid) after 1s" "$tmp/out" ||
	fail "lock_bounded: output: $(cat "$tmp/out")"
[ ! -s "$tmp/apt.log" ] || fail "lock_bounded: apt-get ran"
echo "ok - lock_bounded"
