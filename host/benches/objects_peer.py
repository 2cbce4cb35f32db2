"""CPython's side of the shared-objects benchmark (host/benches/objects.rs):
multiprocessing's Lock, Value and Queue, and a Manager's Lock and Value,
used from a Process (fork start method); per operation, in microseconds,
printed as one JSON object. Runnable alone: python3 objects_peer.py 2000.
"""

import json
import multiprocessing
import statistics
import sys
import time

# Shared memory is fast: more operations a run, for a steady time.
SHARED_MEMORY_FACTOR = 100


def lock_round_trips(lock, times, out):
    start = time.perf_counter()
    for _ in range(times):
        lock.acquire()
        lock.release()
    out.put((time.perf_counter() - start) * 1e6 / times)


def value_reads(value, times, out):
    start = time.perf_counter()
    total = 0
    for _ in range(times):
        total += value.value
    out.put((time.perf_counter() - start) * 1e6 / times)


def echo(inbox, outbox, times):
    for _ in range(times):
        outbox.put(inbox.get())


def in_process(target, *args):
    """The median of 5 runs of `target` in a Process, which reports its time."""
    samples = []
    for _ in range(5):
        out = multiprocessing.Queue()
        process = multiprocessing.Process(target=target, args=(*args, out))
        process.start()
        samples.append(out.get())
        process.join()
    return statistics.median(samples)


def ping_pong(times):
    samples = []
    inbox, outbox = multiprocessing.Queue(), multiprocessing.Queue()
    for _ in range(5):
        process = multiprocessing.Process(target=echo, args=(inbox, outbox, times))
        process.start()
        start = time.perf_counter()
        for item in range(times):
            inbox.put(item)
            assert outbox.get() == item
        samples.append((time.perf_counter() - start) * 1e6 / times)
        process.join()
    return statistics.median(samples)


def main():
    times = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    multiprocessing.set_start_method("fork")
    fast = times * SHARED_MEMORY_FACTOR
    with multiprocessing.Manager() as manager:
        result = {
            "python": sys.version.split()[0],
            "lock_us": in_process(lock_round_trips, multiprocessing.Lock(), fast),
            "manager_lock_us": in_process(lock_round_trips, manager.Lock(), times),
            "value_us": in_process(value_reads, multiprocessing.Value("q", 7), fast),
            "manager_value_us": in_process(value_reads, manager.Value("q", 7), times),
            "ping_pong_us": ping_pong(times),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
