"""`load`: a module built elsewhere (a `.wasm` component, written in Rust or
any language) or a `.py` file, as handles to its tasks: ``tasks =
wasmpool.load("tasks.wasm")``, then ``pool.map(tasks.square, ...)`` in a
``Pool(module=tasks)``, or ``Process(target=tasks.square)``."""

import os
from pathlib import Path

__all__ = ["Module", "TaskHandle", "load"]


class Module(os.PathLike):
    """A module whose tasks are named by string: each attribute is a handle
    to the task of that name (`TaskHandle`). It is a path, so that
    ``Pool(module=tasks)`` runs it."""

    def __init__(self, source):
        path = Path(source).resolve()
        if path.suffix not in (".wasm", ".py"):
            raise ValueError(f"{source}: a module is a .wasm component or a .py file")
        if not path.is_file():
            raise FileNotFoundError(f"no module at {path}")
        self.path = path

    def __fspath__(self):
        return str(self.path)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return TaskHandle(self, name)

    def __repr__(self):
        return f"<wasmpool.Module {self.path.name}>"


class TaskHandle:
    """The task `name` of `module`: what a pool or a process of that module
    runs, as the string `name` would."""

    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module = module
        self.name = name

    def __repr__(self):
        return f"<wasmpool task {self.name} of {self.module.path.name}>"


def load(source):
    """The module at `source` (a `.wasm` component or a `.py` file), whose
    attributes are handles to its tasks."""
    return Module(source)
