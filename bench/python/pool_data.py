# SPDX-License-Identifier: MIT
"""Python's peer for bench-pool-data (fork start method, a Pool of
`workers`).  argv: mode n workers [chunksize].
  cold:   prints the seconds of Pool(workers) and of its first map of
          list(range(n)) (made before the clock starts), one per line;
  bufs:   Pool.map of bytes.upper over n byte strings of 10-100 bytes (the
          same as bench-pool-data's), warm pool; prints items/s;
  stream: Pool.imap of a square over a generator of n ints with chunksize,
          warm pool; prints items/s, then the peak resident size of this
          (the parent) process in bytes."""
import multiprocessing as mp
import resource
import sys
import time


def square(x):
    return x * x


def upper(b):
    return b.upper()


def item(i):
    n = 10 + ((i * 2654435761) & (2**64 - 1)) % 2**64 // 128 % 91
    return bytes(97 + (i + k) % 26 for k in range(n))


def gen(n):
    for i in range(n):
        yield i


def main():
    mode, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = mp.get_context("fork")
    if mode == "cold":
        data = list(range(n))
        t0 = time.perf_counter()
        pool = ctx.Pool(workers)
        t1 = time.perf_counter()
        out = pool.map(square, data)
        t2 = time.perf_counter()
        pool.terminate()
        pool.join()
        assert out[n - 1] == (n - 1) * (n - 1)
        print(t1 - t0)
        print(t2 - t1)
        return
    with ctx.Pool(workers) as pool:
        pool.map(square, range(1000))  # warm up: workers started
        if mode == "bufs":
            data = [item(i) for i in range(n)]
            t0 = time.perf_counter()
            out = pool.map(upper, data)
            dt = time.perf_counter() - t0
            assert len(out) == n and out[1] == data[1].upper()
            print(n / dt)
        elif mode == "stream":
            chunksize = int(sys.argv[4])
            t0 = time.perf_counter()
            total = 0
            for v in pool.imap(square, gen(n), chunksize):
                total += v
            dt = time.perf_counter() - t0
            assert total == sum(i * i for i in range(n))
            print(n / dt)
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        else:
            sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
