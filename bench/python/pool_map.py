"""Python's peer for bench-pool: Pool.map of a trivial function over ints
with the fork start method.  Prints tasks per second.
argv: n chunksize(0 = Python's default) workers."""
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x


def main():
    n, chunksize, workers = (int(a) for a in sys.argv[1:4])
    data = list(range(n))
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(square, range(1000))  # warm up: workers started
        t0 = time.perf_counter()
        if chunksize:
            out = pool.map(square, data, chunksize)
        else:
            out = pool.map(square, data)
        dt = time.perf_counter() - t0
    assert out[n - 1] == (n - 1) * (n - 1)
    print(n / dt)


if __name__ == "__main__":
    main()
