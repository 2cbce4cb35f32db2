"""`Pool` and `AsyncResult`, with `multiprocessing.Pool`'s names and
semantics, over the native pool (`wasmpool._native`)."""

import atexit
import inspect
import os
import sys
import weakref
from pathlib import Path

from . import _components, _native

__all__ = ["AsyncResult", "Pool"]

#: Pools not yet closed and joined: terminated at interpreter exit, so that
#: a pool dropped without `close()` never holds the exit up.
_LIVE = weakref.WeakSet()


@atexit.register
def _terminate_live_pools():
    for pool in list(_LIVE):
        pool.terminate()
    # From here on, the pools' threads call no Python (their output goes to
    # the process's own streams): the interpreter is about to end them.
    _native.shutdown()


def _parse_size(size):
    """Bytes of `size`: an int, or a string such as ``"64M"`` or ``"1G"``."""
    if size is None or isinstance(size, int):
        return size
    text = str(size).strip().upper().removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _location(func, source):
    """The module and qualified name that find `func`, as pickle finds a
    function; `TypeError` naming it if they do not (a lambda, a nested
    function, a bound method of an instance, a name that finds something
    else)."""
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if inspect.ismethod(func) and not isinstance(func.__self__, type):
        raise TypeError(
            f"cannot run the bound method {qualname} as a task: as in multiprocessing, a "
            "task is found by its module and name; use a function, or a static or class "
            "method"
        )
    if qualname is None or "<lambda>" in qualname or "<locals>" in qualname:
        kind = "a lambda" if qualname and "<lambda>" in qualname else "a nested function"
        raise TypeError(
            f"cannot run {qualname or func!r} as a task: as in multiprocessing, a task "
            f"must be found by its module and name, and {kind} cannot be"
        )
    module = getattr(func, "__module__", None)
    if module is None:
        # A method of a built-in type (str.upper): its type's module.
        module = getattr(getattr(func, "__objclass__", None), "__module__", None)
    found = sys.modules.get(module) if module else None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is None or (found is not func and found != func):
        raise TypeError(
            f"cannot run {qualname} as a task: it is not found as `{module}.{qualname}`"
        )
    if module == "__main__" and source != _components.main_source():
        raise TypeError(
            f"cannot run {qualname} as a task: it is defined in the program's script, and "
            f"this pool runs {source.name}"
        )
    return module, qualname


