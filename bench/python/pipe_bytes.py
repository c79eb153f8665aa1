# SPDX-License-Identifier: MIT
"""Python's peer for bench-conn: a child process sends n messages of the
given size with Pipe().send_bytes, the parent receives them with
recv_bytes.  Time runs from the parent's "go" to the last message
received, as in bench-conn.  Prints megabytes (1e6 bytes) per second.  argv: n size."""
import multiprocessing as mp
import sys
import time


def sender(conn, go, n, size):
    msg = bytes(size)
    go.recv_bytes()
    for _ in range(n):
        conn.send_bytes(msg)


def main():
    n = int(sys.argv[1])
    size = int(sys.argv[2])
    ctx = mp.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    go_r, go_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=sender, args=(w, go_r, n, size))
    p.start()
    t0 = time.perf_counter()
    go_w.send_bytes(b"g")
    for _ in range(n):
        r.recv_bytes()
    t = time.perf_counter() - t0
    p.join()
    print(n * size / t / 1e6)


if __name__ == "__main__":
    main()
