"""The `wasmpool` a program sees inside its own component, where its tasks
run: the guest side of the host package of the same name.

A program written for the host (``import wasmpool as multiprocessing``) is
built whole into the component that runs its functions; there, its
``import wasmpool`` finds this module. It has the names of the host's
package: the shared objects a task is handed work as in any task module;
`current_process` and `cpu_count` answer for the worker; starting a `Pool`
or a `Process` inside a task raises, naming why.
"""

import os
import queue

from wasmpool_guest import worker_pid
from wasmpool_guest.objects import (
    BoundedSemaphore, Connection, Event, JoinableQueue, Lock, Queue, RLock, Semaphore, Value,
)

__all__ = [
    "IMapIterator", "Module", "TaskHandle", "load", "AsyncResult", "BadArguments", "BadModule", "BadResult", "BoundedSemaphore", "Connection",
    "Error", "Event", "Initializer", "JoinableQueue", "Lock", "Manager", "MemoryLimit",
    "OutOfFuel", "Pipe", "Pool", "PoolClosed", "Process", "Queue", "RLock", "RemoteTraceback",
    "Semaphore", "SyncManager", "TaskError", "TaskTimeout", "Terminated", "TimeoutError", "Trap",
    "UnknownTask", "Value", "WorkerLost", "active_children", "cpu_count", "current_process",
    "get_context", "get_start_method", "parent_process", "set_start_method",
]

TimeoutError = TimeoutError  # noqa: A001 - the same name as the host package's
Empty = queue.Empty
Full = queue.Full


class Error(Exception):
    """The host's outcomes of a task: a task never gets one, but may name
    them, as the program's host side does."""


class TaskError(Error):
    """As the host's."""


class TaskTimeout(Error):
    """As the host's."""


class MemoryLimit(Error):
    """As the host's."""


class OutOfFuel(Error):
    """As the host's."""


class Trap(Error):
    """As the host's."""


class WorkerLost(Error):
    """As the host's."""


class BadArguments(Error):
    """As the host's."""


class BadResult(Error):
    """As the host's."""


class UnknownTask(Error):
    """As the host's."""


class Initializer(Error):
    """As the host's."""


class Terminated(Error):
    """As the host's."""


class PoolClosed(Error):
    """As the host's."""


class BadModule(Error):
    """As the host's."""


class RemoteTraceback(Exception):
    """As the host's."""


class _Refused:
    """What cannot be started inside a task."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            f"a task cannot start a {type(self).__name__}: tasks run in a sandbox with no "
            "processes of its own; start it on the host, outside the task's function"
        )


class Pool(_Refused):
    """Refused inside a task."""


class AsyncResult(_Refused):
    """Refused inside a task: only a pool makes one."""


class IMapIterator(_Refused):
    """Refused inside a task: only a pool makes one."""


class Module(_Refused):
    """Refused inside a task: modules are loaded on the host."""


class TaskHandle(_Refused):
    """Refused inside a task: modules are loaded on the host."""


def load(source):
    """Refused inside a task: modules are loaded on the host."""
    return Module(source)


class Process(_Refused):
    """Starting one is refused inside a task. A subclass's instance started
    on the host runs here: made without `__init__`, with the attributes it
    had there (its `name` and `daemon` among them), and its `run()` called."""

    name = "Process"
    daemon = False

    @property
    def pid(self):
        """The worker process running it."""
        return worker_pid()

    def run(self):
        """Nothing, unless a subclass says."""


class SyncManager(_Refused):
    """Refused inside a task: managed objects are made on the host and handed
    to tasks as arguments."""


def Manager():  # noqa: N802 - the host package's name
    """Refused inside a task."""
    return SyncManager()


def Pipe(duplex=True):  # noqa: N802 - the host package's name
    """Refused inside a task: a pipe is made on the host, and its ends handed
    to tasks as arguments."""
    raise RuntimeError(
        "a task cannot make a Pipe: make it on the host and hand its ends to the tasks "
        "as arguments"
    )


def active_children():
    """None: a task starts no process."""
    return []


def parent_process():
    """None: the host's process is not a `Process` a task can use."""
    return None


class _Worker:
    """The process running this task, as `current_process()` gives it."""

    @property
    def pid(self):
        return worker_pid()

    @property
    def name(self):
        return f"SandboxWorker-{worker_pid()}"

    daemon = True


def current_process():
    """The worker process running this task."""
    return _Worker()


def cpu_count():
    """How many CPUs the host has, as far as the sandbox tells (1 if not)."""
    return os.cpu_count() or 1


def set_start_method(method, force=False):
    """Accepted and ignored: tasks always run in sandboxed workers."""


def get_start_method(allow_none=False):
    """``"sandbox"``: how every task starts."""
    return "sandbox"


def get_context(method=None):
    """This module: it is the only context."""
    import sys

    return sys.modules[__name__]
