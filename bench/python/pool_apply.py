# SPDX-License-Identifier: MIT
"""Python's peer for bench-pool: apply_async(f, (i,)).get() round trips,
one at a time, with the fork start method.  Prints seconds per round trip.
argv: iterations workers."""
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x


def main():
    n, workers = int(sys.argv[1]), int(sys.argv[2])
    with mp.get_context("fork").Pool(workers) as pool:
        for i in range(100):  # warm up
            pool.apply_async(square, (i,)).get()
        t0 = time.perf_counter()
        for i in range(n):
            assert pool.apply_async(square, (i,)).get() == i * i
        dt = time.perf_counter() - t0
    print(dt / n)


if __name__ == "__main__":
    main()
