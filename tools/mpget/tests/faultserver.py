# SPDX-License-Identifier: MIT
"""An HTTP server on 127.0.0.1 that misbehaves on purpose, for mpget's
tests: what nginx will not do (fail, reset, stall, lie about sizes,
ignore Range, redirect badly, suggest evil names).  Python standard
library only; it runs in a thread of the test driver.

Paths (ID keeps separate counters, so tests do not disturb each other):
  /data/ID/SIZE          SIZE bytes of body(ID)
  /status/CODE           that status, a short body
  /flaky/ID/N/SIZE       500 for the first N requests, then the body
  /429/ID/SIZE           429 with Retry-After: 1 once, then the body
  /reset/ID/N/SIZE       first N requests: part of the body, then RST
  /stall/SIZE            part of the body, then nothing for a long time
  /short/SIZE            Content-Length SIZE, half the bytes, then close
  /norange/ID/SIZE       ignores Range: always 200 with the whole body
  /pause/ID/SIZE?n=N     ETag, honours Range; the first N requests without
                         Range (default 1) send 40% then wait until the
                         client goes away, later ones the whole body
  /slow/SIZE             the body after 0.2 s; counts the requests served
                         at once (state.busy, state.most_busy)
  /loop                  redirects to itself
  /tofile                redirects to file:///etc/passwd
  /cd/ID/SIZE?fn=NAME    Content-Disposition: attachment; filename="NAME"
  /echo                  the request headers as the body

Hostile resources, for the promises about files on disk:
  /changing/ID/SIZE?v=V&ifrange=B&hold=N
                         body(ID:vK) where K is state.version[ID] (the test
                         bumps it to change the file between requests);
                         V (etag, lastmod, none) picks the validators sent;
                         honours Range with a 206, and If-Range when B=1
                         (default); with B=0 it ignores If-Range, as a
                         broken cache would.  The first N requests without
                         Range (default 0) send 40% and wait for the
                         client to go away
  /badrange/ID/SIZE      a 206 to any request, whose Content-Range starts
                         at 0 whatever was asked
  /gate/ID/SIZE?at=N     ETag, N bytes of body(ID), then nothing until the
                         test calls state.open_gate(ID), then the rest
  /trickle/ID/SIZE?chunk=C&every=S
                         C bytes (default 100) every S s (default 0.05)
  /closedelim/ID/SIZE?cut=N
                         no Content-Length: N of the SIZE bytes, then
                         close (a short close-delimited body)
  /cd/...?fn=NAME        (above) also serves bad names: ../x, NAME.part,
                         another job's name

For segmented downloads (all send ETag and Accept-Ranges: bytes; a
request without Range gets the whole body with a 200):
  /seg/ID/SIZE?mode=M    M=ok: honours "Range: bytes=A-B";
                         M=liar: ignores Range (a 200 of the whole body);
                         M=skew: the first ranged request gets a 206 that
                         starts 1000 bytes later than asked (with the
                         bytes of that offset), later ones are right;
                         M=flip: the first request without Range says
                         ETag "v1", every later response is version 2
                         (ETag "v2", body(ID:v2)): the file changed
"""

import hashlib
import http.server
import random
import socket
import struct
import threading
import time
import urllib.parse


