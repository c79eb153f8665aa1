#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mpget's network tests, on 127.0.0.1 only: nginx (started here with its
own config on a free port) and faultserver.py for what nginx cannot do.

  test_mpget.py --list
  test_mpget.py --mpget PATH [--nginx PATH] [--workdir DIR] CASE

Each case asserts real outcomes: the exact bytes of every file (sha-256),
that failures leave neither the file nor its .part, exit codes, and the
JSON report.  MP_TEST_TIMEOUT_MULT scales every time limit (sanitizers).
Exit 0 pass, 1 fail, 7 skip.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import faultserver  # noqa: E402
import ftpserver  # noqa: E402
import proxy  # noqa: E402
from faultserver import body, sha256  # noqa: E402

MULT = float(os.environ.get("MP_TEST_TIMEOUT_MULT", "1") or 1)
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Env:
    def __init__(self, args):
        self.mpget = args.mpget
        self.nginx_bin = args.nginx
        self.work = os.path.abspath(args.workdir)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.out = os.path.join(self.work, "out")
        self.srv = None
        self.nginx_state = None

    # servers
    def fault(self):
        if not self.srv:
            self.srv, self.fport = faultserver.start()
        return "http://127.0.0.1:%d" % self.fport

    def nginx(self, files, http_conf="", server_conf=""):
        """Serve {name: bytes} from nginx; returns the base URL.  The
        configuration texts go into its http and server blocks."""
        if not self.nginx_bin or not os.access(self.nginx_bin, os.X_OK):
            print("# skip: nginx not found")
            sys.exit(7)
        root = os.path.join(self.work, "www")
        os.makedirs(root, exist_ok=True)
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)),
                        exist_ok=True)
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        self.nginx_state = os.path.join(self.work, "nginx")
        env = dict(os.environ, MPGET_NGINX=self.nginx_bin)
        for var, text in (("MPGET_NGINX_HTTP", http_conf),
                          ("MPGET_NGINX_SERVER", server_conf)):
            if text:
                path = os.path.join(self.work, var.lower() + ".conf")
                with open(path, "w") as f:
                    f.write(text)
                env[var] = path
        port = subprocess.run(
            [os.path.join(HERE, "nginx.sh"), "start", root,
             self.nginx_state], env=env, check=True, capture_output=True,
            text=True, timeout=30).stdout.strip()
        return "http://127.0.0.1:%s" % port

    def close(self):
        if self.srv:
            faultserver.stop(self.srv)
        if self.nginx_state:
            subprocess.run([os.path.join(HERE, "nginx.sh"), "stop",
                            self.nginx_state], timeout=30)

    # running mpget
    def run(self, args, timeout=30, stdin=None, report=True, env=None):
        cmd = [self.mpget, "-d", self.out, "--progress", "lines"]
        self.report_path = os.path.join(self.work, "report.json")
        if report:
            cmd += ["--report", self.report_path]
        cmd += [str(a) for a in args]
        t0 = time.monotonic()
        p = subprocess.run(cmd, input=stdin, capture_output=True,
                           text=True, timeout=timeout * MULT, env=env)
        self.elapsed = time.monotonic() - t0
        self.stderr = p.stderr
        sys.stdout.write("$ %s\n%s" % (" ".join(cmd), p.stderr[-3000:]))
        return p.returncode

    def report(self):
        with open(self.report_path) as f:
            return json.load(f)

    def listfile(self, text):
        path = os.path.join(self.work, "list.txt")
        with open(path, "w") as f:
            f.write(text)
        return path

    # outcomes
    def files(self):
        return sorted(os.listdir(self.out)) if os.path.isdir(self.out) \
            else []

    def expect_file(self, name, data):
        path = os.path.join(self.out, name)
        check(os.path.isfile(path), "missing %s" % name)
        with open(path, "rb") as f:
            got = f.read()
        check(sha256(got) == sha256(data),
              "%s: %d bytes, sha-256 differs (want %d bytes)" %
              (name, len(got), len(data)))

    def expect_files(self, names):
        check(self.files() == sorted(names),
              "files %s, want %s" % (self.files(), sorted(names)))


def by_url(rep):
    return {f["url"]: f for f in rep["files"]}


# ---------------------------------------------------------------- cases

@case
def basic(env):
    files = {"a.jpg": body("a", 1000), "empty": b"",
             "big.bin": body("big", 3 << 20), "sp ace.txt": body("s", 77)}
    base = env.nginx(files)
    urls = [base + "/a.jpg", base + "/empty", base + "/big.bin",
            base + "/sp%20ace.txt"]
    check(env.run(urls) == 0, "exit code")
    for name, data in files.items():
        env.expect_file(name, data)
    env.expect_files(files)
    rep = env.report()
    check(rep["ok"] == 4 and rep["failed"] == 0, "report counts")
    for f in rep["files"]:
        check(f["status"] == "ok" and f["http"] == 200, "report %s" % f)
    check(by_url(rep)[base + "/big.bin"]["bytes"] == 3 << 20, "bytes")


@case
def many_files(env):
    n = 2000
    files = {"f%04d.bin" % i: body("m%d" % i, (i * 37) % 20000)
             for i in range(n)}
    base = env.nginx(files)
    lst = env.listfile("".join("%s/%s\n" % (base, k) for k in files))
    check(env.run(["-i", lst, "-j", "8", "-q"], timeout=60) == 0,
          "exit code")
    env.expect_files(files)
    for name, data in files.items():
        env.expect_file(name, data)
    check(env.report()["ok"] == n, "report ok count")


@case
def not_found(env):
    base = env.fault()
    check(env.run([base + "/status/404", "--retries", "3",
                   "--retry-wait", "0.1"]) == 3, "exit 3: not found")
    env.expect_files([])
    f = env.report()["files"][0]
    check(f["status"] == "failed" and f["http"] == 404, "404 reported")
    check(f["attempts"] == 1, "4xx must not be retried")
    check("HTTP 404" in f["error"], "reason")
    check("HTTP 404" in env.stderr, "summary names the failure")


@case
def retry_500(env):
    base = env.fault()
    url = base + "/flaky/f1/2/5000"
    check(env.run([url, "--retries", "3", "--retry-wait", "0.05"]) == 0,
          "exit code")
    env.expect_files(["5000"])
    env.expect_file("5000", body("f1", 5000))
    check(env.report()["files"][0]["attempts"] == 3, "3 attempts")
    # Too few retries: it fails and leaves nothing.
    shutil.rmtree(env.out)
    check(env.run([base + "/flaky/f2/5/100", "--retries", "2",
                   "--retry-wait", "0.05"]) == 1, "gives up")
    env.expect_files([])
    check(env.report()["files"][0]["attempts"] == 3, "1 + 2 retries")


@case
def retry_429(env):
    base = env.fault()
    check(env.run([base + "/429/t/3000", "--retry-wait", "0.01"]) == 0,
          "exit code")
    env.expect_file("3000", body("t", 3000))
    check(env.elapsed >= 1.0, "Retry-After: 1 honoured (%.2fs)" %
          env.elapsed)
    check(env.report()["files"][0]["attempts"] == 2, "2 attempts")


@case
def reset_mid_body(env):
    base = env.fault()
    # Reset once, then fine: retried, exact bytes.
    check(env.run([base + "/reset/r1/1/300000", "--retry-wait", "0.05"])
          == 0, "recovers")
    env.expect_file("300000", body("r1", 300000))
    shutil.rmtree(env.out)
    # Always reset: fails, nothing left.
    check(env.run([base + "/reset/r2/99/300000", "--retries", "2",
                   "--retry-wait", "0.05"]) == 4, "fails: network")
    env.expect_files([])
    check(env.report()["files"][0]["attempts"] == 3, "retried")


@case
def stall(env):
    base = env.fault()
    rc = env.run([base + "/stall/100000", "--stall-timeout", "1",
                  "--retries", "0"])
    check(rc == 4, "exit 4: a timeout is a network error")
    check(env.elapsed < 10 * MULT, "stall detected (%.1fs)" % env.elapsed)
    env.expect_files([])
    check(env.report()["files"][0]["status"] == "failed", "failed")


@case
def short_body(env):
    base = env.fault()
    check(env.run([base + "/short/10000", "--retries", "1",
                   "--retry-wait", "0.05"]) == 4, "exit 4: cut short")
    env.expect_files([])
    f = env.report()["files"][0]
    check(f["attempts"] == 2, "a short body is transient")


@case
def ignores_range(env):
    base = env.fault()
    data = body("nr", 200000)
    os.makedirs(env.out)
    # A stale .part: the server answers 200 to the Range request, so the
    # file must start over, not be appended to.
    with open(os.path.join(env.out, "200000.part"), "wb") as f:
        f.write(b"X" * 5000)
    # With the validator it came with: without one it is not resumed.
    os.setxattr(os.path.join(env.out, "200000.part"),
                "user.mpget.validator", b'"fixed"')
    check(env.run(["-c", base + "/norange/nr/200000"]) == 0, "exit code")
    env.expect_files(["200000"])
    env.expect_file("200000", data)
    log = [h for p, h in env.srv.state.log if p.startswith("/norange")]
    check(log and log[0].get("Range") == "bytes=5000-", "asked a range")


@case
def redirects(env):
    base = env.fault()
    check(env.run([base + "/loop", base + "/tofile", "--max-redirs", "5",
                   "--retry-wait", "0.05"]) == 1, "exit code")
    env.expect_files([])
    rep = by_url(env.report())
    check(rep[base + "/loop"]["status"] == "failed", "loop fails")
    check("redirect" in rep[base + "/loop"]["error"].lower(), "loop why")
    check(rep[base + "/loop"]["attempts"] == 1, "loop not retried")
    check(rep[base + "/tofile"]["status"] == "failed", "file:// refused")
    check(rep[base + "/tofile"]["attempts"] == 1, "not retried")