class Pool:
    """A pool of sandboxed worker processes, as `multiprocessing.Pool`: each
    task runs in a WebAssembly sandbox in a hardened worker process.

    Tasks are the program's own top-level functions: the pool builds the
    program's file (the ``__main__`` script) into a component on first use,
    and runs the function named there. ``module=`` names another source
    instead: a ``.py`` file (built the same way) or a ``.wasm`` component,
    whose tasks are then also named by string (``pool.map("square", ...)``).

    `initializer(*initargs)` runs as each worker starts; `maxtasksperchild`
    replaces a worker after that many tasks. Keyword-only limits: `timeout`
    (seconds a task may run), `memory` (bytes, or a size such as ``"64M"``),
    `fuel`, and `retries` (how many times a task whose worker died runs
    again). Leaving a ``with`` block terminates the pool, as CPython's does.
    """

    def __init__(
        self,
        processes=None,
        initializer=None,
        initargs=(),
        maxtasksperchild=None,
        *,
        module=None,
        timeout=None,
        memory=None,
        fuel=None,
        retries=None,
    ):
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        source = Path(module).resolve() if module is not None else _components.main_source()
        if source is None:
            raise ValueError(
                "no program file to build tasks from (an interactive session?): give "
                "module= a .py or .wasm file"
            )
        self._source = source
        component = _components.component_of(source)
        cache = _components.cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        settings = {
            "processes": processes,
            "initializer": self._task(initializer) if initializer is not None else None,
            "initargs": list(initargs),
            "maxtasksperchild": maxtasksperchild,
            "timeout": timeout,
            "memory": _parse_size(memory),
            "fuel": fuel,
            "retries": retries,
        }
        self._native = _native.Pool(str(component), str(cache), settings)
        self._closed = False
        _LIVE.add(self)

    def _task(self, func):
        """What runs `func`: a task of the component by its name (a string),
        or a callable found as pickle finds it, by its module and qualified
        name — ``[module, qualname, host_pid]`` — which the component
        imports and calls."""
        if isinstance(func, (str, list)):
            return func
        if not callable(func):
            raise TypeError(f"{func!r} is not callable")
        if self._source.suffix == ".wasm":
            raise TypeError(
                f"cannot run {func!r} in {self._source.name}: a .wasm module's tasks are "
                "named by string (pool.map(\"square\", ...))"
            )
        return [*_location(func, self._source), os.getpid()]

    def _check_open(self):
        if self._closed:
            raise ValueError("Pool not running")

    def apply(self, func, args=(), kwds=None):
        """Runs `func(*args, **kwds)` in a worker and returns its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        """Submits `func(*args, **kwds)`; returns its `AsyncResult` at once."""
        self._check_open()
        native = self._native.apply_async(
            self._task(func), tuple(args), dict(kwds or {}), callback, error_callback
        )
        return AsyncResult(native)

    def map(self, func, iterable, chunksize=None):
        """`[func(x) for x in iterable]`, run in the workers, in order."""
        return self.map_async(func, iterable, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """Submits `map`; returns the `AsyncResult` of the list at once."""
        self._check_open()
        native = self._native.map_async(
            self._task(func), iterable, chunksize, False, callback, error_callback
        )
        return AsyncResult(native)

    def starmap(self, func, iterable, chunksize=None):
        """`[func(*args) for args in iterable]`, run in the workers."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """Submits `starmap`; returns the `AsyncResult` of the list at once."""
        self._check_open()
        native = self._native.map_async(
            self._task(func), iterable, chunksize, True, callback, error_callback
        )
        return AsyncResult(native)

    def imap(self, func, iterable, chunksize=1):
        """`func` of each item, yielded in order as they come."""
        for chunk in self._chunks(func, iterable, chunksize):
            yield from chunk.get()

    def imap_unordered(self, func, iterable, chunksize=1):
        """`func` of each item, yielded as each chunk finishes."""
        pending = list(self._chunks(func, iterable, chunksize))
        while pending:
            pending[0].wait(0.05)
            done = [chunk for chunk in pending if chunk.ready()]
            for chunk in done:
                pending.remove(chunk)
                yield from chunk.get()

    def _chunks(self, func, iterable, chunksize):
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        task = self._task(func)
        items = list(iterable)
        return [
            self.map_async(task, items[at:at + chunksize], chunksize)
            for at in range(0, len(items), chunksize)
        ]

    def close(self):
        """Takes no more tasks; the workers exit once those submitted are done."""
        self._closed = True
        self._native.close()

    def terminate(self):
        """Stops the workers now; tasks not done fail."""
        self._closed = True
        self._native.terminate()
        _LIVE.discard(self)

    def join(self):
        """Waits for the workers to exit; call `close` or `terminate` first."""
        if not self._closed:
            raise ValueError("Pool is still running")
        self._native.join()
        _LIVE.discard(self)

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __repr__(self):
        state = "CLOSED" if self._closed else "RUN"
        return f"<wasmpool.Pool state={state} pool_size={self._native.processes()}>"


class AsyncResult:
    """The result of `apply_async`, `map_async` or `starmap_async`, to come."""

    def __init__(self, native):
        self._native = native

    def get(self, timeout=None):
        """The result; the task's exception if it failed; `TimeoutError` if
        not ready within `timeout` seconds."""
        return self._native.get(timeout)

    def wait(self, timeout=None):
        """Waits until the result is ready, at most `timeout` seconds."""
        self._native.wait(timeout)

    def ready(self):
        """Whether the result is ready."""
        return self._native.ready()

    def successful(self):
        """Whether the task succeeded; `ValueError` if it is not ready."""
        return self._native.successful()

