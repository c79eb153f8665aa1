# SPDX-License-Identifier: MIT
"""A small FTP server for mpget's tests, on 127.0.0.1 only (passive mode,
binary, RETR with REST, SIZE, MDTM): the commands libcurl uses to fetch a
file.  Files come from a dict; every command is logged.  With tls=(cert,
key) it is an implicit FTPS server (ftps://): TLS on the control
connection from the first byte, and on every data connection (PROT P).

  srv, port = ftpserver.start({"/dir/name": b"bytes"}, user="u", pw="p")
  srv.hold["/dir/name"] = 0.4   # the next RETR sends 40%, then waits
  ...  srv.log  ...  ftpserver.stop(srv)
"""

import socket
import socketserver
import ssl
import threading


def tls_close(conn):
    """End a TLS data connection with close_notify: OpenSSL 3 takes a
    bare EOF for a truncation attack and fails the transfer."""
    try:
        conn.settimeout(5)
        conn.unwrap()
    except (OSError, ValueError):
        pass
    conn.close()


class Handler(socketserver.StreamRequestHandler):
    def setup(self):
        if self.server.tls:
            self.request = self.server.tls.wrap_socket(self.request,
                                                       server_side=True)
        super().setup()

    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
        self.wfile.flush()

    def path(self, arg):
        if not arg.startswith("/"):
            arg = self.cwd.rstrip("/") + "/" + arg
        return arg

    def handle(self):
        srv = self.server
        self.cwd = "/"
        rest = 0
        data = None
        self.reply("220 mpget test FTP")
        while True:
            line = self.rfile.readline()
            if not line:
                break
            line = line.decode("latin-1").rstrip("\r\n")
            cmd, _, arg = line.partition(" ")
            cmd = cmd.upper()
            with srv.lock:
                srv.log.append(line if cmd != "PASS" else "PASS ***")
            if cmd == "USER":
                self.user = arg
                self.reply("331 password")
            elif cmd == "PASS":
                if srv.user and (self.user, arg) != (srv.user, srv.pw):
                    self.reply("530 login incorrect")
                else:
                    self.reply("230 logged in")
            elif cmd == "PWD":
                self.reply('257 "%s"' % self.cwd)
            elif cmd == "CWD":
                d = self.path(arg).rstrip("/") + "/"
                if d == "/" or any(k.startswith(d) for k in srv.files):
                    self.cwd = d
                    self.reply("250 ok")
                else:
                    self.reply("550 no such directory")
            elif cmd in ("TYPE", "MODE", "STRU", "PBSZ", "PROT"):
                self.reply("200 ok")
            elif cmd in ("EPSV", "PASV"):
                if data:
                    data.close()
                data = socket.socket()
                data.bind(("127.0.0.1", 0))
                data.listen(1)
                port = data.getsockname()[1]
                if cmd == "EPSV":
                    self.reply("229 Entering Extended Passive Mode "
                               "(|||%d|)" % port)
                else:
                    self.reply("227 Entering Passive Mode "
                               "(127,0,0,1,%d,%d)" % (port >> 8,
                                                      port & 255))
            elif cmd == "SIZE":
                f = srv.files.get(self.path(arg))
                self.reply("213 %d" % len(f) if f is not None else
                           "550 no such file")
            elif cmd == "MDTM":
                ok = self.path(arg) in srv.files
                self.reply("213 20240102030405" if ok else "550 no file")
            elif cmd == "REST":
                rest = int(arg)
                self.reply("350 restarting at %d" % rest)
            elif cmd == "RETR":
                name = self.path(arg)
                f = srv.files.get(name)
                if f is None or not data:
                    self.reply("550 no such file")
                    continue
                self.reply("150 opening data connection")
                conn, _ = data.accept()
                if srv.tls:
                    conn = srv.tls.wrap_socket(conn, server_side=True)
                body = f[rest:]
                hold = srv.hold.pop(name, None)
                try:
                    if hold is not None:
                        conn.sendall(body[:int(len(f) * hold)])
                        # Until the client goes away.
                        conn.settimeout(30)
                        while conn.recv(1024):
                            pass
                        conn.close()
                        break
                    conn.sendall(body)
                except OSError:
                    pass
                if srv.tls:
                    tls_close(conn)
                else:
                    conn.close()
                data.close()
                data = None
                rest = 0
                self.reply("226 transfer complete")
            elif cmd == "QUIT":
                self.reply("221 bye")
                break
            else:
                self.reply("502 not implemented")
        if data:
            data.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        """A client that goes away is normal here."""


def start(files, user=None, pw=None, tls=None):
    srv = Server(("127.0.0.1", 0), Handler)
    srv.tls = None
    if tls:
        srv.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.tls.load_cert_chain(*tls)
    srv.files = files
    srv.user, srv.pw = user, pw
    srv.hold = {}
    srv.log = []
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def stop(srv):
    srv.shutdown()
    srv.server_close()
