# SPDX-License-Identifier: MIT
"""Python's peer for bench-queue: one producer process puts n bytes
objects of the given size into a multiprocessing.Queue, one consumer
process gets them.  Prints messages per second.  argv: n size."""
import multiprocessing as mp
import sys
import time


def producer(q, n, size):
    msg = bytes(size)
    for _ in range(n):
        q.put(msg)


def consumer(q, n):
    for _ in range(n):
        q.get()


def main():
    n = int(sys.argv[1])
    size = int(sys.argv[2])
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    c = ctx.Process(target=consumer, args=(q, n))
    p = ctx.Process(target=producer, args=(q, n, size))
    t0 = time.perf_counter()
    c.start()
    p.start()
    p.join()
    c.join()
    print(n / (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
