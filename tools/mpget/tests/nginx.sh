#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A private nginx on 127.0.0.1 for mpget's tests, demo and benchmark.
#
#   nginx.sh start ROOT STATEDIR [WORKERS]   serve ROOT; prints the port
#   nginx.sh stop STATEDIR
#
# Tests add to the config with two files they write: MPGET_NGINX_HTTP is
# included in the http block (more servers: TLS, client certificates),
# MPGET_NGINX_SERVER in the main server (more locations: rate limits,
# auth, cookies).
# Everything nginx writes (config, pid, logs, temp dirs) is under
# STATEDIR; it listens on a free port of 127.0.0.1 only.
set -euo pipefail

nginx_bin=${MPGET_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

start() {
	local root state workers port user_line="" http_inc="" server_inc=""
	root=$(cd "$1" && pwd)
	mkdir -p "$2"
	state=$(cd "$2" && pwd)
	workers=${3:-1}
	mkdir -p "$state/tmp"
	# Root runs the workers as root too: the files may be anywhere.
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	[ -n "${MPGET_NGINX_HTTP:-}" ] && http_inc="include $MPGET_NGINX_HTTP;"
	[ -n "${MPGET_NGINX_SERVER:-}" ] &&
		server_inc="include $MPGET_NGINX_SERVER;"
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		cat >"$state/nginx.conf" <<EOF
$user_line
worker_processes $workers;
pid $state/nginx.pid;
error_log $state/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $state/tmp/body;
	proxy_temp_path $state/tmp/proxy;
	fastcgi_temp_path $state/tmp/fastcgi;
	uwsgi_temp_path $state/tmp/uwsgi;
	scgi_temp_path $state/tmp/scgi;
	default_type application/octet-stream;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 1000000;
	keepalive_timeout 60s;
	$http_inc
	server {
		listen 127.0.0.1:$port;
		root $root;
		$server_inc
	}
}
EOF
		rm -f "$state/nginx.pid"
		if "$nginx_bin" -p "$state" -c "$state/nginx.conf" \
			-e "$state/error.log" 2>>"$state/start.log"; then
			for _ in $(seq 50); do
				[ -s "$state/nginx.pid" ] && break
				sleep 0.05
			done
			echo "$port" >"$state/port"
			echo "$port"
			return 0
		fi
	done
	echo "nginx did not start; see $state/start.log" >&2
	return 1
}

stop() {
	local state=$1 pid
	[ -s "$state/nginx.pid" ] || return 0
	pid=$(cat "$state/nginx.pid")
	kill -QUIT "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$state/nginx.pid"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) echo "usage: $0 start ROOT STATEDIR [WORKERS] | stop STATEDIR" >&2
   exit 2 ;;
esac
