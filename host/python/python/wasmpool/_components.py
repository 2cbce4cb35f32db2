"""The component a pool runs: a `.wasm` file as it is, or a Python program
(the `__main__` script, or a `.py` file) built whole into one with the
Python guest SDK, every top-level function a task. What is built is kept
under the cache directory by the hash of what went into it (the file and
its path, the SDK, the contract), so that only the first run builds."""

import ast
import functools
import hashlib
import os
import sys
import time
from pathlib import Path

from . import _native

__all__ = ["cache_dir", "component_of", "evict", "main_source", "prepare_main"]

#: Why the build of a source failed, to say again rather than build again.
_FAILED = {}

#: The package's own copy of the guest SDK: the one of its contract.
_SDK = (Path(__file__).parent / "_guest_sdk" / "wasmpool_guest").resolve()

#: The most bytes of built components the cache keeps (a program's is about
#: 20 MB, and each edit of it makes another): when one is built, the least
#: recently used past this go.
COMPONENTS_LIMIT = 1 << 30
#: A component used this recently (in seconds) is kept past the limit:
#: another program may be about to read it. So is a partial one as young,
#: another program's build.
IN_USE_SECONDS = 60
#: A partial component this old was left by a build that died.
ABANDONED_SECONDS = 3600


def cache_dir():
    """Where wasmpool keeps what it builds and compiles: the pool's own
    default (``$XDG_CACHE_HOME/wasmpool`` or ``~/.cache/wasmpool``)."""
    return Path(_native.cache_dir())


def main_source():
    """The file of the program that runs (its `__main__` module), or None
    (an interactive session)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return Path(path).resolve() if path else None


def component_of(source):
    """The component of `source`: a `.wasm` file, or a `.py` file built."""
    source = Path(source).resolve()
    if source.suffix == ".py":
        if source in _FAILED:
            raise _FAILED[source]
        try:
            return _built(source)
        except ImportError as err:
            _FAILED[source] = err
            raise
    if not source.is_file():
        raise FileNotFoundError(f"no module at {source}")
    return source


def _built(source):
    key = hashlib.sha256()
    # Its path too: the component carries it, for tracebacks to name.
    key.update(str(source).encode())
    key.update(source.read_bytes())
    key.update(_sdk_digest())
    name = f"{source.stem}-{key.hexdigest()[:16]}.wasm"
    output = cache_dir() / "components" / name
    try:
        # Used: the last to be evicted. Only its time of access: its time of
        # change names the compiled component a process keeps.
        os.utime(output, ns=(time.time_ns(), output.stat().st_mtime_ns))
        return output
    except OSError:
        pass  # not built yet
    # Imported only to build: a warm start needs none of it.
    from ._guest_sdk.wasmpool_guest import build as guest_build

    started = time.monotonic()
    # One line, ended with the time it took.
    print(
        f"wasmpool: building {source.name} into a component ...", end="", file=sys.stderr,
        flush=True,
    )
    partial = output.with_name(f".{name}.{os.getpid()}")
    try:
        guest_build.build(source, partial, quiet=True, functions=True)
    except guest_build.BuildError as err:
        print(" failed", file=sys.stderr, flush=True)
        raise ImportError(f"cannot build {source} into a component: {err}") from None
    os.replace(partial, output)
    print(f" {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    evict(output.parent, keep=output)
    return output


@functools.lru_cache(maxsize=None)
def _sdk_digest():
    """The digest of the SDK's files, by path and content: read once, not at
    every start of a pool or a process (the installed SDK does not change
    while a program runs)."""
    key = hashlib.sha256()
    for path in sorted(_SDK.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".wit"):
            key.update(path.relative_to(_SDK).as_posix().encode())
            key.update(path.read_bytes())
    return key.digest()


def evict(directory, keep, limit=COMPONENTS_LIMIT, now=None):
    """Removes from `directory` the least recently used components past
    `limit` bytes, never `keep` nor one used in the last `IN_USE_SECONDS`,
    and the partial ones of builds that died."""
    now = time.time() if now is None else now
    entries = []
    for path in directory.iterdir():
        try:
            stat = path.stat()
        except OSError:
            continue  # gone meanwhile
        if path.name.startswith("."):
            if now - stat.st_mtime > ABANDONED_SECONDS:
                _remove(path)
        elif path.suffix == ".wasm":
            entries.append((stat.st_atime, stat.st_size, path))
    total = 0
    for used, size, path in sorted(entries, reverse=True):  # the most recent first
        total += size
        if total > limit and path != keep and now - used > IN_USE_SECONDS:
            _remove(path)
            total -= size


def _remove(path):
    try:
        path.unlink()
    except OSError:
        pass  # gone already, or another's to remove


def prepare_main(importer):
    """Builds and compiles the program's component now if the program's
    script itself imports wasmpool (`importer` is the importing frame's file
    name): the first run of a program then pays for both before its own
    code runs, rather than in its first `Pool` or `Process` — a program that
    times its steps (seed 004 waits for a clock second) runs on its first
    run as on the next. A build that fails is said again when the program
    starts a pool."""
    source = main_source()
    if source is None or source.suffix != ".py" or importer is None:
        return
    try:
        if Path(importer).resolve() != source or not _defines(source):
            return
        component = component_of(source)
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        _native.prepare(str(component), str(cache), source.name)
    except Exception:  # noqa: BLE001 - said when the program starts a pool
        pass


def _defines(source):
    """Whether the script defines a function or a class (at its top level,
    or in a top-level `if` or `try`): one that defines none has no task of
    its own to prepare (its pool runs another module's, or a built-in's,
    built when the pool starts)."""
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except SyntaxError:
        return False
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return True
        if isinstance(node, (ast.If, ast.Try)):
            statements.extend(node.body + node.orelse)
            statements.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                statements.extend(handler.body)
    return False
