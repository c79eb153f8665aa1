# SPDX-License-Identifier: MIT
"""Python's peer for bench-process: Process start+join with the fork start
method.  Prints seconds per start+join.  argv: iterations [heap_mib]."""
import multiprocessing as mp
import sys
import time


def nothing():
    pass


def main():
    n = int(sys.argv[1])
    heap = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    ballast = bytearray(heap << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touch every page, as the C side does
    ctx = mp.get_context("fork")
    p = ctx.Process(target=nothing)  # warm up
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
