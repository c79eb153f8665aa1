# SPDX-License-Identifier: MIT
"""A small forward proxy for mpget's tests, on 127.0.0.1 only: plain
requests in absolute form are sent on to their origin, CONNECT is
tunnelled.  Every request line is logged, so a test can tell that a
request went through it (and how).

  srv, port = proxy.start()
  ...  srv.log  ...  proxy.stop(srv)
"""

import select
import socket
import socketserver
import threading
import urllib.parse


def pipe(a, b):
    """Copy both ways until either side closes."""
    socks = [a, b]
    try:
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        c = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = c.recv(65536)
            if not data:
                return
            head += data
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        self.server.log.append("%s %s" % (method, target))
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up = socket.create_connection((host, int(port)))
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
        else:
            u = urllib.parse.urlsplit(target)
            up = socket.create_connection((u.hostname, u.port or 80))
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            # One request per upstream connection: keep it simple.
            hdrs = [h for h in lines[1:] if not h.lower().startswith(
                ("proxy-connection:", "connection:"))]
            out = "%s %s %s\r\n%s\r\nConnection: close\r\n\r\n" % (
                method, path, version, "\r\n".join(hdrs))
            up.sendall(out.encode("latin-1") + rest)
        try:
            pipe(c, up)
        finally:
            up.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start():
    srv = Server(("127.0.0.1", 0), Handler)
    srv.log = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def stop(srv):
    srv.shutdown()
    srv.server_close()
