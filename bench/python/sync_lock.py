"""Python's peer for bench-lock: uncontended multiprocessing.Lock
acquire+release.  Prints seconds per pair.  argv: iterations."""
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
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            acquire()
            release()
        t = (time.perf_counter() - t0) / n
        best = t if best is None or t < best else best
    print(best)


if __name__ == "__main__":
    main()
