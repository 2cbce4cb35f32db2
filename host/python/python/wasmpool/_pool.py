"""`Pool` and `AsyncResult`, with `multiprocessing.Pool`'s names and
semantics, over the native pool (`wasmpool._native`)."""

import atexit
import inspect
import itertools
import os
import queue
import sys
import threading
import time
import weakref
from pathlib import Path

from . import _components, _errors, _native
from ._modules import TaskHandle

__all__ = ["AsyncResult", "IMapIterator", "Pool"]

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


def _preopens(dirs):
    """`dirs` as the native pool takes them: (guest path, host path,
    read-only) each; `ValueError` naming one that is not a directory."""
    preopens = []
    for guest, host in (dirs or {}).items():
        mode = "ro"
        if isinstance(host, tuple):
            host, mode = host
        if mode not in ("ro", "rw"):
            raise ValueError(f"dirs[{guest!r}]: the mode is \"ro\" or \"rw\", not {mode!r}")
        path = Path(host).resolve()
        if not path.is_dir():
            raise ValueError(f"dirs[{guest!r}]: {path} is not a directory")
        if not str(guest).startswith("/"):
            raise ValueError(f"dirs: {guest!r} is not an absolute path for the task to see")
        preopens.append((str(guest), str(path), mode == "ro"))
    return preopens


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
    again). `fresh_instance=True` runs every task on a fresh instance of the
    component, so that no task sees what an earlier one left in its globals
    or memory (the initializer then runs before each task). `dirs` maps
    where a task sees a host directory to the host's path
    (``{"/data": "input"}``), read-only, or to ``(path, "rw")`` for one it
    may write; tasks see no other file. `nats` (a server's URL,
    ``"nats://host:4222"``) runs the tasks on the agents of that NATS server
    (``wasmpool agent --nats URL`` on each machine) rather than on this one;
    without it, the server the environment variable ``WASMPOOL_NATS`` names,
    if any, so that a program runs on agents unchanged (its processes too,
    and its shared objects are served from here). Leaving a ``with`` block
    terminates the pool, as CPython's does.
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
        fresh_instance=False,
        dirs=None,
        nats=None,
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
            "fresh_instance": bool(fresh_instance),
            "nats": nats,
            "dirs": _preopens(dirs),
            "label": source.name,
        }
        self._native = _native.Pool(str(component), str(cache), settings)
        self._closed = False
        # `imap`s still submitting their input, which keep a closed pool open.
        self._feeders = 0
        self._feeding = threading.Condition()
        _LIVE.add(self)

    def _task(self, func):
        """What runs `func`: a task of the component by its name (a string),
        or a callable found as pickle finds it, by its module and qualified
        name — ``[module, qualname, host_pid]`` — which the component
        imports and calls."""
        if isinstance(func, (str, list)):
            return func
        if isinstance(func, TaskHandle):
            if func.module.path != self._source:
                raise TypeError(
                    f"{func!r} is not a task of {self._source.name}, which this pool runs"
                )
            return func.name
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
        """An iterator of `func` of each item, in order: the items are
        submitted as they are read, by a thread of the pool, while the
        results are taken; `next(timeout)` waits at most `timeout` seconds."""
        return IMapIterator(self, func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """As `imap`, each chunk's results as soon as the chunk is done."""
        return IMapIterator(self, func, iterable, chunksize, ordered=False)

    def close(self):
        """Takes no more tasks; the workers exit once those submitted (and
        the rest of an `imap`'s input) are done."""
        with self._feeding:
            self._closed = True
            if self._feeders:
                return
        self._native.close()

    def _fed(self):
        """An `imap`'s input is all submitted: a pool closed meanwhile now
        closes."""
        with self._feeding:
            self._feeders -= 1
            close = self._closed and not self._feeders
            self._feeding.notify_all()
        if close:
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
        with self._feeding:
            while self._feeders:
                self._feeding.wait(0.05)
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



class IMapIterator:
    """The results of `Pool.imap` or `Pool.imap_unordered`, as they come.

    A thread of the pool reads the input and submits it a chunk at a time,
    as CPython's pool does, while the results are taken. A chunk that fails
    raises its exception where its results would have come; iterating goes
    on after it."""

    #: What the feeder puts after the last chunk.
    _END = object()

    def __init__(self, pool, func, iterable, chunksize, ordered):
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        pool._check_open()
        task = pool._task(func)
        self._ordered = ordered
        self._submitted = queue.Queue()
        self._pending = []
        self._results = []
        self._ended = False
        with pool._feeding:
            pool._feeders += 1
        feeder = threading.Thread(
            target=self._feed, args=(pool, task, iter(iterable), chunksize),
            name="wasmpool-imap-feeder", daemon=True,
        )
        feeder.start()

    def _feed(self, pool, task, items, chunksize):
        try:
            while True:
                try:
                    chunk = list(itertools.islice(items, chunksize))
                    if not chunk:
                        return
                    submitted = pool._native.map_async(task, chunk, chunksize, False)
                except BaseException as err:  # noqa: BLE001 - raised where it belongs
                    self._submitted.put(_Raised(err))
                    return
                self._submitted.put(AsyncResult(submitted))
        finally:
            self._submitted.put(self._END)
            pool._fed()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        """The next result, waiting at most `timeout` seconds
        (`wasmpool.TimeoutError`); `StopIteration` after the last."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._results:
            chunk = self._ready_chunk(deadline)
            if chunk is None:
                raise StopIteration
            self._results = list(chunk.get(0))
            self._results.reverse()
        return self._results.pop()

    def _ready_chunk(self, deadline):
        """A chunk whose results are in (the next in order, if ordered), or
        None once every chunk was taken."""
        while True:
            self._take_submitted(block=not self._pending, deadline=deadline)
            if not self._pending:
                return None
            candidates = self._pending[:1] if self._ordered else self._pending
            for chunk in candidates:
                if chunk.ready():
                    self._pending.remove(chunk)
                    return chunk
            self._pending[0].wait(_slice(deadline))

    def _take_submitted(self, block, deadline):
        """Moves what the feeder submitted to the pending chunks, waiting
        for one if `block` (and the input is not over)."""
        while not self._ended:
            try:
                if block:
                    chunk = self._submitted.get(timeout=_slice(deadline))
                else:
                    chunk = self._submitted.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return
            if chunk is self._END:
                self._ended = True
                return
            self._pending.append(chunk)
            block = False


def _slice(deadline):
    """The next slice of a wait until `deadline` (None: without end), short
    enough to see the input end or a chunk finish; `TimeoutError` once the
    deadline has passed."""
    if deadline is None:
        return 0.05
    left = deadline - time.monotonic()
    if left <= 0:
        raise _errors.TimeoutError("the next result was not ready in time")
    return min(left, 0.05)


class _Raised:
    """A failure of the feeder (an input item a task cannot take, an input
    that raises), raised where its chunk's results would have come."""

    def __init__(self, error):
        self.error = error

    def ready(self):
        return True

    def wait(self, timeout=None):
        pass

    def get(self, timeout=None):
        raise self.error
