"""A program's definitions without its work: the module a program built
whole becomes inside its component.

A program written for the host package `wasmpool` (``import wasmpool as
multiprocessing``) runs on the host, once; its component only needs what
its tasks can reach. Programs written for the fork start method start their
pool at the top level, with no ``if __name__ == '__main__':`` guard, so
importing the program inside the component would run that work there, at
build time. Instead, the build's entry module calls `load` inside the
component (componentize-py runs it once and keeps the heap it leaves): the
component's own CPython parses the program's source, and runs its top-level
statements one at a time, in order, in a module of the program's name:

- run: imports, ``def``, ``class``, and assignments (``=``, ``+=``, and
  annotated ones), which make the names a task may use;
- ``if``: the test is evaluated, and the chosen branch's statements go by
  these same rules; ``__name__`` is the module's name, not ``"__main__"``,
  so the body of a ``__main__`` guard is left out, as on an import;
- ``try``: run whole, of its statements only those these rules keep, so
  that a program's own fallback (``except ImportError: np = None``) holds;
- left out: the rest, the program's work, which the host does: expression
  statements (calls such as ``main()`` or ``set_start_method('fork')``),
  ``with``, ``for``, ``while``, ``assert``, ``del``, ``raise``, ``match``.

A statement that fails here does not fail the build: each name it binds is
bound to an `Unavailable` stand-in that raises, naming it, when a task uses
it. An import that cannot be loaded in the sandbox (not in the component, a
package with native code, a module that raises while it loads) leaves an
`ImportError`; another statement (``pool = Pool(3)``: a task cannot start a
pool) a `NameError`. The program's imports of `multiprocessing` (but one
in a ``try``, which runs whole) are not loaded at all: CPython's
`multiprocessing` loads in the sandbox, but cannot start a process there
(its `Pool` fails on a module it lacks) and its `current_process()` is
``MainProcess``; and what the host's module makes (pipes, semaphores,
managers) cannot reach a task. A task that touches it fails naming it; a
program that wants multiprocessing's names in its tasks imports `wasmpool`
(``import wasmpool as multiprocessing``), whose guest side answers for the
worker.

Each statement is compiled from the program's own syntax tree, under the
program's file name, so a task's traceback names the program's file and
lines; the source is entered in `linecache`, so that it shows them too.
"""

import __future__
import ast
import copy
import linecache
import sys
import types

from ._unavailable import Unavailable

#: Statements that define names, run as they are.
DEFINITIONS = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign,
    ast.AugAssign, ast.TypeAlias,
)

#: Expressions with a scope of their own: the names they bind stay inside.
SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

#: Modules the program's imports leave as stand-ins, with why.
REFUSED = {
    "multiprocessing": (
        "a task starts no processes, and what the host's multiprocessing makes cannot "
        "reach it; a program's `import wasmpool` gives its tasks multiprocessing's names"
    ),
}


def load(name, filename, source):
    """The module `name` of the program `source` (its text, from the file
    `filename`): its definitions run, its work left out; registered in
    `sys.modules`."""
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename)
    module.__doc__ = ast.get_docstring(tree, clean=False)
    _Runner(vars(module), filename, _future_flags(tree)).run(tree.body)
    return module


def _future_flags(tree):
    """The compiler flags of the program's ``from __future__`` imports, which
    each statement compiled on its own would otherwise lose."""
    flags = 0
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            for alias in statement.names:
                flags |= getattr(__future__, alias.name).compiler_flag
    return flags


