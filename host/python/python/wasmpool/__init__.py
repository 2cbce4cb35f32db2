"""wasmpool: Python's `multiprocessing`, with every task in a sandbox.

Change one import, and a program's pool runs its functions in WebAssembly
sandboxes inside hardened worker processes (seccomp, rlimits, no
environment, no network), each task failing alone::

    import wasmpool as multiprocessing

    def square(x):
        return x * x

    if __name__ == "__main__":
        with multiprocessing.Pool(4) as pool:
            print(pool.map(square, range(10)))

The pool builds the program's file into a component with the Python guest
SDK on first use (kept in the cache, keyed by its content), and runs the
function named there. Arguments and results are what MessagePack carries:
None, bool, int (64 bits), float, str, bytes, list, tuple (comes back as a
list) and dict.
"""

import os

from ._errors import (
    BadArguments, BadModule, BadResult, Error, Initializer, MemoryLimit, OutOfFuel, PoolClosed,
    RemoteTraceback, TaskError, TaskTimeout, Terminated, TimeoutError, Trap, UnknownTask,
    WorkerLost,
)
from ._pool import AsyncResult, Pool

__all__ = [
    "AsyncResult", "BadArguments", "BadModule", "BadResult", "Error", "Initializer",
    "MemoryLimit", "OutOfFuel", "Pool", "PoolClosed", "RemoteTraceback", "TaskError",
    "TaskTimeout", "Terminated", "TimeoutError", "Trap", "UnknownTask", "WorkerLost",
    "cpu_count",
]

__version__ = "0.1.0"


def cpu_count():
    """The number of CPUs of this machine, as `multiprocessing.cpu_count`."""
    count = os.cpu_count()
    if count is None:
        raise NotImplementedError("cannot determine number of cpus")
    return count
