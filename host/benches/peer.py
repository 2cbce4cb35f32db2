"""The peer side of wasmpool's benchmark: workloads W1-W8 on CPython's
multiprocessing.Pool (fork start method), printed as one JSON object.

Run by `cargo bench --bench peer`, which runs the same workloads on wasmpool
and prints both side by side; runnable alone: python3 peer.py --processes 2.
"""

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time


def square(x):
    return x * x


def noop(*_args):
    return None


def sum_range(n):
    total = 0
    for i in range(n):
        total += i
    return total


def sieve(n):
    """Counts the primes up to n, with the same loops as the wasm task."""
    composite = bytearray(n + 1)
    count = 0
    i = 2
    while i <= n:
        if not composite[i]:
            count += 1
            j = i * i
            while j <= n:
                composite[j] = 1
                j += i
        i += 1
    return count


def median_time(runs, fn):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def lazy_inputs(n):
    for i in range(n):
        yield i


def w8_child(processes, n):
    """Runs in its own process: imap over n lazily generated inputs; prints
    the growth of the peak RSS of the host and of the workers, in MB."""
    with multiprocessing.Pool(processes) as pool:
        pool.apply(noop)
        base_host = rss_kb(os.getpid())
        workers = [p.pid for p in pool._pool]
        base_workers = max(rss_kb(pid) for pid in workers)
        count = 0
        for _ in pool.imap(square, lazy_inputs(n), chunksize=1000):
            count += 1
        peak_workers = max(rss_kb(pid) for pid in workers)
    assert count == n
    peak_host = rss_kb(os.getpid())
    print(json.dumps({"host_mb": (peak_host - base_host) / 1024,
                      "workers_mb": (peak_workers - base_workers) / 1024}))


def cold_start(processes):
    """Program start to first result, in a fresh interpreter."""
    code = ("import multiprocessing as m\n"
            "def f(x): return x*x\n"
            "if __name__ == '__main__':\n"
            "  m.set_start_method('fork')\n"
            f"  with m.Pool({processes}) as p: print(p.apply(f, (3,)))\n")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--w8-child", type=int, default=0)
    args = parser.parse_args()
    multiprocessing.set_start_method("fork")
    if args.w8_child:
        w8_child(args.processes, args.w8_child)
        return
    p = args.processes
    results = {"processes": p, "python": sys.version.split()[0]}
    with multiprocessing.Pool(p) as pool:
        pool.map(noop, range(p * 4))  # warm up
        results["w1_s"] = median_time(3, lambda: pool.map(square, range(1_000_000)))

        def w2():
            pending = [pool.apply_async(noop) for _ in range(10_000)]
            for r in pending:
                r.get()
        results["w2_s"] = median_time(3, w2)

        latencies = []
        for _ in range(2_000):
            start = time.perf_counter()
            pool.apply(noop)
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        results["w3_p50_us"] = latencies[len(latencies) // 2] * 1e6
        results["w3_p99_us"] = latencies[int(len(latencies) * 0.99)] * 1e6

        results["w4_s"] = median_time(
            3, lambda: sum(1 for _ in pool.imap(square, range(200_000), chunksize=1)))

        n_sum, n_sieve = 10_000_000, 2_000_000
        results["w6_sum_s"] = median_time(3, lambda: pool.map(sum_range, [n_sum] * (2 * p), 1))
        results["w6_sieve_s"] = median_time(3, lambda: pool.map(sieve, [n_sieve] * (2 * p), 1))

    def w5():
        with multiprocessing.Pool(p, maxtasksperchild=1) as pool:
            pool.map(noop, range(200), 1)
    results["w5_ms_per_task"] = median_time(3, w5) / 200 * 1000

    results["w7_s"] = cold_start(p)

    w8 = subprocess.run([sys.executable, __file__, "--processes", str(p), "--w8-child",
                         "10000000"], check=True, capture_output=True, text=True)
    results["w8"] = json.loads(w8.stdout)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
