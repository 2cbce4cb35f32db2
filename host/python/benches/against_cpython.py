"""The Python host package against CPython's own `multiprocessing.Pool`, on
the same functions, in one run: `python3 host/python/benches/against_cpython.py`.

Prints a table (copied by hand into BENCHMARKS.md, "Python hosts"): `map` over
100,000 tiny items, the `apply` round trip (p50), a CPU-bound task, and the
start of a program: its first run (building the component and compiling
it, in a cache of its own) and a warm start to the first result.
"""

import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import wasmpool

PROCESSES = 2
ITEMS = 100_000
TRIPS = 1_000
SUM_N = 3_000_000


def square(x):
    return x * x


def sum_to(n):
    total = 0
    for i in range(n):
        total += i
    return total


def timed(run):
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def round_trip_p50(pool):
    trips = []
    for i in range(TRIPS):
        started = time.perf_counter()
        pool.apply(square, (i,))
        trips.append(time.perf_counter() - started)
    return statistics.median(trips)


def measure(make_pool):
    with make_pool() as pool:
        pool.map(square, range(PROCESSES * 4), chunksize=1)  # every worker warm
        tiny = timed(lambda: pool.map(square, range(ITEMS)))
        trip = round_trip_p50(pool)
        cpu = timed(lambda: pool.map(sum_to, [SUM_N] * 4, chunksize=1))
    return tiny, trip, cpu


STARTUP = """
import {module} as wasmpool
def square(x):
    return x * x
if __name__ == "__main__":
    with wasmpool.Pool(1) as pool:
        pool.apply(square, (3,))
"""


def startup(module):
    """The first run and the best of five warm starts of STARTUP importing
    `module` as its pool's, in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(textwrap.dedent(STARTUP.format(module=module)))
        env = dict(os.environ, XDG_CACHE_HOME=str(Path(tmp) / "cache"))
        first = timed(lambda: subprocess.run([sys.executable, str(script)], env=env, check=True,
                                             capture_output=True))
        warm = min(
            timed(lambda: subprocess.run([sys.executable, str(script)], env=env, check=True,
                                         capture_output=True))
            for _ in range(5)
        )
    return first, warm


def main():
    here = Path(__file__).resolve()
    ours = measure(lambda: wasmpool.Pool(PROCESSES, module=here))
    theirs = measure(lambda: multiprocessing.Pool(PROCESSES))
    first, warm = startup("wasmpool")
    _, their_warm = startup("multiprocessing")
    rows = [
        (f"`map(square, range({ITEMS}))`", "s", ours[0], theirs[0]),
        ("`apply` round trip, p50", "ms", ours[1] * 1e3, theirs[1] * 1e3),
        (f"`map(sum_to, [{SUM_N}] * 4)`, CPU-bound", "s", ours[2], theirs[2]),
    ]
    print(f"Python host package against multiprocessing.Pool, {PROCESSES} processes each\n")
    print("| workload | wasmpool | multiprocessing | wasmpool / multiprocessing |")
    print("|---|---:|---:|---:|")
    for name, unit, a, b in rows:
        print(f"| {name} | {a:.3f} {unit} | {b:.3f} {unit} | {a / b:.2f}× |")
    print(f"| first run of a program (build + compile + one task) | {first:.2f} s | | |")
    print(
        f"| warm start to the first result (whole process) | {warm * 1e3:.0f} ms "
        f"| {their_warm * 1e3:.0f} ms | {warm / their_warm:.2f}× |"
    )


if __name__ == "__main__":
    main()
