# SPDX-License-Identifier: MIT
"""Python's peer for bench-process and bench-start: Process start+join.
Prints seconds per start+join.  argv: iterations [heap_mib [method]], the
method one of fork (the default), forkserver, spawn."""
import multiprocessing as mp
import sys
import time


def nothing():
    pass


def main():
    n = int(sys.argv[1])
    heap = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    method = sys.argv[3] if len(sys.argv) > 3 else "fork"
    ballast = bytearray(heap << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touch every page, as the C side does
    ctx = mp.get_context(method)
    p = ctx.Process(target=nothing)  # warm up (starts a forkserver)
    p.start()
    p.join()
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
    print((time.perf_counter() - t0) / n)


if __name__ == "__main__":
    main()
