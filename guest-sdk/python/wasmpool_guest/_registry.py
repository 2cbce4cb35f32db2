"""The `@task` decorator and the tasks it registered."""

import inspect

from . import msgpack

#: Registered tasks by name, in registration order.
TASKS = {}


class TaskDef:
    """A task: its function, and how a positional argument array calls it."""

    __slots__ = ("name", "function", "params", "positional", "keyword_only", "tuples")

    def __init__(self, name, function, params, positional, keyword_only, tuples=False):
        self.name = name
        self.function = function
        #: (name or None, MessagePack default or None) per parameter.
        self.params = params
        #: How many leading arguments are passed by position.
        self.positional = positional
        #: The names of the rest, passed by keyword.
        self.keyword_only = keyword_only
        #: Whether its result keeps its tuples (see `msgpack.packb`).
        self.tuples = tuples

    def call(self, args):
        """Calls the function with the task's positional argument list."""
        if not self.keyword_only:
            return self.function(*args)
        kwargs = dict(zip(self.keyword_only, args[self.positional:]))
        return self.function(*args[:self.positional], **kwargs)


def task(function=None, *, name=None):
    """Makes `function` a task of this module, under its own name or `name`.

    Use as ``@task`` or ``@task(name="other")``. The function itself is
    returned unchanged, so it can still be called (and tested) directly.
    Raises `TypeError` for a signature a task cannot have (``*args``,
    ``**kwargs``, a default with no MessagePack form, a parameter without a
    default after one with) and `ValueError` for a name taken twice.
    """
    if function is None:
        return lambda f: task(f, name=name)
    task_name = name or function.__name__
    where = f"task `{task_name}`"
    params = []
    positional = 0
    keyword_only = []
    seen_default = False
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"{where}: parameter `{param.name}`: a task's parameters are fixed; "
                "*args and **kwargs are not supported"
            )
        default = None
        if param.default is not param.empty:
            try:
                default = msgpack.packb(param.default)
            except msgpack.PackError as err:
                raise TypeError(
                    f"{where}: the default of parameter `{param.name}` does not encode: {err}"
                ) from None
            seen_default = True
        elif seen_default:
            raise TypeError(
                f"{where}: parameter `{param.name}` has no default but follows one that has"
            )
        if param.kind == param.KEYWORD_ONLY:
            keyword_only.append(param.name)
        else:
            positional += 1
        label = None if param.kind == param.POSITIONAL_ONLY else param.name
        params.append((label, default))
    if task_name in TASKS:
        raise ValueError(f"two tasks are named `{task_name}`")
    TASKS[task_name] = TaskDef(task_name, function, params, positional, keyword_only)
    return function
