# SPDX-License-Identifier: MIT
"""Python's peer for bench-sync: ping-pong between two processes with a
pair of Semaphores or a pair of Events (wait, clear, set the other).
Prints seconds per round trip.  argv: sem|event rounds."""
import multiprocessing as mp
import sys
import time


def sem_ponger(ping, pong, n):
    for _ in range(n):
        ping.acquire()
        pong.release()


def event_ponger(ping, pong, n):
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()


def main():
    kind, n = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context("fork")
    if kind == "sem":
        ping, pong = ctx.Semaphore(0), ctx.Semaphore(0)
        p = ctx.Process(target=sem_ponger, args=(ping, pong, n))
        p.start()
        t0 = time.perf_counter()
        for _ in range(n):
            ping.release()
            pong.acquire()
    else:
        ping, pong = ctx.Event(), ctx.Event()
        p = ctx.Process(target=event_ponger, args=(ping, pong, n))
        p.start()
        t0 = time.perf_counter()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
    t = (time.perf_counter() - t0) / n
    p.join()
    print(t)


if __name__ == "__main__":
    main()