class _Runner:
    """Runs a program's top-level statements by the rules of the module doc,
    in `namespace`."""

    def __init__(self, namespace, filename, flags):
        self.namespace = namespace
        self.filename = filename
        self.flags = flags

    def run(self, statements):
        """Runs what `statements` define, in order."""
        for statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                for single in _one_per_name(statement):
                    self._import(single)
            elif isinstance(statement, ast.If):
                self._branch(statement)
            elif isinstance(statement, (ast.Try, ast.TryStar)):
                self._define(_definitions_only(statement))
            elif isinstance(statement, DEFINITIONS):
                self._define(statement)

    def _branch(self, statement):
        test = ast.Expression(statement.test)
        try:
            chosen = eval(self._compile(test, "eval"), self.namespace)  # noqa: S307
            branch = statement.body if chosen else statement.orelse
        except BaseException as err:  # noqa: BLE001 - the build goes on
            self._unavailable(statement, err)
            return
        self.run(branch)

    def _import(self, statement):
        module, alias = _imported(statement)
        reason = REFUSED.get(module.partition(".")[0])  # "" for a relative import
        if reason is None:
            try:
                self._execute(statement)
                return
            except BaseException as err:  # noqa: BLE001 - a module that raises while loading too
                reason = f"{type(err).__name__}: {err}"
        if alias.name == "*":
            return
        what = module if isinstance(statement, ast.Import) else f"{module}.{alias.name}"
        message = (
            f"`{what}` cannot be loaded in the sandbox ({reason}; imported at "
            f"{self._where(statement)}): the program's host side has it, a task cannot use it"
        )
        self.namespace[_bound_by(statement, alias)] = Unavailable(ImportError, message, what)

    def _define(self, statement):
        try:
            self._execute(statement)
        except BaseException as err:  # noqa: BLE001 - sys.exit() in a value too
            self._unavailable(statement, err)

    def _unavailable(self, statement, err):
        """Binds a stand-in for each name `statement` binds, saying it
        raised `err`."""
        for name in _bound_names(statement):
            message = (
                f"`{name}` has no value in the sandbox: as the component was built, its "
                f"top-level statement ({self._where(statement)}) raised there "
                f"{type(err).__name__}: {err}"
            )
            self.namespace[name] = Unavailable(NameError, message, name)

    def _execute(self, statement):
        exec(self._compile(ast.Module([statement], []), "exec"), self.namespace)  # noqa: S102

    def _compile(self, tree, mode):
        return compile(tree, self.filename, mode, flags=self.flags, dont_inherit=True)

    def _where(self, statement):
        return f"{self.filename}, line {statement.lineno}"


def _one_per_name(statement):
    """`statement` as one import per name it binds (``import a, b`` as
    ``import a`` and ``import b``), so that one that fails leaves the others."""
    for alias in statement.names:
        single = copy.copy(statement)
        single.names = [alias]
        yield single


def _imported(statement):
    """The module a one-name import loads, and its alias."""
    alias = statement.names[0]
    if isinstance(statement, ast.Import):
        return alias.name, alias
    return "." * statement.level + (statement.module or ""), alias


def _bound_by(statement, alias):
    """The name an import of `alias` binds."""
    if alias.asname:
        return alias.asname
    if isinstance(statement, ast.Import):
        return alias.name.partition(".")[0]
    return alias.name


def _definitions_only(statement):
    """A copy of `statement` (a ``try``, an ``if``, an ``except`` clause)
    keeping, at every depth, only the statements that define names."""
    kept = copy.copy(statement)
    for field in ("body", "orelse", "finalbody"):
        body = getattr(statement, field, None)
        if body:
            setattr(kept, field, _kept(body, statement))
    if isinstance(statement, (ast.Try, ast.TryStar)):
        kept.handlers = [_definitions_only(handler) for handler in statement.handlers]
    return kept


def _kept(body, parent):
    """The statements of `body` that define names (compound ones cut down
    alike); a ``pass`` if none is."""
    kept = []
    for statement in body:
        if isinstance(statement, (ast.If, ast.Try, ast.TryStar)):
            kept.append(_definitions_only(statement))
        elif isinstance(statement, (ast.Import, ast.ImportFrom, *DEFINITIONS)):
            kept.append(statement)
    return kept or [ast.copy_location(ast.Pass(), parent)]


def _bound_names(statement):
    """The names `statement` binds in the scope it runs in, in order (not
    those bound inside the functions, classes and comprehensions it holds)."""
    names = {}
    stack = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = None
            continue
        if isinstance(node, SCOPES):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names[node.id] = None
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = (_bound_by(node, alias) for alias in node.names if alias.name != "*")
            names.update(dict.fromkeys(bound))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names[node.name] = None
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return list(names)