def body(ident, size):
    """Deterministic bytes for a resource: the tests recompute them."""
    return random.Random(ident).randbytes(size)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.hits = {}
        self.log = []   # (path, headers dict) of every request
        self.busy = 0
        self.most_busy = 0
        self.version = {}   # /changing: ID -> current version
        self.gates = {}     # /gate: ID -> threading.Event

    def gate(self, ident):
        with self.lock:
            return self.gates.setdefault(ident, threading.Event())

    def open_gate(self, ident):
        self.gate(ident).set()

    def hit(self, key):
        with self.lock:
            self.hits[key] = self.hits.get(key, 0) + 1
            return self.hits[key]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, data, code=200, headers=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def reset(self):
        """Close with RST: SO_LINGER on, timeout 0."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        with st.lock:
            st.log.append((url.path, dict(self.headers.items())))
        kind = parts[0]
        try:
            getattr(self, "do_" + kind)(st, parts[1:], query)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def do_data(self, st, p, q):
        self.send_body(body(p[0], int(p[1])))

    def do_status(self, st, p, q):
        self.send_body(b"status %s\n" % p[0].encode(), int(p[0]))

    def do_flaky(self, st, p, q):
        if st.hit("flaky/" + p[0]) <= int(p[1]):
            self.send_body(b"try again\n", 500)
        else:
            self.send_body(body(p[0], int(p[2])))

    def do_429(self, st, p, q):
        if st.hit("429/" + p[0]) == 1:
            self.send_body(b"slow down\n", 429, [("Retry-After", "1")])
        else:
            self.send_body(body(p[0], int(p[1])))

    def do_reset(self, st, p, q):
        data = body(p[0], int(p[2]))
        if st.hit("reset/" + p[0]) <= int(p[1]):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])
            self.reset()
        else:
            self.send_body(data)

    def do_stall(self, st, p, q):
        data = body("stall", int(p[0]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:1000])
        self.wfile.flush()
        self.server.quit.wait(60)
        self.close_connection = True

    def do_short(self, st, p, q):
        data = body("short", int(p[0]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def do_norange(self, st, p, q):
        self.send_body(body(p[0], int(p[1])), 200, [("ETag", '"fixed"')])

    def do_pause(self, st, p, q):
        data = body(p[0], int(p[1]))
        etag = '"%s"' % sha256(data)[:16]
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if self.headers.get("If-Range") not in (None, etag):
                self.send_body(data, 200, [("ETag", etag)])
                return
            part = data[start:]
            self.send_response(206)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Content-Range", "bytes %d-%d/%d" %
                             (start, len(data) - 1, len(data)))
            self.end_headers()
            self.wfile.write(part)
            return
        if st.hit("pause/" + p[0]) > int(q.get("n", ["1"])[0]):
            self.send_body(data, 200, [("ETag", etag)])
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) * 4 // 10])
        self.wait_client_gone()

    def wait_client_gone(self):
        """Hold the response until the client goes away (or the test
        ends)."""
        self.wfile.flush()
        self.connection.settimeout(0.1)
        while not self.server.quit.is_set():
            try:
                if self.connection.recv(1) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        self.close_connection = True

    def do_slow(self, st, p, q):
        with st.lock:
            st.busy += 1
            st.most_busy = max(st.most_busy, st.busy)
        try:
            time.sleep(0.2)
            self.send_body(body("slow" + p[0], int(p[0])))
        finally:
            with st.lock:
                st.busy -= 1

    def do_loop(self, st, p, q):
        self.send_body(b"", 302, [("Location", "/loop")])

    def do_tofile(self, st, p, q):
        self.send_body(b"", 302, [("Location", "file:///etc/passwd")])

    def do_cd(self, st, p, q):
        fn = q.get("fn", ["x"])[0]
        self.send_body(body(p[0], int(p[1])), 200,
                       [("Content-Disposition",
                         'attachment; filename="%s"' % fn)])

    def do_changing(self, st, p, q):
        ident, size = p[0], int(p[1])
        with st.lock:
            k = st.version.get(ident, 1)
        data = body("%s:v%d" % (ident, k), size)
        v = q.get("v", ["etag"])[0]
        hdrs = []
        if v == "etag":
            hdrs.append(("ETag", '"v%d"' % k))
        elif v == "lastmod":
            hdrs.append(("Last-Modified",
                         "Mon, %02d Jan 2024 00:00:00 GMT" % k))
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            ifr = self.headers.get("If-Range")
            if (q.get("ifrange", ["1"])[0] == "1" and ifr is not None and
                    ifr not in [h[1] for h in hdrs]):
                self.send_body(data, 200, hdrs)
                return
            part = data[start:]
            self.send_body(part, 206, hdrs + [
                ("Content-Range", "bytes %d-%d/%d" %
                 (start, size - 1, size))])
            return
        if st.hit("changing/" + ident) <= int(q.get("hold", ["0"])[0]):
            self.send_response(200)
            for h in hdrs:
                self.send_header(*h)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(data[: size * 4 // 10])
            self.wait_client_gone()
            return
        self.send_body(data, 200, hdrs)

    def do_seg(self, st, p, q):
        ident, size = p[0], int(p[1])
        mode = q.get("mode", ["ok"])[0]
        rng = self.headers.get("Range")
        version = 1
        if mode == "flip" and (rng or st.hit("seg-flip/" + ident) > 1):
            version = 2
        data = body(ident if version == 1 else ident + ":v2", size)
        hdrs = [("ETag", '"v%d"' % version), ("Accept-Ranges", "bytes")]
        if not rng or mode == "liar":
            self.send_body(data, 200, hdrs)
            return
        a, b = rng[len("bytes="):].split("-")
        a, b = int(a), int(b) if b else size - 1
        if mode == "skew" and st.hit("seg-skew/" + ident) == 1:
            a = min(a + 1000, b)
        self.send_body(data[a:b + 1], 206, hdrs + [
            ("Content-Range", "bytes %d-%d/%d" % (a, b, size))])

    def do_badrange(self, st, p, q):
        data = body(p[0], int(p[1]))
        self.send_body(data, 206, [("Content-Range", "bytes 0-%d/%d" %
                                    (len(data) - 1, len(data)))])

    def do_gate(self, st, p, q):
        data = body(p[0], int(p[1]))
        at = int(q.get("at", ["0"])[0])
        self.send_response(200)
        self.send_header("ETag", '"gate"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:at])
        self.wfile.flush()
        gate = st.gate(p[0])
        while not gate.wait(0.1):
            if self.server.quit.is_set():
                self.close_connection = True
                return
        self.wfile.write(data[at:])

    def do_trickle(self, st, p, q):
        data = body(p[0], int(p[1]))
        chunk = int(q.get("chunk", ["100"])[0])
        every = float(q.get("every", ["0.05"])[0])
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), chunk):
            if self.server.quit.is_set():
                break
            self.wfile.write(data[i:i + chunk])
            self.wfile.flush()
            time.sleep(every)
        self.close_connection = True

    def do_closedelim(self, st, p, q):
        data = body(p[0], int(p[1]))
        cut = int(q.get("cut", [str(len(data))])[0])
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data[:cut])
        self.close_connection = True

    def do_echo(self, st, p, q):
        text = "".join("%s: %s\n" % kv for kv in self.headers.items())
        self.send_body(text.encode())


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client that goes away (mpget stopping a piece) is normal."""


def start():
    """Start the server in a thread; returns (server, port)."""
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State()
    srv.quit = threading.Event()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, srv.server_address[1]


def stop(srv):
    srv.quit.set()
    srv.shutdown()
    srv.server_close()