@case
def escaping_names(env):
    base = env.fault()
    sandbox = os.path.join(env.work, "sandbox")
    env.out = os.path.join(sandbox, "dl")
    urls = [base + "/data/e1/10/%2e%2e",
            base + "/data/e2/11/..%2f..%2fescaped",
            base + "/data/e3/12/%2fabs",
            base + "/data/e4/13/ctl%0a%01name",
            base + "/data/e5/14/",
            base + "/cd/e6/15?fn=../../cd-escaped",
            base + "/cd/e7/16?fn=/etc/cd-abs",
            base + "/cd/e8/17?fn=..",
            ]
    lst = env.listfile("\n".join(urls) + "\n" + base +
                       "/data/e9/18/x\n  out=../../out-escaped\n")
    rc = env.run(["-i", lst, "--content-disposition"])
    check(rc == 2, "exit 2: the bad out= line")
    check("list.txt:10:" in env.stderr, "bad line reported with number")
    check(sorted(os.listdir(sandbox)) == ["dl"], "nothing beside DIR: %s"
          % os.listdir(sandbox))
    check(not os.path.exists(os.path.join(env.work, "escaped")),
          "escaped")
    names = env.files()
    for n in names:
        check("/" not in n and n not in (".", "..") and
              all(ord(c) >= 32 for c in n), "unsafe name %r" % n)
    check(len(names) == 8, "8 files saved: %s" % names)
    check("cd-escaped" in names and "cd-abs" in names, "cd basename")
    rep = env.report()
    check(rep["ok"] == 8 and rep["failed"] == 1, "counts")


@case
def duplicate_names(env):
    base = env.fault()
    urls = [base + "/data/d1/100/pic.jpg", base + "/data/d2/200/pic.jpg",
            base + "/data/d3/300/pic.jpg"]
    check(env.run(urls) == 0, "exit code")
    env.expect_files(["pic.jpg", "pic.1.jpg", "pic.2.jpg"])
    env.expect_file("pic.jpg", body("d1", 100))
    env.expect_file("pic.1.jpg", body("d2", 200))
    # Already on disk: numbered past them, nothing overwritten.
    check(env.run(urls[:1]) == 0, "again")
    env.expect_file("pic.jpg", body("d1", 100))
    env.expect_file("pic.3.jpg", body("d1", 100))
    # --no-clobber skips, --overwrite replaces.
    check(env.run(["--no-clobber", urls[1]]) == 0, "no-clobber")
    check(env.report()["skipped"] == 1, "skipped")
    env.expect_file("pic.jpg", body("d1", 100))
    check(env.run(["--overwrite", urls[2]]) == 0, "overwrite")
    env.expect_file("pic.jpg", body("d3", 300))
    check(len(env.files()) == 4, "no extra files: %s" % env.files())


@case
def checksums(env):
    base = env.fault()
    good = sha256(body("c1", 4000))
    lst = env.listfile(
        "# checksums\n\n%s/data/c1/4000/good\n  checksum=sha-256=%s\n"
        "%s/data/c2/4000/bad\n  checksum=sha-256=%s\n" %
        (base, good, base, "0" * 64))
    check(env.run(["-i", lst]) == 5, "exit 5: checksum mismatch")
    env.expect_files(["good"])
    env.expect_file("good", body("c1", 4000))
    rep = by_url(env.report())
    check("checksum" in rep[base + "/data/c2/4000/bad"]["error"], "why")
    # A malformed checksum line: reported with its number; its URL is
    # not fetched unverified.
    shutil.rmtree(env.out)
    lst = env.listfile("%s/data/c3/10/x\n  checksum=sha-256=abc\n"
                       "%s/data/c4/10/y\n" % (base, base))
    check(env.run(["-i", lst]) == 2, "exit 2: a bad list")
    check("list.txt:2:" in env.stderr, "line number")
    env.expect_files(["y"])
    # --strict: stop before anything is fetched.
    shutil.rmtree(env.out)
    check(env.run(["-i", lst, "--strict"], report=False) == 2, "strict")
    env.expect_files([])


@case
def input_list(env):
    base = env.fault()
    text = ("# comment\n\n%s/data/l1/10/one\n   \ngopher://example.com/x\n"
            "  out=orphan\nnot a url\n%s/data/l2/20/two\n  out=renamed\n"
            "\t# indented comment\n" % (base, base))
    rc = env.run(["-i", "-"], stdin=text)
    check(rc == 2, "bad lines make exit 2")
    for n in ("<stdin>:5:", "<stdin>:6:", "<stdin>:7:"):
        check(n in env.stderr, "reports %s" % n)
    env.expect_files(["one", "renamed"])
    env.expect_file("renamed", body("l2", 20))
    check(env.report()["bad_lines"] == 3, "bad_lines")


@case
def usage(env):
    p = subprocess.run([env.mpget], capture_output=True, text=True,
                       timeout=10 * MULT)
    check(p.returncode == 2, "no URL: exit 2")
    p = subprocess.run([env.mpget, "--help"], capture_output=True,
                       text=True, timeout=10 * MULT)
    check(p.returncode == 0, "--help exit 0")
    for opt in ("--continue", "--retries", "--report", "--no-clobber",
                "--max-per-host", "Exit status"):
        check(opt in p.stdout, "--help mentions %s" % opt)
    p = subprocess.run([env.mpget, "--bogus", "http://x/"],
                       capture_output=True, text=True, timeout=10 * MULT)
    check(p.returncode == 2, "bad option: exit 2")
    p = subprocess.run([env.mpget, "-j", "0", "http://x/"],
                       capture_output=True, text=True, timeout=10 * MULT)
    check(p.returncode == 2, "bad -j: exit 2")


@case
def limits_and_headers(env):
    base = env.fault()
    check(env.run([base + "/data/big/50000/big", "--max-filesize", "10K",
                   "-H", "X-Test: yes", "-A", "tester/1",
                   base + "/echo"]) == 1, "exit code")
    check("big" not in env.files(), "too big: not saved")
    with open(os.path.join(env.out, "echo")) as f:
        echo = f.read()
    check("X-Test: yes" in echo and "User-Agent: tester/1" in echo,
          "headers sent: %s" % echo)
    env.expect_files(["echo"])
    check("max-filesize" in by_url(env.report())[base +
                                                  "/data/big/50000/big"]
          ["error"], "why")


@case
def limit_rate(env):
    """--limit-rate holds for all transfers of all workers together: 800
    KiB at 400 KiB/s over 4 transfers in 2 processes cannot take less than
    1.5 s (the limiter lets through at most the limit, a quarter second's
    burst and one 100 KiB chunk more), and every byte is intact.  Only this
    lower bound is checked: a slow machine cannot break it."""
    files = {"r%d.bin" % i: body("r%d" % i, 200 << 10) for i in range(4)}
    base = env.nginx(files)
    check(env.run(["-j", "4", "--processes", "2", "--limit-rate", "400K"] +
                  [base + "/" + n for n in files]) == 0, "exit code")
    for name, data in files.items():
        env.expect_file(name, data)
    check(env.elapsed >= 1.45, "faster than the limit: %.2f s" % env.elapsed)


@case
def max_per_host(env):
    """--max-per-host is a total across worker processes: 8 slow files,
    -j 8 over 2 processes, --max-per-host 2: the server never serves more
    than 2 requests at once (a limit per worker would allow 4)."""
    base = env.fault()
    urls = [base + "/slow/%d" % (1000 + i) for i in range(8)]
    check(env.run(["-j", "8", "--processes", "2", "--max-per-host", "2"] +
                  urls) == 0, "exit code")
    for i in range(8):
        env.expect_file(str(1000 + i), body("slow%d" % (1000 + i), 1000 + i))
    most = env.srv.state.most_busy
    check(1 <= most <= 2, "at most 2 requests at once, saw %d" % most)


@case
def sigint_resume(env):
    base = env.fault()
    size = 8 << 20
    data = body("p", size)
    url = base + "/pause/p/%d" % size
    lst = env.listfile("%s\n  out=big.bin\n  checksum=sha-256=%s\n" %
                       (url, sha256(data)))
    cmd = [env.mpget, "-d", env.out, "--progress", "lines", "-i", lst]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    part = os.path.join(env.out, "big.bin.part")
    deadline = time.monotonic() + 20 * MULT
    while time.monotonic() < deadline:
        if os.path.exists(part) and os.path.getsize(part) >= 1 << 20:
            break
        time.sleep(0.02)
    check(os.path.exists(part), ".part while downloading")
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=10 * MULT)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Fail("mpget did not stop on SIGINT")
    sys.stdout.write(err)
    check(p.returncode == 130, "exit 130, got %d" % p.returncode)
    check("interrupted" in err, "summary printed")
    env.expect_files(["big.bin.part"])
    kept = os.path.getsize(part)
    check(0 < kept < size, "partial .part kept (%d)" % kept)
    # -c finishes it with a Range request (and If-Range when the file
    # system kept the validator).
    check(env.run(["-c", "-i", lst]) == 0, "resume exit code")
    env.expect_files(["big.bin"])
    env.expect_file("big.bin", data)
    last = [h for path, h in env.srv.state.log if path.startswith("/pause")]
    check(last[-1].get("Range") == "bytes=%d-" % kept,
          "resumed with Range: %s" % last[-1].get("Range"))
    check(last[-1].get("If-Range", "").startswith('"'), "If-Range sent")
    # A second -c run finds the file and skips it.
    check(env.run(["-c", "-i", lst]) == 0, "skip exit code")
    check(env.report()["skipped"] == 1, "skipped when complete")


