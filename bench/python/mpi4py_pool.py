# SPDX-License-Identifier: MIT
"""mpi4py.futures' peer for bench-mpi, run as
    mpirun -np 4 python3 -m mpi4py.futures bench/python/mpi4py_pool.py N1 N2 N3
(MPIPoolExecutor's workers are the other ranks).  Prints one line per
scenario, as bench-mpi does: "sample SCENARIO mpi4py.futures VALUE":
a chunksize-1 map of N1 trivial tasks (tasks/s), submit().result() round
trips (seconds each, N2 of them), a map of N3 items chunked as our pool
and Python's Pool chunk automatically, n / (4 * workers) (tasks/s)."""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def square(x):
    return x * x


def main():
    n1, n2, n3 = (int(a) for a in sys.argv[1:4])
    workers = MPI.COMM_WORLD.Get_size() - 1
    with MPIPoolExecutor() as ex:
        list(ex.map(square, range(200)))  # the workers are up
        t0 = time.perf_counter()
        r = list(ex.map(square, range(n1)))
        dt = time.perf_counter() - t0
        assert r[-1] == (n1 - 1) ** 2
        print("sample map-cs1 mpi4py.futures %.6g" % (n1 / dt))
        t0 = time.perf_counter()
        for i in range(n2):
            assert ex.submit(square, i).result() == i * i
        dt = time.perf_counter() - t0
        print("sample apply-rtt mpi4py.futures %.6g" % (dt / n2))
        cs = -(-n3 // (4 * workers))
        t0 = time.perf_counter()
        r = list(ex.map(square, range(n3), chunksize=cs))
        dt = time.perf_counter() - t0
        assert r[-1] == (n3 - 1) ** 2
        print("sample map-auto mpi4py.futures %.6g" % (n3 / dt))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
