"""Write wasmpool task modules in Python: plain functions marked `@task`, run
by a pool of sandboxed worker processes.

::

    from wasmpool_guest import task

    @task
    def square(x):
        return x * x

    @task
    def greet(name, greeting="Hello"):
        return f"{greeting}, {name}!"

Build the module with ``python -m wasmpool_guest build tasks.py -o tasks.wasm``
and hand `tasks.wasm` to a pool (``wasmpool map tasks.wasm square``).

- Arguments and results are MessagePack values: None, bool, int, float, str,
  bytes, lists (tuples go as lists) and dicts, nested; shared objects
  (`wasmpool_guest.objects`) arrive as objects of their class.
- Callers may pass parameters by keyword, under their names; a parameter
  with a default takes it when a call leaves it out. Positional-only
  parameters (before ``/``) are positional-only for callers too; ``*args`` and
  ``**kwargs`` are not allowed.
- An exception fails the task (kind ``failed``) with its type, message and
  the end of its traceback; `TaskError` fails it with just its message.
  ``sys.exit()`` and ``KeyboardInterrupt`` fail the task, not the worker.
- Module state persists from task to task in one worker, as it does in a
  CPython pool worker, until the instance is renewed.
- Import every module at the top level of your module: the build runs your
  module once and keeps what it imported; a module first imported while a
  task runs is not in the component.
- Output of ``print`` is captured by the host and attributed to the task.
"""

from . import _bindings, msgpack
from ._registry import task
from .msgpack import ExtType
from .objects import (
    BoundedSemaphore, Closed, Connection, Dict, Event, JoinableQueue, List, Lock,
    ObjectError, Queue, Refused, RLock, Semaphore, TimedOut, Value,
)

__all__ = [
    "BoundedSemaphore", "Closed", "Connection", "Dict", "Event", "ExtType",
    "HostCallError", "JoinableQueue", "List", "Lock", "ObjectError", "Queue",
    "Refused", "RLock", "Semaphore", "TaskError", "TimedOut", "Value",
    "call_host", "task", "task_index", "worker_pid",
]

__version__ = "0.1.0"


class TaskError(Exception):
    """Raise it to fail the task with exactly its message (no type, no
    traceback): the `Err` of a Rust task."""


class HostCallError(Exception):
    """A call of a host function failed: no such function, arguments that
    do not decode, the function's own error, or a payload over the pool's
    limit. The message says which."""


def worker_pid():
    """The operating-system process id of the worker running this task."""
    _bindings.require()
    return _bindings.context.worker_pid()


def task_index():
    """The index of this task: its position in the input of a map, imap or
    starmap, or 0 for an apply."""
    _bindings.require()
    return _bindings.context.task_index()


def call_host(name, *args):
    """Calls the host function `name` (one the pool offers,
    `PoolBuilder::host_fn`) with positional `args`, and waits for its result.
    The rest of the pool goes on meanwhile; the task's time limit still
    holds. Raises `HostCallError` if the call fails."""
    _bindings.require()
    try:
        encoded = msgpack.packb(list(args))
    except msgpack.PackError as err:
        raise HostCallError(f"the host call's arguments: {err}") from None
    try:
        reply = _bindings.host.call(name, encoded)
    except _bindings.Err as err:
        raise HostCallError(err.value) from None
    return msgpack.unpackb(reply)
