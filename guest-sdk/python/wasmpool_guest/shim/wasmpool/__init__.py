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
    "BoundedSemaphore", "Connection", "Event", "JoinableQueue", "Lock", "Manager", "Pool",
    "Process", "Queue", "RLock", "Semaphore", "TimeoutError", "Value", "cpu_count",
    "current_process", "get_context", "get_start_method", "set_start_method",
]

TimeoutError = TimeoutError  # noqa: A001 - the same name as the host package's
Empty = queue.Empty
Full = queue.Full


class _Refused:
    """What cannot be started inside a task."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            f"a task cannot start a {type(self).__name__}: tasks run in a sandbox with no "
            "processes of its own; start it on the host, outside the task's function"
        )


class Pool(_Refused):
    """Refused inside a task."""


class Process(_Refused):
    """Refused inside a task."""


class Manager(_Refused):
    """Refused inside a task: managed objects are made on the host and handed
    to tasks as arguments."""


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
