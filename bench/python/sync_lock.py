# SPDX-License-Identifier: MIT
"""Python's peer for bench-lock: uncontended multiprocessing.Lock
acquire+release, one timed loop (the C side runs this script once per
run).  Prints seconds per pair.  argv: iterations."""
import multiprocessing as mp
import sys
import time


def main():
    n = int(sys.argv[1])
    lock = mp.get_context("fork").Lock()
    acquire, release = lock.acquire, lock.release
    for _ in range(1000):
        acquire()
        release()
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    print((time.perf_counter() - t0) / n)


if __name__ == "__main__":
    main()