def children(pid):
    """The pids whose parent is pid (from /proc)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(name))
    return kids


def kill_worker_holding(env, p, path, requests, names, old=(),
                        sig=signal.SIGKILL):
    """SIGKILL mpget's worker once the server has seen `requests` requests
    for path, the .part file has bytes and the files `names` are done;
    return the killed pid."""
    part = os.path.join(env.out, "held.bin.part")
    deadline = time.monotonic() + 20 * MULT
    while time.monotonic() < deadline:
        with env.srv.state.lock:
            seen = sum(1 for u, _ in env.srv.state.log if u == path)
        done = all(os.path.exists(os.path.join(env.out, n)) for n in names)
        if (done and seen >= requests and os.path.exists(part) and
                os.path.getsize(part) > 0):
            break
        time.sleep(0.02)
    workers = [w for w in children(p.pid) if w not in old]
    check(len(workers) == 1, "one worker process, got %s" % workers)
    os.kill(workers[0], sig)
    return workers[0]


def held_run(env, pauses):
    """mpget on one worker: a file the server holds at 40% for its first
    `pauses` requests, and six small files."""
    base = env.fault()
    datas = {"w%d.bin" % i: body("w%d" % i, 50000) for i in range(6)}
    path = "/pause/held%d/%d" % (pauses, 8 << 20)
    held = base + path + "?n=%d" % pauses
    lines = [held, "  out=held.bin"]
    for i in range(6):
        lines += [base + "/data/w%d/50000" % i, "  out=w%d.bin" % i]
    lst = env.listfile("\n".join(lines) + "\n")
    report = os.path.join(env.work, "report.json")
    cmd = [env.mpget, "-d", env.out, "--progress", "lines",
           "--processes", "1", "-j", "4", "--report", report, "-i", lst]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    return p, path, held, datas, report


def finish(p):
    try:
        _, err = p.communicate(timeout=15 * MULT)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Fail("mpget hung after its worker was killed")
    sys.stdout.write(err)
    return err


@case
def worker_killed(env):
    """A worker SIGKILLed mid-transfer is replaced, and the file it held
    is downloaded again by its replacement: nothing is lost, exit 0."""
    p, path, held, datas, report = held_run(env, 1)
    kill_worker_holding(env, p, path, 1, datas)
    err = finish(p)
    check(p.returncode == 0, "exit 0, got %d" % p.returncode)
    check("worker 0 ended with signal 9" in err, "the death is reported")
    for name, data in datas.items():
        env.expect_file(name, data)
    env.expect_file("held.bin", body("held1", 8 << 20))
    with env.srv.state.lock:
        tries = [h for u, h in env.srv.state.log if u == path]
    check(len(tries) == 2, "held file fetched twice: %d" % len(tries))
    with open(report) as f:
        rep = by_url(json.load(f))
    check(rep[held]["status"] == "ok", "held file ok after the retry")


@case
def worker_terminated(env):
    """A worker stopped alone by SIGTERM (not mpget's Ctrl-C) counts as
    dead: it is replaced, its file is redone, and the run succeeds."""
    p, path, held, datas, report = held_run(env, 1)
    kill_worker_holding(env, p, path, 1, datas, sig=signal.SIGTERM)
    err = finish(p)
    check(p.returncode == 0, "exit 0, got %d" % p.returncode)
    check("worker 0 ended with code" in err, "the stop is reported")
    env.expect_file("held.bin", body("held1", 8 << 20))
    for name, data in datas.items():
        env.expect_file(name, data)
    with open(report) as f:
        rep = by_url(json.load(f))
    check(rep[held]["status"] == "ok", "held file ok after the redo")


@case
def worker_killed_twice(env):
    """A file whose worker dies twice fails as lost, with the reason, and
    leaves nothing under its final name; the other files are intact and
    mpget exits 1 without hanging."""
    p, path, held, datas, report = held_run(env, 2)
    first = kill_worker_holding(env, p, path, 1, datas)
    kill_worker_holding(env, p, path, 2, datas, old=(first,))
    finish(p)
    check(p.returncode == 1, "exit 1, got %d" % p.returncode)
    for name, data in datas.items():
        env.expect_file(name, data)
    check(not os.path.exists(os.path.join(env.out, "held.bin")),
          "no file under the final name")
    with open(report) as f:
        rep = by_url(json.load(f))
    check(rep[held]["status"] == "failed", "held file failed")
    check("died twice" in (rep[held].get("error") or ""),
          "reason given: %r" % rep[held].get("error"))

# ------------------------------------------- hostile input (issue 18)

def closed_port():
    """A port on 127.0.0.1 that nobody listens on: connections are
    refused at once."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@case
def bad_numbers(env):
    """Every numeric option refuses NaN, infinities, negatives, values out
    of range, trailing garbage and the empty string with exit 2 and a
    message naming the option (--retry-wait=nan used to hang, and the
    timeouts took nan as "none"); good values are still taken."""
    url = "http://127.0.0.1:%d/x" % closed_port()
    opts = ["-j", "--processes", "--max-per-host", "--retries",
            "--retry-wait", "--connect-timeout", "--timeout",
            "--stall-timeout", "--max-redirs", "--max-filesize",
            "--limit-rate"]
    bad = ["nan", "NaN", "-nan", "inf", "-inf", "infinity", "-1", "1e400",
           "5x", "5 ", " 5", "", "1e999999"]
    for opt in opts:
        for v in bad:
            arg = [opt, v] if opt == "-j" else ["%s=%s" % (opt, v)]
            try:
                p = subprocess.run([env.mpget, "-d", env.out, "--retries",
                                    "0"] + arg + [url],
                                   capture_output=True, text=True,
                                   timeout=10 * MULT)
            except subprocess.TimeoutExpired:
                raise Fail("%r hangs" % arg)
            check(p.returncode == 2, "%r: exit %d, want 2" %
                  (arg, p.returncode))
            check(opt in p.stderr, "%r: no message: %r" % (arg, p.stderr))
    good = {"-j": "3", "--processes": "1", "--max-per-host": "2",
            "--retries": "0", "--retry-wait": "0.5",
            "--connect-timeout": "2.5", "--timeout": "1e1",
            "--stall-timeout": "0", "--max-redirs": "0",
            "--max-filesize": "1.5M", "--limit-rate": "10K"}
    for opt, v in good.items():
        p = subprocess.run([env.mpget, "-d", env.out, "--retries", "0",
                            opt, v, url], capture_output=True, text=True,
                           timeout=30 * MULT)
        check(p.returncode == 4, "%s %s: exit %d, want 4 (refused "
              "connection)" % (opt, v, p.returncode))


@case
def many_duplicates(env):
    """Name assignment is linear: 200,000 copies of one URL get their
    numbered names in well under a minute (the quadratic search took about
    two hours here).  Every job has a bad option line, so all of them fail
    before any download; the names are assigned all the same."""
    n = 200000
    url = "http://127.0.0.1:%d/d/pic.jpg" % closed_port()
    lst = env.listfile("%s\n  bogus=1\n" % url * n)
    rc = env.run(["-q", "-i", lst], timeout=60)
    check(rc == 2, "exit %d, want 2" % rc)
    rep = env.report()
    check(rep["failed"] == n and rep["bad_lines"] == n, "counts")
    check(env.files() == [], "nothing fetched: %s" % env.files()[:5])


@case
def long_name_twice(env):
    """A name that fills MAX_NAME_LEN (200 bytes), given twice: the second
    copy's stem is cut (on a UTF-8 character boundary, extension kept) to
    make room for the number.  Both files are saved and nothing is
    reported lost (the numbered name used to be 201 bytes: the worker
    refused it and exited, twice)."""
    import urllib.parse
    base = env.fault()
    utf = "a" + "\u00e9" * 97 + "b.bin"          # 200 bytes in UTF-8
    plain = "x" * 200                            # no extension
    check(len(utf.encode()) == 200, "test name length")
    q = urllib.parse.quote
    urls = [base + "/data/u1/100/" + q(utf), base + "/data/u2/200/" + q(utf),
            base + "/data/p1/300/" + plain, base + "/data/p2/400/" + plain]
    rc = env.run(urls + ["--processes", "1"])
    check(rc == 0, "exit %d, want 0" % rc)
    check("died" not in env.stderr, "no worker death")
    utf1 = "a" + "\u00e9" * 96 + ".1.bin"       # 199 bytes
    plain1 = "x" * 198 + ".1"
    env.expect_files([utf, utf1, plain, plain1])
    env.expect_file(utf, body("u1", 100))
    env.expect_file(utf1, body("u2", 200))
    env.expect_file(plain, body("p1", 300))
    env.expect_file(plain1, body("p2", 400))
    # On disk already: the rename's numbering shortens the same way.
    check(env.run([urls[0]]) == 0, "again")
    env.expect_file(utf1, body("u2", 200))
    utf2 = "a" + "\u00e9" * 96 + ".2.bin"
    env.expect_file(utf2, body("u1", 100))

class HopHandler(__import__("http.server").server.BaseHTTPRequestHandler):
    """/to/PORT/REST redirects to http://127.0.0.1:PORT/REST, /same/REST
    to /REST on this server, /file/NAME answers body(NAME); every request
    is logged with its headers."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.log.append((self.path, dict(self.headers.items())))
        p = self.path.strip("/").split("/")
        if p[0] == "to":
            loc = "http://127.0.0.1:%s/%s" % (p[1], "/".join(p[2:]))
        elif p[0] == "same":
            loc = "/" + "/".join(p[1:])
        else:
            data = body(p[-1], 1000)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(302)
        self.send_header("Location", loc)
        self.send_header("Content-Length", "0")
        self.end_headers()


def hop_server():
    import http.server
    import threading
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HopHandler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.log = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


@case
def header_redirect(env):
    """-H headers go to the URL's own host (scheme, name and port) only:
    not to another host:port a redirect leads to, as curl does; with
    --location-trusted to every host."""
    a, pa = hop_server()
    b, pb = hop_server()
    key = "X-Api-Key"
    try:
        A = "http://127.0.0.1:%d" % pa
        urls = [A + "/to/%d/file/one" % pb,            # A -> B
                A + "/same/file/two",                  # A -> A
                A + "/to/%d/to/%d/file/three" % (pb, pa)]  # A -> B -> A
        check(env.run(["-H", key + ": s3cret", "--processes", "1"] + urls)
              == 0, "exit code")
        for n in ("one", "two", "three"):
            env.expect_file(n, body(n, 1000))
        sent = lambda srv: [(u, h.get(key)) for u, h in srv.log]
        check(sorted(sent(a)) == sorted([
            ("/to/%d/file/one" % pb, "s3cret"),
            ("/same/file/two", "s3cret"), ("/file/two", "s3cret"),
            ("/to/%d/to/%d/file/three" % (pb, pa), "s3cret"),
            ("/file/three", "s3cret")]), "host A got: %s" % sent(a))
        check(sorted(sent(b)) == sorted([
            ("/file/one", None), ("/to/%d/file/three" % pa, None)]),
            "host B got: %s" % sent(b))
        # --location-trusted: every host gets them.
        del a.log[:], b.log[:]
        shutil.rmtree(env.out)
        check(env.run(["-H", key + ": s3cret", "--location-trusted",
                       urls[0]]) == 0, "trusted: exit code")
        env.expect_file("one", body("one", 1000))
        check(sent(b) == [("/file/one", "s3cret")],
              "trusted: host B got: %s" % sent(b))
    finally:
        for srv in (a, b):
            srv.shutdown()
            srv.server_close()

# ------------------------------------------- files on disk (issue 18)
# The promises about what mpget leaves in DIR, against the hostile
# resources of faultserver.py: resumes of a file that changed, names a
# server must not be given, things planted at NAME.part, a worker killed
# between its rename and its report.

def run_bounded(env, args, timeout=20, extra_env=None):
    """mpget in a session of its own, killed whole (workers too) if it
    outlives timeout: a hang is a failure, not a stuck test."""
    cmd = [env.mpget, "-d", env.out, "--progress", "lines",
           "--report", os.path.join(env.work, "report.json")]
    cmd += [str(a) for a in args]
    env.report_path = os.path.join(env.work, "report.json")
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                         start_new_session=True,
                         env=dict(os.environ, **(extra_env or {})))
    try:
        _, err = p.communicate(timeout=timeout * MULT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise Fail("mpget hung: %s" % " ".join(cmd))
    env.stderr = err
    sys.stdout.write("$ %s\n%s" % (" ".join(cmd), err[-3000:]))
    return p.returncode


def wait_for(what, cond, secs=20):
    deadline = time.monotonic() + secs * MULT
    while not cond():
        check(time.monotonic() < deadline, "timed out waiting: " + what)
        time.sleep(0.02)


def kill_mid_body(env, url, name, args=()):
    """mpget killed whole (SIGKILL: a crash, the OOM killer) once
    NAME.part has 1 MiB; the .part stays."""
    part = os.path.join(env.out, name + ".part")
    cmd = [env.mpget, "-d", env.out, "--progress", "none"] + list(args) + \
        [url]
    p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_for(".part", lambda: os.path.exists(part) and
                 os.path.getsize(part) >= 1 << 20)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    return os.path.getsize(part)


def changed_resume(env, query, first_args):
    """A .part of version 1 left by a killed run, the file changed on the
    server: -c must give exactly version 2, never a splice."""
    base = env.fault()
    size = 4 << 20
    url = base + "/changing/cr/%d?%s&hold=1" % (size, query)
    kept = kill_mid_body(env, url, str(size), first_args)
    check(0 < kept < size, "partial .part (%d)" % kept)
    with env.srv.state.lock:
        env.srv.state.version["cr"] = 2
    check(run_bounded(env, ["-c", url]) == 0, "resume exit code")
    env.expect_files([str(size)])
    env.expect_file(str(size), body("cr:v2", size))


@case
def resume_changed_killed(env):
    """Item 1: the run that left the .part had no -c: the validator must
    still be stored with it, so -c sends If-Range and gets version 2."""
    changed_resume(env, "v=etag", [])


@case
def resume_changed_no_validator(env):
    """Item 1: a server with no ETag nor Last-Modified: a .part cannot be
    trusted, -c starts over."""
    changed_resume(env, "v=none", ["-c"])


@case
def resume_changed_ifrange_ignored(env):
    """Item 1: the server ignores If-Range and sends a 206 of the new
    version: its ETag differs from the .part's, so -c starts over."""
    changed_resume(env, "v=etag&ifrange=0", ["-c"])
    changed = [h for u, h in env.srv.state.log if u.startswith("/changing")]
    check(changed[-1].get("Range") is None, "started over without Range")


@case
def resume_lastmod_ok(env):
    """The good path of item 1: Last-Modified as the validator, the file
    unchanged: -c resumes with Range and If-Range, exact bytes."""
    base = env.fault()
    size = 4 << 20
    url = base + "/changing/lm/%d?v=lastmod&hold=1" % size
    kept = kill_mid_body(env, url, str(size))
    check(run_bounded(env, ["-c", url]) == 0, "resume exit code")
    env.expect_file(str(size), body("lm:v1", size))
    last = [h for u, h in env.srv.state.log if u.startswith("/changing")][-1]
    check(last.get("Range") == "bytes=%d-" % kept, "resumed with Range")
    check(last.get("If-Range", "").endswith("GMT"), "If-Range: the date")


def find_data(env, data):
    """The names in DIR holding exactly data.  A name listed may be gone
    by the time it is opened (mpget renames each .part when it is
    done): it holds nothing then."""
    out = []
    for n in env.files():
        try:
            with open(os.path.join(env.out, n), "rb") as f:
                if f.read() == data:
                    out.append(n)
        except FileNotFoundError:
            pass
    return out


@case
def cd_reserved_names(env):
    """Item 2: a Content-Disposition name that is another job's name or
    ends in .part is refused (the URL's name is used): no download
    vanishes, no bytes land under another job's name."""
    base = env.fault()
    b = body("cb", 3000)
    for n, (at, fn, extra) in enumerate([
            (0, "b.bin.part", []),            # before b.bin.part exists
            (300000, "b.bin.part", ["--overwrite"]),   # while it is open
            (0, "b.bin", []),                 # b.bin's own name
            (0, "x.part", [])]):              # any .part
        shutil.rmtree(env.out, ignore_errors=True)
        gate = "ga%d" % n
        a = body(gate, 400000)
        lst = env.listfile(
            "%s/gate/%s/400000?at=%d\n  out=b.bin\n  checksum=sha-256=%s\n"
            "%s/cd/cb/3000?fn=%s\n" % (base, gate, at, sha256(a), base, fn))
        args = ["-i", lst, "--content-disposition", "-j", "2",
                "--processes", "1"] + extra
        p = subprocess.Popen(
            [env.mpget, "-d", env.out, "--progress", "none",
             "--report", os.path.join(env.work, "report.json")] + args,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            # The named file is placed while b.bin is still under way.
            wait_for("the named file", lambda: find_data(env, b))
            env.srv.state.open_gate(gate)
            _, err = p.communicate(timeout=20 * MULT)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        sys.stdout.write(err)
        check(p.returncode == 0, "%s: exit 0, got %d" % (fn, p.returncode))
        env.expect_file("b.bin", a)
        where = find_data(env, b)
        check(where == ["3000"], "%s: named file under %s, want the URL's "
              "name (files %s)" % (fn, where, env.files()))
        env.expect_files(["3000", "b.bin"])


@case
def part_replaced(env):
    """Item 2: before the rename the .part must still be the file this
    job wrote: one swapped in under it is not placed under the name."""
    base = env.fault()
    data = body("sw", 1 << 20)
    lst = env.listfile("%s/gate/sw/%d?at=700000\n  out=a.bin\n"
                       "  checksum=sha-256=%s\n" % (base, 1 << 20,
                                                    sha256(data)))
    os.makedirs(env.out)
    part = os.path.join(env.out, "a.bin.part")
    env.report_path = os.path.join(env.work, "report.json")
    p = subprocess.Popen(
        [env.mpget, "-d", env.out, "--progress", "none", "--report",
         env.report_path, "-i", lst],
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(".part", lambda: os.path.exists(part) and
                 os.path.getsize(part) > 0)
        tmp = os.path.join(env.out, "planted")
        with open(tmp, "wb") as f:
            f.write(b"not what was verified\n")
        os.rename(tmp, part)
        env.srv.state.open_gate("sw")
        _, err = p.communicate(timeout=20 * MULT)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    sys.stdout.write(err)
    check(p.returncode == 1, "exit 1, got %d" % p.returncode)
    check(not os.path.exists(os.path.join(env.out, "a.bin")),
          "the swapped file was placed under a.bin")
    f = env.report()["files"][0]
    check(f["status"] == "failed" and "replaced" in (f["error"] or ""),
          "reason: %r" % f["error"])


@case
def part_hardlink(env):
    """Item 5: a hard link planted at NAME.part to a file outside DIR:
    that file is never written, with or without -c."""
    base = env.fault()
    os.makedirs(env.out)
    outside = os.path.join(env.work, "outside.txt")
    precious = b"precious, outside the folder\n" * 100
    for name, args in (("x", []), ("y", ["-c"])):
        with open(outside, "wb") as f:
            f.write(precious)
        os.link(outside, os.path.join(env.out, name + ".part"))
        lst = env.listfile("%s/data/h%s/5000\n  out=%s\n" %
                           (base, name, name))
        check(run_bounded(env, args + ["-i", lst]) == 0, "exit code")
        with open(outside, "rb") as f:
            check(f.read() == precious, "%s: wrote through the link" % name)
        env.expect_file(name, body("h" + name, 5000))
        check(os.stat(os.path.join(env.out, name)).st_nlink == 1,
              "%s: its own file" % name)
    env.expect_files(["x", "y"])


@case
def part_fifo(env):
    """Item 11: a FIFO planted at NAME.part neither hangs mpget nor is
    written to: it is replaced by a regular file."""
    base = env.fault()
    os.makedirs(env.out)
    for name, args in (("f", []), ("g", ["-c"])):
        os.mkfifo(os.path.join(env.out, name + ".part"))
        lst = env.listfile("%s/data/p%s/5000\n  out=%s\n" %
                           (base, name, name))
        check(run_bounded(env, args + ["-i", lst, "--timeout", "5",
                                       "--stall-timeout", "2"],
                          timeout=15) == 0, "exit code")
        env.expect_file(name, body("p" + name, 5000))
    env.expect_files(["f", "g"])


@case
def rename_then_die(env):
    """Item 6: a worker killed after its rename and before its report:
    the file is placed, so it is not fetched again as a.1.bin."""
    base = env.fault()
    lst = env.listfile("".join("%s/data/rd%s/%d\n  out=%s.bin\n" %
                               (base, n, 1000 + i, n)
                               for i, n in enumerate("abc")))
    rc = run_bounded(env, ["-i", lst, "--processes", "1", "-j", "1"],
                     extra_env={"MPGET_TEST_DIE_AFTER_RENAME": "a.bin"})
    check("worker 0 ended with signal 9" in env.stderr, "the hook fired")
    check(rc == 0, "exit 0, got %d" % rc)
    env.expect_files(["a.bin", "b.bin", "c.bin"])
    for i, n in enumerate("abc"):
        env.expect_file(n + ".bin", body("rd" + n, 1000 + i))
    with env.srv.state.lock:
        hits = sum(1 for u, _ in env.srv.state.log
                   if u.startswith("/data/rda"))
    check(hits == 1, "a.bin fetched %d times" % hits)
    f = by_url(env.report())[base + "/data/rda/1000"]
    check(f["status"] == "ok" and f["file"] == "a.bin", "reported %s" % f)


@case
def lost_job_no_part(env):
    """Item 16a: a job lost to two worker deaths leaves no .part."""
    p, path, held, datas, report = held_run(env, 2)
    first = kill_worker_holding(env, p, path, 1, datas)
    kill_worker_holding(env, p, path, 2, datas, old=(first,))
    finish(p)
    check(p.returncode == 1, "exit 1, got %d" % p.returncode)
    check(sorted(env.files()) == sorted(datas), "files %s" % env.files())


@case
def close_delimited_short(env):
    """A body without Content-Length cut short by the server cannot be
    told from a whole one: saved as it came, unless the list gives a
    checksum, which then fails it and leaves nothing."""
    base = env.fault()
    url = base + "/closedelim/cl/10000?cut=4000"
    check(run_bounded(env, [url]) == 0, "no checksum: saved")
    env.expect_file("10000", body("cl", 10000)[:4000])
    shutil.rmtree(env.out)
    lst = env.listfile("%s\n  checksum=sha-256=%s\n" %
                       (url, sha256(body("cl", 10000))))
    check(run_bounded(env, ["-i", lst]) == 5, "checksum: exit 5")
    env.expect_files([])
    check("checksum" in env.report()["files"][0]["error"], "why")


@case
def hostile_ranges(env):
    """A 206 whose Content-Range is not the range asked, and a trickling
    body: exact bytes or a failure, never a splice."""
    base = env.fault()
    os.makedirs(env.out)
    part = os.path.join(env.out, "9000.part")
    with open(part, "wb") as f:
        f.write(body("br", 9000)[:3000])
    os.setxattr(part, "user.mpget.validator", b'"x"')
    check(run_bounded(env, ["-c", base + "/badrange/br/9000",
                            base + "/trickle/tr/3000?chunk=300&every=0.02",
                            "--retries", "1", "--retry-wait", "0.05"]) == 0,
          "exit code")
    env.expect_file("9000", body("br", 9000))
    env.expect_file("3000", body("tr", 3000))
    env.expect_files(["3000", "9000"])


# ------------------------------------------------ issue 15: command line

@case
def output_one(env):
    """-o NAME saves the one URL as NAME; a path puts it in that
    directory (under -d when relative); with two URLs it is a usage
    error and nothing is fetched."""
    base = env.fault()
    check(env.run(["-o", "mine.bin", base + "/data/o1/1234/x"]) == 0,
          "exit code")
    env.expect_files(["mine.bin"])
    env.expect_file("mine.bin", body("o1", 1234))
    check(env.run(["-o", "sub/deeper.bin", base + "/data/o2/99/y"]) == 0,
          "exit code, -o with a directory")
    env.expect_file("sub/deeper.bin", body("o2", 99))
    shutil.rmtree(env.out)
    check(env.run(["-o", "two.bin", base + "/data/o3/5/a",
                   base + "/data/o4/5/b"], report=False) == 2,
          "-o with two URLs: exit 2")
    check("-o names one file" in env.stderr, "says why")
    env.expect_files([])
    check(env.run(["-o", "..", base + "/data/o5/5/a"], report=False) == 2,
          "-o ..: exit 2")


@case
def quiet(env):
    """-q prints nothing at all when every file succeeds (not even the
    --insecure warning), and only the failures otherwise."""
    base = env.fault()
    check(env.run(["-q", "-k", base + "/data/q1/100/a",
                   base + "/data/q2/200/b"]) == 0, "exit code")
    check(env.stderr == "", "silent: %r" % env.stderr)
    env.expect_files(["a", "b"])
    shutil.rmtree(env.out)
    check(env.run(["-q", base + "/data/q3/100/c", base + "/status/404"])
          == 3, "exit 3")
    lines = env.stderr.splitlines()
    check(lines == ["failed:", "  %s/status/404: HTTP 404" % base],
          "only the failure: %r" % lines)


@case
def exit_codes(env):
    """Each failure class has its code; when several fail, the first
    failed file in list order decides, whatever finishes first."""
    base = env.fault()
    nf = base + "/status/404"
    gone = base + "/status/410"
    forbidden = base + "/status/403"
    net = "http://127.0.0.1:%d/x" % closed_port()
    bad_sum = "%s/data/e1/100/summed\n  checksum=md5=%s\n" % (base, "0" * 32)
    blocked = base + "/data/e2/100/blocked"

    def run_list(text, *extra):
        return env.run(["-i", env.listfile(text), "--retries", "0"] +
                       list(extra))

    check(run_list(nf + "\n") == 3, "404: exit 3")
    check(run_list(gone + "\n") == 3, "410: exit 3")
    check(run_list(forbidden + "\n") == 1, "403: exit 1")
    check(run_list(net + "\n") == 4, "refused: exit 4")
    check(run_list(bad_sum) == 5, "checksum: exit 5")
    env.expect_files([])
    # A write error: NAME.part is a directory we cannot replace.
    os.makedirs(os.path.join(env.out, "blocked.part", "keep"))
    check(run_list(blocked + "\n") == 6, "write error: exit 6")
    check("blocked" not in [f for f in env.files()], "no file")
    shutil.rmtree(env.out)
    # The first in list order decides: the 404 finishes long before the
    # refused checksum, and the order of the list wins both ways.
    check(run_list(bad_sum + nf + "\n") == 5, "checksum first: 5")
    check(run_list(nf + "\n" + bad_sum) == 3, "404 first: 3")
    check(run_list(net + "\n" + nf + "\n") == 4, "network first: 4")
    # Bad input lines come before every file.
    check(run_list("not a url\n" + nf + "\n") == 2, "bad line: exit 2")
    p = subprocess.run([env.mpget, "--help"], capture_output=True,
                       text=True, timeout=10 * MULT)
    for code in ("  3  a file was not found", "  4  network or TLS",
                 "  5  checksum mismatch", "  6  local write error"):
        check(code in p.stdout, "--help lists %r" % code)


@case
def checksum_types(env):
    """checksum=md5=, sha-1=, sha-256=, sha-512= (and sha1, sha512) in
    the list: a match is saved, a mismatch leaves no file under its name,
    a digest of the wrong length is a bad line."""
    base = env.fault()
    data = body("ct", 5000)
    sums = {"md5": hashlib.md5(data).hexdigest(),
            "sha-1": hashlib.sha1(data).hexdigest(),
            "sha1": hashlib.sha1(data).hexdigest(),
            "sha-256": hashlib.sha256(data).hexdigest(),
            "sha-512": hashlib.sha512(data).hexdigest(),
            "sha512": hashlib.sha512(data).hexdigest()}
    text = ""
    for t, h in sums.items():
        text += "%s/data/ct/5000/x\n  out=good-%s\n  checksum=%s=%s\n" % (
            base, t, t, h)
        bad = ("1" if h[0] == "0" else "0") + h[1:]
        text += "%s/data/ct/5000/x\n  out=bad-%s\n  checksum=%s=%s\n" % (
            base, t, t, bad)
    check(env.run(["-i", env.listfile(text)]) == 5, "exit 5")
    env.expect_files(["good-" + t for t in sums])
    for t in sums:
        env.expect_file("good-" + t, data)
    errs = sorted(f["error"] for f in env.report()["files"]
                  if f["status"] == "failed")
    check(errs == sorted("%s checksum mismatch" % n for n in
                         ("md5", "sha-1", "sha-1", "sha-256", "sha-512",
                          "sha-512")), "reasons: %s" % errs)
    shutil.rmtree(env.out)
    text = "%s/data/ct/5000/y\n  checksum=md5=%s\n" % (base, "0" * 64)
    check(env.run(["-i", env.listfile(text)]) == 2, "wrong length: 2")
    check("list.txt:2: md5 wants 32 hex digits" in env.stderr, "why")
    env.expect_files([])



# ------------------------------------------------ issue 15: TLS, proxies

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   capture_output=True, timeout=60)


def make_pki(d):
    """A private CA, a server certificate for 127.0.0.1 and a client
    certificate, all signed by it (PEM files in d)."""
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=mpget test CA", "-keyout", p("ca.key"),
            "-out", p("ca.pem"))
    with open(p("san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                "/CN=%s" % who, "-keyout", p(who + ".key"),
                "-out", p(who + ".csr"))
        openssl("x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.pem"),
                "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", p("san.ext"), "-out", p(who + ".pem"))
    return p


def tls_nginx(env, files):
    """nginx with TLS (HTTP/2 on) on a second port, and a third port that
    wants a client certificate.  Returns (http base, https base, mTLS
    base, pki path function)."""
    p = make_pki(os.path.join(env.work, "pki"))
    root = os.path.join(env.work, "www")
    tls, mtls = free_port(), free_port()
    conf = """
server {
    listen 127.0.0.1:%d ssl http2;
    root %s;
    ssl_certificate %s;
    ssl_certificate_key %s;
}
server {
    listen 127.0.0.1:%d ssl;
    root %s;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_client_certificate %s;
    ssl_verify_client on;
}
""" % (tls, root, p("server.pem"), p("server.key"), mtls, root,
       p("server.pem"), p("server.key"), p("ca.pem"))
    base = env.nginx(files, http_conf=conf)
    return (base, "https://127.0.0.1:%d" % tls,
            "https://127.0.0.1:%d" % mtls, p)


@case
def tls_private_ca(env):
    """A server whose certificate a private CA signed: refused without
    --cacert (a TLS error, exit 4, nothing left), fetched with --cacert
    or --capath (over HTTP/2), and with -k."""
    files = {"t.bin": body("tls", 300000), "u.bin": body("tls2", 5000)}
    _, https, _, p = tls_nginx(env, files)
    urls = [https + "/t.bin", https + "/u.bin"]
    check(env.run(urls + ["--retries", "0"]) == 4, "no --cacert: exit 4")
    check("SSL certificate problem" in env.stderr, "a TLS error")
    env.expect_files([])
    check(env.run(urls + ["--cacert", p("ca.pem"), "-v"]) == 0,
          "--cacert")
    for n, d in files.items():
        env.expect_file(n, d)
    shutil.rmtree(env.out)
    capath = os.path.join(env.work, "capath")
    os.makedirs(capath)
    shutil.copy(p("ca.pem"), capath)
    openssl("rehash", capath)
    check(env.run(urls + ["--capath", capath]) == 0, "--capath")
    env.expect_files(list(files))
    shutil.rmtree(env.out)
    check(env.run(urls + ["-k"]) == 0, "-k")
    check("--insecure" in env.stderr, "-k warns")
    env.expect_files(list(files))
    # HTTP/2 it is: curl, the same libcurl, says so with the same CA.
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                          "%{http_version}", "--cacert", p("ca.pem"),
                          urls[1]], capture_output=True, text=True,
                         timeout=30).stdout
    check(out == "2", "server speaks HTTP/2: %r" % out)


