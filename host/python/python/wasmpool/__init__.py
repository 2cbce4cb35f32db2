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
SDK on first use (kept in the cache, keyed by its content), and runs there
what it is given, found as pickle finds a function: by its module and
qualified name (a top-level function, a static or class method, a built-in
such as `abs` or `time.sleep`). Arguments and results are what MessagePack
carries, and come back as they went: None, bool, int (64 bits), float, str,
bytes, list, tuple and dict.
"""

import os
import sys

from . import _components
from ._errors import (
    BadArguments, BadModule, BadResult, Error, Initializer, MemoryLimit, OutOfFuel, PoolClosed,
    RemoteTraceback, TaskError, TaskTimeout, Terminated, TimeoutError, Trap, UnknownTask,
    WorkerLost,
)
from ._objects import (
    BoundedSemaphore, Event, JoinableQueue, Lock, Manager, Pipe, Queue, RLock, Semaphore,
    SyncManager,
)
from ._modules import Module, TaskHandle, load
from ._pool import AsyncResult, IMapIterator, Pool
from ._process import Process, active_children

__all__ = [
    "AsyncResult", "BadArguments", "BadModule", "BadResult", "BoundedSemaphore", "Error",
    "Event", "IMapIterator", "Initializer", "JoinableQueue", "Lock", "Manager", "MemoryLimit",
    "Module", "OutOfFuel", "Pipe", "Pool", "PoolClosed", "Process", "Queue", "RLock",
    "RemoteTraceback", "Semaphore", "SyncManager", "TaskError", "TaskHandle", "TaskTimeout",
    "Terminated", "TimeoutError", "Trap", "UnknownTask", "WorkerLost", "active_children",
    "cpu_count", "current_process", "get_context", "get_start_method", "load", "parent_process",
    "set_start_method",
]

__version__ = "0.1.0"


#: The start method a program set (`set_start_method`): accepted, and
#: answered back, but every task starts the same way, in a sandboxed worker.
_start_method = None


def set_start_method(method, force=False):
    """Accepted, as `multiprocessing.set_start_method`: ``"fork"``,
    ``"spawn"`` or ``"forkserver"``. Tasks run in sandboxed workers whatever
    it is; `RuntimeError` if set twice without `force`, as CPython's."""
    global _start_method
    if method not in (None, "fork", "spawn", "forkserver"):
        raise ValueError(f"cannot find context for {method!r}")
    if _start_method is not None and not force:
        raise RuntimeError("context has already been set")
    _start_method = method


def get_start_method(allow_none=False):
    """The start method set, or ``"spawn"`` (None with `allow_none`)."""
    if _start_method is None and allow_none:
        return None
    return _start_method or "spawn"


def get_context(method=None):
    """This module, as every context: `get_context("fork").Pool(...)` is a
    `Pool`."""
    if method not in (None, "fork", "spawn", "forkserver"):
        raise ValueError(f"cannot find context for {method!r}")
    import sys

    return sys.modules[__name__]


class _MainProcess:
    """The program's own process, as `current_process()` gives it."""

    name = "MainProcess"
    daemon = False

    @property
    def pid(self):
        return os.getpid()

    def __repr__(self):
        return "<_MainProcess name='MainProcess' parent=None started>"


_MAIN = _MainProcess()


def current_process():
    """The process running this code: on the host, the main process."""
    return _MAIN


def cpu_count():
    """The number of CPUs of this machine, as `multiprocessing.cpu_count`."""
    count = os.cpu_count()
    if count is None:
        raise NotImplementedError("cannot determine number of cpus")
    return count


def parent_process():
    """The parent of this process: None on the host, as for CPython's main
    process."""
    return None


def _importer():
    """The file of the code importing this package (past the import
    machinery), or None."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib")
        or frame.f_globals.get("__name__", "").startswith("wasmpool")
    ):
        frame = frame.f_back
    return None if frame is None else frame.f_code.co_filename


_components.prepare_main(_importer())
