"""`Process`, as `multiprocessing.Process`: one call (its `target`, or the
`run` of a subclass, with the instance's attributes) in a sandboxed worker
process of its own, built from the file that defines it."""

import atexit
import inspect
import itertools
import os
import sys
from pathlib import Path

from . import _components, _errors, _native
from ._modules import TaskHandle
from ._pool import _location

__all__ = ["Process", "active_children"]

#: Processes started and not yet seen to end: kept alive (a process is not
#: stopped when its object is dropped), joined or terminated at exit.
_children = set()

_numbers = itertools.count(1)


@atexit.register
def _end_children():
    """At exit, as CPython: daemonic processes are terminated, the others
    joined."""
    for child in list(_children):
        if child.daemon:
            child.terminate()
    for child in list(_children):
        child.join()


def active_children():
    """The processes started and still running."""
    return [child for child in list(_children) if child.is_alive()]


class Process:
    """A call run in a sandboxed worker process of its own, as
    `multiprocessing.Process`: `target(*args, **kwargs)`, or a subclass's
    `run()` (the instance's attributes travel with it; they must be values
    or shared objects a task can take).

    `start()` returns once the process runs; `join(timeout)` waits for its
    end; `exitcode` is CPython's (0, the `sys.exit` code, 1 for an
    exception, -N for signal N). What the call prints reaches this
    program's `sys.stdout` and `sys.stderr`; an exception it raises is
    printed to `sys.stderr`, as CPython's child prints it. With the
    environment variable ``WASMPOOL_NATS`` (a NATS server's URL), it runs
    on one of that server's agents instead: `pid` is its worker's there."""

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        if group is not None:
            raise ValueError("group argument must be None for now")
        self._wasmpool_target = target
        self._wasmpool_args = tuple(args)
        self._wasmpool_kwargs = dict(kwargs or {})
        self._wasmpool_name = name or f"Process-{next(_numbers)}"
        self._wasmpool_daemon = bool(daemon)
        self._wasmpool_native = None
        self._wasmpool_reported = False

    @property
    def name(self):
        """The process's name."""
        return self._wasmpool_name

    @name.setter
    def name(self, name):
        self._wasmpool_name = str(name)

    @property
    def daemon(self):
        """Whether it is daemonic: terminated at the program's exit rather
        than waited for."""
        return self._wasmpool_daemon

    @daemon.setter
    def daemon(self, daemonic):
        if self._wasmpool_native is not None:
            raise AssertionError("process has already started")
        self._wasmpool_daemon = bool(daemonic)

    def run(self):
        """The call, run here (as CPython's `run()` called directly);
        `start()` runs it in a worker process."""
        if self._wasmpool_target is not None:
            self._wasmpool_target(*self._wasmpool_args, **self._wasmpool_kwargs)

    def _callee(self):
        """What the worker calls, and the file it is built from."""
        if type(self).run is not Process.run:
            cls = type(self)
            source = _defining_file(cls)
            module, qualname = _location(cls, source)
            attributes = {
                key: value for key, value in vars(self).items() if not key.startswith("_wasmpool_")
            }
            attributes.update(name=self.name, daemon=self.daemon)
            return [module, qualname, os.getpid(), attributes], (), {}, source
        target = self._wasmpool_target
        if isinstance(target, TaskHandle):
            return target.name, self._wasmpool_args, self._wasmpool_kwargs, target.module.path
        if target is None:
            # Nothing to run: a call that does nothing, so that the process
            # starts and ends (exit code 0) as CPython's does.
            return ["builtins", "len", os.getpid()], ((),), {}, _components.main_source()
        source = _defining_file(target)
        module, qualname = _location(target, source)
        return [module, qualname, os.getpid()], self._wasmpool_args, self._wasmpool_kwargs, source

    def start(self):
        """Starts the process; returns once it runs."""
        if self._wasmpool_native is not None:
            raise AssertionError("cannot start a process twice")
        callee, args, kwargs, source = self._callee()
        if source is None:
            raise ValueError(
                "no program file to build the process's call from (an interactive session?)"
            )
        component = _components.component_of(source)
        cache = _components.cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        self._wasmpool_native = _native.Process(
            str(component), str(cache), callee, tuple(args), dict(kwargs), self.name, self.daemon,
            source.name,
        )
        _children.add(self)

    def _started(self, what):
        if self._wasmpool_native is None:
            raise AssertionError(f"can only {what} a started process")
        return self._wasmpool_native

    def join(self, timeout=None):
        """Waits until the process ends, at most `timeout` seconds."""
        if self._started("join").join(timeout):
            self._ended()

    def is_alive(self):
        """Whether the process runs."""
        if self._wasmpool_native is None:
            return False
        alive = self._wasmpool_native.is_alive()
        if not alive:
            self._ended()
        return alive

    def terminate(self):
        """Stops the process with SIGTERM."""
        self._started("terminate").terminate()

    def kill(self):
        """Stops the process with SIGKILL."""
        self._started("kill").kill()

    def close(self):
        """Releases the process object; `ValueError` if it still runs."""
        if self._wasmpool_native is not None and self._wasmpool_native.is_alive():
            raise ValueError("Cannot close a process while it is still running")

    @property
    def pid(self):
        """The worker process's pid (None before `start`)."""
        native = self._wasmpool_native
        return None if native is None else native.pid()

    ident = pid

    @property
    def exitcode(self):
        """None while it runs; then 0, the `sys.exit` code, 1 if its call
        raised, or -N if signal N ended it."""
        native = self._wasmpool_native
        code = None if native is None else native.exitcode()
        if code == 1:
            exit_code = _exit_code(native.outcome())
            if exit_code is not None:
                return exit_code
        return code

    def _ended(self):
        """The process ended: what its call raised is printed once, as
        CPython's child prints it."""
        _children.discard(self)
        if self._wasmpool_reported:
            return
        self._wasmpool_reported = True
        outcome = self._wasmpool_native.outcome()
        if outcome is None or outcome[0]:
            return
        error = outcome[1]
        said = _exit_argument(error)
        if said is not None:
            if said and not _is_int(said):
                print(said, file=sys.stderr, flush=True)
            return
        if isinstance(error, _errors.WorkerLost):
            return
        cause = error.__cause__
        trace = str(cause) if cause is not None else ""
        if isinstance(error, _errors.TaskError):
            last = error.message.partition("\n")[0]
        else:
            last = f"{type(error).__name__}: {error}"
        print(f"Process {self.name}:\n{trace}".rstrip(), file=sys.stderr)
        print(last, file=sys.stderr, flush=True)

    def __repr__(self):
        native = self._wasmpool_native
        if native is None:
            state = "initial"
        elif native.is_alive():
            state = "started"
        else:
            state = f"stopped exitcode={self.exitcode}"
        daemon = " daemon" if self.daemon else ""
        return f"<{type(self).__name__} name={self.name!r} {state}{daemon}>"


def _defining_file(obj):
    """The file that defines `obj`; for a built-in, which has none, the
    program's script, whose component has the standard library."""
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except TypeError:
        return _components.main_source()
    return Path(path).resolve()


def _exit_argument(error):
    """What the call gave `sys.exit`, as text ("" for nothing), if `error`
    is its `SystemExit`; else None."""
    if not isinstance(error, _errors.TaskError) or error.type_name != "SystemExit":
        return None
    return error.message.partition(": ")[2].partition("\n")[0]


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def _exit_code(outcome):
    """The code of a call that ended with `sys.exit`, else None."""
    if outcome is None or outcome[0]:
        return None
    text = _exit_argument(outcome[1])
    if text is None:
        return None
    if not text or text == "None":
        return 0
    return int(text) if _is_int(text) else 1