@case
def tls_client_cert(env):
    """A server that wants a client certificate: refused without --cert,
    fetched with --cert and --key."""
    files = {"c.bin": body("mtls", 10000)}
    _, _, mtls, p = tls_nginx(env, files)
    url = mtls + "/c.bin"
    check(env.run([url, "--cacert", p("ca.pem"), "--retries", "0"]) == 1,
          "no client certificate: refused (HTTP 400)")
    env.expect_files([])
    check(env.run([url, "--cacert", p("ca.pem"), "--cert", p("client.pem"),
                   "--key", p("client.key")]) == 0, "--cert --key")
    env.expect_file("c.bin", files["c.bin"])


@case
def proxy_option(env):
    """--proxy sends plain requests in absolute form and https through
    CONNECT; --noproxy names hosts reached directly; a proxy that is not
    there is a network error."""
    files = {"p.bin": body("px", 70000)}
    base, https, _, p = tls_nginx(env, files)
    srv, port = proxy.start()
    try:
        # ctest sets no_proxy=*, which libcurl applies to --proxy too.
        clean = {k: v for k, v in os.environ.items()
                 if k.lower() not in ("no_proxy", "http_proxy",
                                      "https_proxy", "all_proxy")}
        purl = "http://127.0.0.1:%d" % port
        check(env.run(["--proxy", purl, base + "/p.bin"], env=clean) == 0,
              "http through the proxy")
        env.expect_file("p.bin", files["p.bin"])
        check(srv.log == ["GET %s/p.bin" % base], "log %s" % srv.log)
        shutil.rmtree(env.out)
        check(env.run(["--proxy", purl, "--cacert", p("ca.pem"),
                       https + "/p.bin"], env=clean) == 0, "https")
        env.expect_file("p.bin", files["p.bin"])
        check(srv.log[1:] == ["CONNECT %s" % https[len("https://"):]],
              "CONNECT: %s" % srv.log)
        shutil.rmtree(env.out)
        check(env.run(["--proxy", purl, "--noproxy", "127.0.0.1",
                       base + "/p.bin"], env=clean) == 0, "--noproxy")
        env.expect_file("p.bin", files["p.bin"])
        check(len(srv.log) == 2, "not through the proxy: %s" % srv.log)
        # The environment's proxy, as before, when --proxy is not given.
        shutil.rmtree(env.out)
        check(env.run([base + "/p.bin"],
                      env=dict(clean, http_proxy=purl)) == 0, "http_proxy")
        check(len(srv.log) == 3, "http_proxy used: %s" % srv.log)
    finally:
        proxy.stop(srv)
    shutil.rmtree(env.out)
    check(env.run(["--proxy", "http://127.0.0.1:%d" % closed_port(),
                   "--retries", "0", base + "/p.bin"], env=clean) == 4,
          "no proxy there: exit 4")
    env.expect_files([])



