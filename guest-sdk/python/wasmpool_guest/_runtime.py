"""The module's export: `describe` and `run` of the contract's `tasks`
interface, over the tasks `@task` registered. Imported only inside a
component (the build's entry module exports its `Tasks`)."""

import sys
import traceback

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outcomes
from wit_world.imports.types import ErrorKind, ParamInfo, TaskError, TaskInfo

from . import TaskError as Failure
from . import _registry, _streams, msgpack, objects
from ._registry import TASKS

#: The most traceback lines a failure's message carries (its last ones).
TRACEBACK_LINES = 40

#: The most characters of a failure's message.
MESSAGE_LIMIT = 8000

LAZY_IMPORT_HINT = (
    " (a module imported while a task runs is not in the component: import it at "
    "the top level of the task module, so that the build includes it)"
)


class Tasks(exports.Tasks):
    """The `tasks` export of the component."""

    def describe(self):
        """The registered tasks, by name, with their parameters."""
        return [
            TaskInfo(name, [ParamInfo(label, default) for label, default in TASKS[name].params])
            for name in sorted(TASKS)
        ]

    def run(self, task, first_index, args, ends):
        """Runs a batch of tasks of one kind, reporting each one's outcome as
        it finishes, whatever it raises."""
        definition = TASKS.get(task)
        start = 0
        for end in ends:
            if definition is None:
                outcome = _error(ErrorKind.UNKNOWN_TASK, f"this module has no task named `{task}`")
            elif not start <= end <= len(args):
                outcome = _error(
                    ErrorKind.BAD_ARGUMENTS, f"argument bounds {start}..{end} are outside the batch"
                )
            else:
                outcome = _run_one(definition, args[start:end])
            # What the task wrote goes out before its outcome, as its own.
            if not _streams.hold_nothing():
                _flush()
            outcomes.finish(outcome)
            start = end


def _error(kind, message):
    return Err(TaskError(kind, message))


def _run_one(definition, encoded):
    name = definition.name
    try:
        args = msgpack.unpackb(encoded)
    except msgpack.UnpackError as err:
        return _error(ErrorKind.BAD_ARGUMENTS, f"arguments of task `{name}`: {err}")
    if not isinstance(args, list):
        return _error(
            ErrorKind.BAD_ARGUMENTS, f"arguments of task `{name}`: expected an array of arguments"
        )
    if len(args) != len(definition.params):
        return _error(
            ErrorKind.BAD_ARGUMENTS,
            f"arguments of task `{name}`: the task takes {len(definition.params)} arguments, "
            f"{len(args)} were given",
        )
    try:
        result = definition.call(args)
    except Failure as err:
        return _error(ErrorKind.FAILED, _bounded(str(err)))
    except BaseException as err:  # noqa: BLE001 - sys.exit() too fails only its task
        return _error(ErrorKind.FAILED, _describe(err))
    try:
        return Ok(msgpack.packb(result, tuples=definition.tuples))
    except msgpack.PackError as err:
        return _error(ErrorKind.BAD_RESULT, f"the result does not encode as MessagePack: {err}")


def _describe(err):
    """The type and message of `err`, then the end of its traceback, bounded."""
    text = str(err)
    head = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if isinstance(err, ModuleNotFoundError):
        # Not one of a program's stand-ins (`_unavailable`), which say why.
        head += LAZY_IMPORT_HINT
    tb = err.__traceback__
    # Leave out the SDK's own frames that called the task.
    while tb is not None and tb.tb_frame.f_code.co_filename in _SDK_CALLERS:
        tb = tb.tb_next
    lines = "".join(traceback.format_tb(tb)).splitlines()
    if len(lines) > TRACEBACK_LINES:
        lines = ["  ..."] + lines[-TRACEBACK_LINES:]
    if not lines:
        return _bounded(head)
    return _bounded(head + "\nTraceback (most recent call last):\n" + "\n".join(lines))


def _bounded(message):
    if len(message) <= MESSAGE_LIMIT:
        return message
    half = MESSAGE_LIMIT // 2
    return message[:half] + "\n...\n" + message[-half:]


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream fails no task
            pass


#: The files of the SDK's frames between `run` and a task.
_SDK_CALLERS = {__file__, _registry.__file__}


#: The task through which the host package `wasmpool` calls any callable
#: of a program built whole, found as pickle finds it: by its module and
#: qualified name.
CALL = "__wasmpool_call__"

#: The host's process id, as the last call gave it: a worker's parent, to
#: `os.getppid()`.
_host_pid = 0


def export_functions(module):
    """Makes every function defined at the top level of `module` a task,
    under its own name (a program's own functions, as the host's `wasmpool`
    package runs them), those already marked `@task` staying as they are;
    and exports `CALL`, through which the host calls any callable by name."""
    import inspect
    import os

    from . import worker_pid
    from ._registry import TaskDef, task

    # As the program expects of a worker: its own process id (the sandbox's
    # CPython otherwise answers a constant), and its parent's, the host's.
    # `posix` too, which the host names `os.getpid` by (its `__module__`).
    import posix

    def host_pid():
        """The host's process id: this worker's parent, as the program sees it."""
        return _host_pid

    for system in (os, posix):
        system.getpid = worker_pid
        system.getppid = host_pid
    # Its host is Python's: what tasks put in shared objects keeps its
    # tuples, as the host's own items do.
    objects.keep_tuples()

    def call(callee, args, kwargs):
        return _callable(module, callee)(*args, **kwargs)

    params = [("callee", None), ("args", None), ("kwargs", None)]
    TASKS[CALL] = TaskDef(CALL, call, params, 3, [], tuples=True)

    for name, value in list(vars(module).items()):
        if (
            inspect.isfunction(value)
            and value.__module__ == module.__name__
            and not name.startswith("__")
            and name not in TASKS
        ):
            try:
                task(value)
            except (TypeError, ValueError):
                # A signature a task cannot have (*args, ...): not a task.
                pass


def _callable(program, callee):
    """What `callee` names: ``[module, qualname, host_pid]`` is a callable
    found as pickle finds it (``"__main__"`` is the program), and
    ``[module, qualname, host_pid, attributes]`` the `run` method of an
    instance of that class with those attributes (a `Process` subclass)."""
    import importlib

    global _host_pid
    if not (
        isinstance(callee, list)
        and len(callee) in (3, 4)
        and all(isinstance(part, str) for part in callee[:2])
        and isinstance(callee[2], int)
        and (len(callee) == 3 or isinstance(callee[3], dict))
    ):
        raise TypeError(f"not a callable's name: {callee!r}")
    module_name, qualname, _host_pid = callee[:3]
    target = program if module_name in ("__main__", program.__name__) else (
        importlib.import_module(module_name)
    )
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AttributeError(
                f"module `{module_name}` has no `{qualname}` in the sandbox"
            ) from None
    if len(callee) == 3:
        return target
    instance = target.__new__(target)
    instance.__dict__.update(callee[3])
    return instance.run


def check_tasks(module):
    """Fails the build if `module` registered no task."""
    if not TASKS:
        raise RuntimeError(
            f"module `{module}` has no task: mark functions with `@wasmpool_guest.task`"
        )
