"""The exceptions of wasmpool, and how a task's failure becomes one.

A task that raises a built-in exception (`ZeroDivisionError`, `KeyError`,
...) raises that same type on the host, its message kept and the guest's
traceback attached as its ``__cause__`` (a `RemoteTraceback`, as
`multiprocessing` does); another type raises `TaskError`, naming it. What
the sandbox decides (a time limit, memory, fuel, a trap, a lost worker, ...)
raises a subclass of `Error`.
"""

import builtins

__all__ = [
    "BadArguments", "BadModule", "BadResult", "Error", "Initializer", "MemoryLimit",
    "OutOfFuel", "PoolClosed", "RemoteTraceback", "TaskError", "TaskTimeout", "Terminated",
    "TimeoutError", "Trap", "UnknownTask", "WorkerLost",
]


class Error(Exception):
    """A task's outcome decided by the sandbox, or a pool that cannot do what
    it was asked. `kind` is spelled as the command's records spell it
    (``"timeout"``, ``"memory-limit"``, ...); `task_index` is the task's
    place in its call (None if not known)."""

    #: The kind of every instance of the class (None: as given).
    KIND = None

    def __init__(self, message, kind=None, task_index=None):
        super().__init__(message)
        self.message = message
        self.kind = kind or self.KIND
        self.task_index = task_index


class TaskError(Error):
    """A task raised an exception of a type that is not built in (its name
    is `type_name`, its traceback the ``__cause__``), or failed with just a
    message."""

    KIND = "failed"

    def __init__(self, message, kind=None, task_index=None, type_name=None):
        super().__init__(message, kind, task_index)
        self.type_name = type_name


class TaskTimeout(Error):
    """The task ran past the pool's time limit (``timeout=``)."""

    KIND = "timeout"


class MemoryLimit(Error):
    """The task needed more memory than the pool's limit (``memory=``)."""

    KIND = "memory-limit"


class OutOfFuel(Error):
    """The task burnt all the fuel it was given (``fuel=``)."""

    KIND = "out-of-fuel"


class Trap(Error):
    """The task's WebAssembly trapped (unreachable, out of bounds, ...)."""

    KIND = "trap"


class WorkerLost(Error):
    """The worker running the task died (killed, crashed) too often."""

    KIND = "worker-lost"


class BadArguments(Error):
    """The arguments do not fit the task (count, names, types)."""

    KIND = "bad-arguments"


class BadResult(Error):
    """The task's result cannot be carried back."""

    KIND = "bad-result"


class UnknownTask(Error):
    """The module has no task of that name."""

    KIND = "unknown-task"


class Initializer(Error):
    """The pool's initializer failed."""

    KIND = "initializer"


class Terminated(Error):
    """The pool was terminated before the task ran."""

    KIND = "terminated"


class PoolClosed(Error):
    """The pool is closed: it takes no more tasks."""

    KIND = "pool-closed"


class BadModule(Error):
    """The module is not one a pool can run."""

    KIND = "bad-module"


class TimeoutError(builtins.TimeoutError):  # noqa: A001 - multiprocessing's name
    """`AsyncResult.get(timeout)` ran out of time: the task goes on (not to be
    confused with `TaskTimeout`, a task stopped at its limit)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a task, as the worker saw it:
    the ``__cause__`` of the exception raised on the host."""

    def __init__(self, traceback):
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self):
        return self.traceback


_BY_KIND = {
    cls.KIND: cls
    for cls in (
        TaskError, TaskTimeout, MemoryLimit, OutOfFuel, Trap, WorkerLost, BadArguments,
        BadResult, UnknownTask, Initializer, Terminated, PoolClosed, BadModule,
    )
}

_TRACEBACK = "\nTraceback (most recent call last):\n"


def from_native(kind, message, task_index=None):
    """The exception of a failure of kind `kind` with `message` (as the
    native module reports it)."""
    if kind == "failed":
        return _failed(message, task_index)
    cls = _BY_KIND.get(kind, Error)
    return cls(message, kind, task_index)


def _failed(message, task_index):
    """A task's own exception: `Type: text`, then its traceback."""
    head, _, traceback = message.partition(_TRACEBACK)
    type_name, colon, text = head.partition(": ")
    if not colon and not type_name.isidentifier():
        return TaskError(message, "failed", task_index)
    if not colon:
        text = ""
    cls = getattr(builtins, type_name, None) if type_name.isidentifier() else None
    exception = None
    if isinstance(cls, type) and issubclass(cls, Exception) and cls is not Exception:
        try:
            exception = cls(text) if text else cls()
        except Exception:  # noqa: BLE001 - a type that takes other arguments
            exception = None
    if exception is None:
        exception = TaskError(head, "failed", task_index, type_name=type_name)
    else:
        exception.task_index = task_index
    if traceback:
        exception.__cause__ = RemoteTraceback("Traceback (most recent call last):\n" + traceback)
    return exception