# ------------------------------------------------ issue 15: segments

RANGE_LOG = ("log_format ranges '$request_method $uri \"$http_range\" "
             "$status $body_bytes_sent';\n")


def slow_nginx(env, files, rate):
    """nginx with /slow/ limited to rate per connection (the WAN case
    splitting is for), its requests logged with their Range."""
    log = os.path.join(env.work, "ranges.log")
    server = ("location /slow/ { limit_rate %s; access_log %s ranges; }\n"
              % (rate, log))
    return env.nginx(files, http_conf=RANGE_LOG, server_conf=server), log


def read_log(log, skip=0):
    out = []
    if os.path.exists(log):
        with open(log) as f:
            for line in f.read().splitlines()[skip:]:
                method, uri, rng, status, sent = line.split(" ")
                rng = rng.strip('"')
                r = None
                if rng.startswith("bytes="):
                    a, b = rng[6:].split("-")
                    r = (int(a), int(b) + 1)
                out.append((uri, r, int(status), int(sent)))
    return out


def covers(ranges, size):
    at = 0
    for a, b in sorted(ranges):
        if a > at:
            return False
        at = max(at, b)
    return at >= size


@case
def seg_split(env):
    """-s 4: a big file from a server that takes Range comes in pieces,
    each a 206 of the range asked, together the whole file, faster than
    one connection can; -x alone splits too; a small file is not split;
    no control file is left."""
    size, rate = 12 << 20, 4 << 20
    data = body("split", size)
    small = body("small", 1536 << 10)
    base, log = slow_nginx(env, {"slow/big.bin": data,
                                 "slow/small.bin": small}, "4m")
    check(env.run(["-s", "4", base + "/slow/big.bin"]) == 0, "exit")
    env.expect_files(["big.bin"])
    env.expect_file("big.bin", data)
    check(env.elapsed < 0.6 * size / rate * MULT,
          "split: %.2fs, one connection takes %.1fs" %
          (env.elapsed, size / rate))
    wait_for("the log", lambda: len(read_log(log)) >= 5, 5)
    entries = read_log(log)
    ranged = [e for e in entries if e[1]]
    check(len(ranged) >= 4, "pieces: %s" % entries)
    check(all(e[2] == 206 for e in ranged), "206s: %s" % entries)
    check(covers([e[1] for e in ranged], size), "ranges cover the file")
    probe = [e for e in entries if not e[1]]
    check(len(probe) == 1 and probe[0][3] < size // 2,
          "one probe, stopped early: %s" % probe)
    n = len(entries)
    check(env.run(["-x", "3", base + "/slow/small.bin",
                   base + "/slow/big.bin", "--overwrite"]) == 0, "-x")
    env.expect_file("small.bin", small)
    env.expect_file("big.bin", data)
    wait_for("the log", lambda: len(read_log(log, n)) >= 5, 5)
    later = read_log(log, n)
    check([e for e in later if e[0] == "/slow/small.bin"] ==
          [("/slow/small.bin", None, 200, len(small))],
          "small file whole: %s" % later)
    check(len([e for e in later if e[1]]) >= 3, "-x 3 splits")
    env.expect_files(["big.bin", "small.bin"])
    # -k SIZE is aria2c's min-split-size: 12 MiB in pieces of at least
    # 4 MiB is three pieces, and none is split again.
    n += len(later)
    check(env.run(["-s", "8", "-k", "4M", base + "/slow/big.bin",
                   "--overwrite"]) == 0, "-k 4M")
    env.expect_file("big.bin", data)
    wait_for("the log", lambda: len(read_log(log, n)) >= 4, 5)
    ranged = sorted(e[1] for e in read_log(log, n) if e[1])
    check(ranged == [(0, 4 << 20), (4 << 20, 8 << 20), (8 << 20, size)],
          "-k 4M: %s" % ranged)
    check("--insecure" not in env.stderr, "-k 4M is not --insecure")


