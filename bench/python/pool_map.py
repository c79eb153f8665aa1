# SPDX-License-Identifier: MIT
"""Python's peer for bench-pool: Pool.map of a trivial function over ints
with the fork start method.  Prints tasks per second on a warm pool, or
with "cold", the seconds from a new Pool(workers) to the results of its
first map.  argv: n chunksize(0 = Python's default) workers [cold]."""
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x


def main():
    n, chunksize, workers = (int(a) for a in sys.argv[1:4])
    cold = sys.argv[4:5] == ["cold"]
    data = list(range(n))
    args = (chunksize,) if chunksize else ()
    if cold:
        t0 = time.perf_counter()
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(square, data, *args)
            dt = time.perf_counter() - t0
        assert out[n - 1] == (n - 1) * (n - 1)
        print(dt)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(square, range(1000))  # warm up: workers started
        t0 = time.perf_counter()
        out = pool.map(square, data, *args)
        dt = time.perf_counter() - t0
    assert out[n - 1] == (n - 1) * (n - 1)
    print(n / dt)


if __name__ == "__main__":
    main()
