"""CPython's side of the Python-guest benchmark (host/benches/python.rs): the
same tiny and CPU-bound tasks on multiprocessing.Pool (fork start method),
printed as one JSON object. Runnable alone: python3 python_peer.py 2.
"""

import json
import multiprocessing
import statistics
import sys
import time

TINY = 100_000
SUM_N = 3_000_000
SUM_TASKS = 4


def square(i):
    return i * i


def sum_range(n):
    total = 0
    for i in range(n):
        total += i
    return total


def timed(runs, f):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main():
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    multiprocessing.set_start_method("fork")
    start = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        pool.apply(square, (3,))
        first = time.perf_counter() - start
        tiny = timed(3, lambda: pool.map(square, range(TINY)))
        cpu = timed(3, lambda: pool.map(sum_range, [SUM_N] * SUM_TASKS, chunksize=1))
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "first": first,
                "tiny": tiny,
                "cpu": cpu,
            }
        )
    )


if __name__ == "__main__":
    main()