@case
def seg_resume_killed(env):
    """SIGKILL during a split download keeps NAME.part and its control
    file; -c fetches only the ranges the control file does not name, and
    the file is exact."""
    size = 16 << 20
    data = body("segres", size)
    base, log = slow_nginx(env, {"slow/r.bin": data}, "2m")
    url = base + "/slow/r.bin"
    part = os.path.join(env.out, "r.bin.part")
    ctl = part + ".ctl"
    p = subprocess.Popen([env.mpget, "-d", env.out, "--progress", "none",
                          "-s", "2", url], start_new_session=True,
                         stderr=subprocess.DEVNULL)

    def records():
        try:
            with open(ctl) as f:
                return f.read().splitlines()[2:]
        except OSError:
            return []
    try:
        wait_for("two records", lambda: len(records()) >= 2, 20)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    check(os.path.exists(part) and os.path.getsize(part) == size,
          ".part kept, at its size")
    done = [tuple(int(v) for v in r.split()) for r in records()]
    with open(part, "rb") as f:
        have = f.read()
    for a, b in done:
        check(have[a:b] == data[a:b], "recorded %d-%d is on disk" % (a, b))
    wait_for("the log", lambda: len(read_log(log)) >= 3, 5)
    n = len(read_log(log))
    check(env.run(["-c", "-s", "2", url]) == 0, "resume")
    env.expect_files(["r.bin"])
    env.expect_file("r.bin", data)
    wait_for("the log", lambda: len(read_log(log, n)) >= 2, 5)
    again = [e[1] for e in read_log(log, n) if e[1]]
    check(again, "ranges fetched")
    for a, b in again:
        for s, e in done:
            check(b <= s or a >= e, "%d-%d fetched again (had %d-%d)" %
                  (a, b, s, e))
    got = sum(b - a for a, b in again)
    check(got <= size - sum(b - a for a, b in done),
          "fetched %d of %d" % (got, size))


