"""The task functions of the Python multiprocessing tutorials
(examples/guests/seeds and examples/guests/processes), as a Python wasmpool
module: the seeds' own functions, back in Python, run in sandboxed workers.

Build: python -m wasmpool_guest build examples/guests/python/pytasks.py -o pytasks.wasm
Run:   wasmpool map pytasks.wasm square --input examples/data/numbers.jsonl
"""

import time

from wasmpool_guest import task, worker_pid


@task
def square(i):
    """`func(i)`: `i * i`."""
    return i * i


@task
def func(num):
    """`func(num)`: prints its number and returns it."""
    print(num)
    return num


@task
def tag(arg):
    """`func(args)`: `"(arg:pid)"`, showing which worker ran each item."""
    return f"({arg}:{worker_pid()})"


@task
def pair(a, b):
    """`func(*args)` for starmap: `"(a, b):pid"`."""
    return f"({a}, {b}):{worker_pid()}"


@task
def work(n, sleep_ms=0):
    """`work(n)`: prints the pid, sleeps, returns `n ** 2`."""
    print(f"{worker_pid()} run")
    time.sleep(sleep_ms / 1000)
    return n**2


@task
def add_range(n):
    """`func(n)` of the efficiency comparison: adds `range(100)` to `n`."""
    for i in range(100):
        n += i
    return n


@task
def sum_range(n):
    """`sum(range(n))`, CPU-bound."""
    total = 0
    for i in range(n):
        total += i
    return total


@task
def noop():
    """Does nothing: the cost of a task itself."""


@task
def action_named(name="default"):
    """Seed 001's `action(name='default')`."""
    return f"({worker_pid()}) is running, argument: {name}"


@task
def func_kwds(x, y, a=0, b=0):
    """Seed 003's `pool.apply(func, (123, 345), {'a': 1, 'b': 2})`, with the
    keyword arguments named (a task's parameters are fixed)."""
    return f"args: ({x}, {y}), kwargs: {{'a': {a}, 'b': {b}}}"


@task
def decrement_locked(d, lock, pause_ms):
    """Seed 004's `work(d, lock)` under `with lock:`: no update is lost."""
    with lock:
        count = d.get("count", 0)
        time.sleep(pause_ms / 1000)
        d["count"] = count - 1


@task
def decrement_atomic(d):
    """`work(d)` as one atomic step: the dict's own read-modify-write."""
    d.add("count", -1)