@case
def seg_server_lies(env):
    """A server that says Accept-Ranges but ignores Range: fetched whole
    again, with a warning.  A 206 at the wrong offset: that piece is
    refetched, never written there.  A file that changes between the
    probe and the pieces: fetched whole again, the new version."""
    base = env.fault()
    size = 4 << 20
    check(env.run(["-s", "4", base + "/seg/l1/%d?mode=liar" % size]) == 0,
          "liar: exit")
    check("ignored Range: fetched whole again" in env.stderr, "warns")
    env.expect_file("%d" % size, body("l1", size))
    env.expect_files(["%d" % size])
    shutil.rmtree(env.out)
    check(env.run(["-s", "4", base + "/seg/s1/%d?mode=skew" % size]) == 0,
          "skew: exit")
    env.expect_file("%d" % size, body("s1", size))
    env.expect_files(["%d" % size])
    shutil.rmtree(env.out)
    check(env.run(["-s", "4", base + "/seg/f1/%d?mode=flip" % size]) == 0,
          "flip: exit")
    check("changed on the server: fetched whole again" in env.stderr,
          "warns")
    env.expect_file("%d" % size, body("f1:v2", size))
    env.expect_files(["%d" % size])
    # A checksum over the pieces.
    shutil.rmtree(env.out)
    good = sha256(body("c1", size))
    lst = env.listfile("%s/seg/c1/%d\n  checksum=sha-256=%s\n"
                       "%s/seg/c2/%d\n  checksum=sha-256=%s\n" %
                       (base, size, good, base, size, "0" * 64))
    check(env.run(["-s", "3", "-i", lst]) == 5, "checksums: exit 5")
    env.expect_files(["%d" % size])
    env.expect_file("%d" % size, body("c1", size))



# ------------------------------------------------ issue 15: mirrors

@case
def mirrors_failover(env):
    """A list line of several URLs (TAB-separated, aria2c's input
    format) is one file from any of them: a 404, a 5xx, a reset or a
    refused connection on one moves it to the next; when all fail, the
    first failure's class is the exit code."""
    base = env.fault()
    dead = "http://127.0.0.1:%d/x" % closed_port()
    lines = [
        (base + "/status/404", base + "/data/m1/3000/one", "one", "m1"),
        (base + "/status/503", base + "/data/m2/3000/two", "two", "m2"),
        (base + "/reset/m3r/99/300000", base + "/data/m3/3000/three",
         "three", "m3"),
        (dead, base + "/data/m4/3000/four", "four", "m4"),
    ]
    text = "".join("%s\t%s\n  out=%s\n" % (a, b, n) for a, b, n, _ in lines)
    check(env.run(["-i", env.listfile(text), "--retries", "0"]) == 0,
          "every file from its second mirror")
    for _, _, n, tag in lines:
        env.expect_file(n, body(tag, 3000))
    env.expect_files([n for _, _, n, _ in lines])
    shutil.rmtree(env.out)
    text = "%s\t%s\n" % (base + "/status/404", dead)
    check(env.run(["-i", env.listfile(text), "--retries", "0"]) == 4,
          "all mirrors fail: the last failure is the file's, exit 4")
    check("Couldn't connect" in env.stderr, "the last reason")
    env.expect_files([])
    check(env.run(["-i", env.listfile("%s\tgopher://x/y\n" % base)]) == 2,
          "a bad mirror URL is a bad line")


@case
def mirrors_split(env):
    """Split over two mirrors: pieces go to both, most to the faster;
    a mirror that fails its pieces gets no more; mirrors that disagree
    on the size fail the file with that reason."""
    size = 12 << 20
    data = body("mirror", size)
    log = os.path.join(env.work, "ranges.log")
    server = ("location /slow/ { limit_rate 1m; access_log %s ranges; }\n"
              "location /fast/ { access_log %s ranges; }\n" % (log, log))
    base = env.nginx({"slow/m.bin": data, "fast/m.bin": data,
                      "fast/other.bin": data[:size - 4096]},
                     http_conf=RANGE_LOG, server_conf=server)
    line = "%s/slow/m.bin\t%s/fast/m.bin\n" % (base, base)
    check(env.run(["-s", "4", "-i", env.listfile(line)]) == 0, "exit")
    env.expect_files(["m.bin"])
    env.expect_file("m.bin", data)
    wait_for("the log", lambda: len(read_log(log)) >= 5, 5)
    ranged = [e for e in read_log(log) if e[1]]
    sent = {}
    for uri, _, status, n in ranged:
        sent[uri] = sent.get(uri, 0) + n
    check(len(sent) == 2, "pieces from both mirrors: %s" % ranged)
    check(sent["/fast/m.bin"] > sent["/slow/m.bin"],
          "most from the faster: %s" % sent)
    check(env.elapsed < 0.5 * size / (1 << 20) * MULT,
          "faster than the slow mirror alone: %.1fs" % env.elapsed)
    # A mirror that is not there: its pieces go to the other.
    shutil.rmtree(env.out)
    line = "%s/fast/m.bin\t%s/fast/gone.bin\n" % (base, base)
    check(env.run(["-s", "4", "-i", env.listfile(line)]) == 0, "gone")
    env.expect_file("m.bin", data)
    # Mirrors that disagree on the size.
    shutil.rmtree(env.out)
    line = "%s/fast/m.bin\t%s/fast/other.bin\n" % (base, base)
    check(env.run(["-s", "4", "-i", env.listfile(line)]) == 1,
          "disagree: exit 1")
    check("mirrors disagree on the size" in env.stderr, "says why")
    env.expect_files([])



# ------------------------------------------------ issue 15: auth, cookies

def auth_nginx(env, files):
    """nginx with a basic-auth location (user u, password p), one that
    sets a cookie, one that wants it, and a redirect to faultserver's
    /echo (another origin)."""
    fault = env.fault()
    htpasswd = os.path.join(env.work, "htpasswd")
    hashed = subprocess.run(["openssl", "passwd", "-apr1", "p"],
                            capture_output=True, text=True, check=True,
                            timeout=30).stdout.strip()
    with open(htpasswd, "w") as f:
        f.write("u:%s\n" % hashed)
    server = """
location /private/ { auth_basic "mpget"; auth_basic_user_file %s; }
location /setcookie/ { add_header Set-Cookie "sess=abc123; Path=/"; }
location /needcookie/ {
    if ($cookie_sess != "abc123") { return 403; }
}
location = /private/away { auth_basic "mpget"; auth_basic_user_file %s;
    return 302 %s/echo; }
""" % (htpasswd, htpasswd, fault)
    return env.nginx(files, server_conf=server), fault


@case
def auth_user_netrc(env):
    """--user and --netrc-file log in with basic auth; without them the
    server refuses (401, exit 1); the login is not sent to the host a
    redirect leads to."""
    files = {"private/a.bin": body("auth", 5000)}
    base, fault = auth_nginx(env, files)
    url = base + "/private/a.bin"
    check(env.run([url]) == 1, "no login: exit 1")
    check("HTTP 401" in env.stderr, "401")
    check(env.run(["--user", "u:wrong", url]) == 1, "bad password")
    check(env.run(["--user", "u:p", url]) == 0, "--user")
    env.expect_file("a.bin", files["private/a.bin"])
    shutil.rmtree(env.out)
    netrc = os.path.join(env.work, "netrc")
    with open(netrc, "w") as f:
        f.write("machine 127.0.0.1 login u password p\n")
    check(env.run(["--netrc-file", netrc, url]) == 0, "--netrc-file")
    env.expect_file("a.bin", files["private/a.bin"])
    check(env.run(["--user", "u:p", base + "/private/away"]) == 0,
          "redirected")
    with open(os.path.join(env.out, "away"), "rb") as f:
        echoed = f.read().decode().lower()
    check("user-agent" in echoed, "the echo: %r" % echoed)
    check("authorization" not in echoed,
          "the login went to the redirect's host: %r" % echoed)
    check(env.run(["--user", "nocolon", url], report=False) == 2,
          "--user without a colon: exit 2")


@case
def cookies(env):
    """--load-cookies sends a Netscape file's cookies; a cookie a server
    sets is sent by later requests; --save-cookies writes them all; a
    cookie file that does not parse is file:line, exit 2."""
    files = {"setcookie/s.txt": b"set\n", "needcookie/n.bin":
             body("ck", 4000)}
    base, _ = auth_nginx(env, files)
    need = base + "/needcookie/n.bin"
    check(env.run([need]) == 1, "no cookie: 403, exit 1")
    jar = os.path.join(env.work, "cookies.txt")
    with open(jar, "w") as f:
        f.write("# Netscape HTTP Cookie File\n\n"
                "127.0.0.1\tFALSE\t/\tFALSE\t0\tsess\tabc123\n")
    check(env.run(["--load-cookies", jar, need]) == 0, "--load-cookies")
    env.expect_file("n.bin", files["needcookie/n.bin"])
    shutil.rmtree(env.out)
    saved = os.path.join(env.work, "saved.txt")
    check(env.run(["-j", "1", "--save-cookies", saved,
                   base + "/setcookie/s.txt", need]) == 0,
          "a cookie the server set, sent next")
    env.expect_file("n.bin", files["needcookie/n.bin"])
    with open(saved) as f:
        lines = [ln.split("\t") for ln in f.read().splitlines()
                 if ln and not ln.startswith("# ")]
    check(any(ln[5:] == ["sess", "abc123"] for ln in lines if
              len(ln) == 7), "saved: %s" % lines)
    check(not [n for n in os.listdir(env.work) if "mpget-w" in n],
          "no worker jar left")
    with open(jar, "w") as f:
        f.write("# ok\n127.0.0.1\tFALSE\t/\tFALSE\t0\ta\tb\n"
                "127.0.0.1 FALSE / FALSE 0 a b\n")
    shutil.rmtree(env.out)
    check(env.run(["--load-cookies", jar, need], report=False) == 2,
          "bad cookie file: exit 2")
    check("cookies.txt:3: not a cookie line" in env.stderr, "file:line")
    env.expect_files([])



# ------------------------------------------------ issue 15: FTP

@case
def ftp(env):
    """ftp:// URLs in the same list: a login (in the URL or --user), an
    empty file, a missing one (exit 3), checksums, and -c after SIGKILL
    resumes with REST at the .part's size."""
    big = body("ftpbig", 4 << 20)
    files = {"/pub/a.bin": body("ftpa", 300000), "/pub/empty": b"",
             "/pub/big.bin": big}
    srv, port = ftpserver.start(files, user="u", pw="p")
    try:
        base = "ftp://127.0.0.1:%d/pub" % port
        check(env.run(["--user", "u:p", base + "/a.bin", base + "/empty"])
              == 0, "--user")
        env.expect_file("a.bin", files["/pub/a.bin"])
        env.expect_file("empty", b"")
        check(env.run(["--user", "u:wrong", "--retries", "0",
                       base + "/a.bin", "--overwrite"]) == 1,
              "bad login: exit 1")
        shutil.rmtree(env.out)
        auth = "ftp://u:p@127.0.0.1:%d/pub" % port
        lst = env.listfile(
            "%s/a.bin\n  checksum=sha-1=%s\n%s/empty\n"
            "  checksum=md5=%s\n%s/nope\n" %
            (auth, hashlib.sha1(files["/pub/a.bin"]).hexdigest(), auth,
             "0" * 32, auth))
        check(env.run(["-i", lst]) == 5, "checksum, then 404: exit 5")
        env.expect_files(["a.bin"])
        rep = by_url(env.report())
        check("does not exist" in rep[auth + "/nope"]["error"],
              "missing: %s" % rep[auth + "/nope"])
        check(env.run([auth + "/nope"]) == 3, "missing: exit 3")
        shutil.rmtree(env.out)
        srv.hold["/pub/big.bin"] = 0.4
        have = kill_mid_body(env, auth + "/big.bin", "big.bin")
        n = len(srv.log)
        check(env.run(["-c", auth + "/big.bin"]) == 0, "resume")
        env.expect_file("big.bin", big)
        check("REST %d" % have in srv.log[n:], "REST %d: %s" %
              (have, srv.log[n:]))
    finally:
        ftpserver.stop(srv)


@case
def ftps(env):
    """ftps:// (implicit TLS, data connections too) from a server whose
    certificate a private CA signed: refused without --cacert (a TLS
    error, exit 4, nothing left), fetched whole with it, checksums too,
    and -c after SIGKILL resumes with REST."""
    p = make_pki(os.path.join(env.work, "pki"))
    big = body("ftpsbig", 4 << 20)
    files = {"/pub/a.bin": body("ftpsa", 300000),
             "/pub/b.bin": body("ftpsb", 20000), "/pub/big.bin": big}
    srv, port = ftpserver.start(files, user="u", pw="p",
                                tls=(p("server.pem"), p("server.key")))
    try:
        base = "ftps://u:p@127.0.0.1:%d/pub" % port
        check(env.run([base + "/a.bin", "--retries", "0"]) == 4,
              "no --cacert: exit 4")
        env.expect_files([])
        lst = env.listfile("%s/a.bin\n  checksum=sha-256=%s\n%s/b.bin\n" %
                           (base, hashlib.sha256(files["/pub/a.bin"])
                            .hexdigest(), base))
        check(env.run(["-i", lst, "--cacert", p("ca.pem")]) == 0,
              "--cacert")
        env.expect_file("a.bin", files["/pub/a.bin"])
        env.expect_file("b.bin", files["/pub/b.bin"])
        check("PROT P" in srv.log, "data over TLS: %s" % srv.log)
        shutil.rmtree(env.out)
        srv.hold["/pub/big.bin"] = 0.4
        have = kill_mid_body(env, base + "/big.bin", "big.bin",
                             ["--cacert", p("ca.pem")])
        n = len(srv.log)
        check(env.run(["-c", base + "/big.bin", "--cacert", p("ca.pem")])
              == 0, "resume")
        env.expect_file("big.bin", big)
        check("REST %d" % have in srv.log[n:], "REST %d: %s" %
              (have, srv.log[n:]))
    finally:
        ftpserver.stop(srv)



# ------------------------------------------------ issue 15: progress

@case
def progress_files(env):
    """The live display has a line for each big file under way (name,
    percent, rate) under the summary line; "1 file", not "1 files"; the
    ETA is always m:ss; the bytes of the summary are those downloaded in
    this run, not the resumed ones."""
    import re
    size = 6 << 20
    data = body("prog", size)
    base, _ = slow_nginx(env, {"slow/big.bin": data}, "3m")
    url = base + "/slow/big.bin"
    check(env.run(["--progress", "bar", url]) == 0, "exit")
    env.expect_file("big.bin", data)
    err = env.stderr
    check(re.search(r"\n  big\.bin +\d+%  [\d.]+ (KiB|MiB)/s", err),
          "a line for big.bin: %r" % err[-600:])
    check("1/1 file " in err or "0/1 file " in err, "1 file: %r" %
          err[-300:])
    etas = re.findall(r"ETA (\S+)", err)
    check(etas and all(re.fullmatch(r"(\d+:)?\d+:\d\d|--:--", e)
                       for e in etas), "ETA m:ss: %s" % etas[:5])
    check("1 file: 1 ok, 0 failed, 0 skipped; 6.0 MiB downloaded" in err,
          "summary: %r" % err[-200:])
    shutil.rmtree(env.out)
    have = kill_mid_body(env, url, "big.bin")
    check(env.run(["-c", url]) == 0, "resume")
    env.expect_file("big.bin", data)
    m = re.search(r"; ([\d.]+) MiB downloaded", env.stderr)
    check(m and abs(float(m.group(1)) * (1 << 20) - (size - have)) <
          0.06 * (1 << 20), "only the new bytes: %s, want %.1f MiB" %
          (m and m.group(1), (size - have) / (1 << 20)))



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--mpget")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--workdir")
    ap.add_argument("case", nargs="?")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    if args.case not in CASES:
        print("unknown case %r" % args.case)
        return 2
    if not args.workdir:
        args.workdir = "mpget-test-" + args.case
    env = Env(args)
    try:
        CASES[args.case](env)
    except Fail as e:
        print("not ok - %s: %s" % (args.case, e))
        return 1
    finally:
        env.close()
    print("ok - %s" % args.case)
    shutil.rmtree(env.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
