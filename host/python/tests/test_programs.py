"""Programs as people write them for `multiprocessing`, run as scripts: a
pool started at the top level with the fork start method, imports the
sandbox cannot load, top-level values it cannot make. Each runs once, on
the host; its component gets its definitions, not its work."""

import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of this module's own, so that the components of its programs
    (each built where the test puts it) do not pile up in the user's."""
    return tmp_path_factory.mktemp("cache")


def run_program(source, tmp_path, cache):
    """Runs `source` as the script ``program.py``; its stdout, once it
    exited well."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180,
        cwd=tmp_path, env={**os.environ, "XDG_CACHE_HOME": str(cache)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def line_of(tmp_path, text):
    """The number of the line of ``program.py`` that is `text`, stripped."""
    lines = (tmp_path / "program.py").read_text().splitlines()
    return [line.strip() for line in lines].index(text) + 1


def test_a_fork_style_program_runs_once_on_the_host(tmp_path, cache):
    out = run_program(
        """
        from wasmpool import Pool
        import sys
        import wasmpool as ms

        print("top level")
        started = []

        if sys.version_info >= (3,):
            def scale(x):
                return x * 10

        def work(x):
            print("task", x)
            return scale(x), len(started)

        def fail():
            return 1 / 0

        ms.set_start_method('fork')
        started.append("pool")
        with Pool(processes=2) as pool:
            print(pool.map(work, [1, 2], 2))
            try:
                pool.apply(fail)
            except ZeroDivisionError as err:
                print(err.__cause__)
        print("after the pool")

        if __name__ == '__main__':
            started.append("main")
            print("main", started)
        """,
        tmp_path,
        cache,
    )
    lines = out.splitlines()
    # Once each, as under CPython, the tasks' lines among them.
    assert lines[:3] == ["top level", "task 1", "task 2"]
    assert lines[-2:] == ["after the pool", "main ['pool', 'main']"]
    # The sandbox has the definitions, the `if`'s among them, not the work:
    # `started` is empty there, its appends left out (the main guard's too).
    assert lines[3] == "[(10, 0), (20, 0)]"
    # A task's traceback names the program's own file and line, and shows it.
    traceback = "\n".join(lines[4:-2])
    at = f'File "{tmp_path / "program.py"}", line {line_of(tmp_path, "return 1 / 0")}, in fail'
    assert at in traceback, traceback
    assert "return 1 / 0" in traceback


def test_imports_the_sandbox_cannot_load_fail_only_the_tasks_that_use_them(tmp_path, cache):
    out = run_program(
        """
        import multiprocessing
        import componentize_py
        from multiprocessing import current_process
        import wasmpool
        try:
            import componentize_py as optional
        except ImportError:
            optional = None

        def plain(x):
            return x + 1

        def native():
            return componentize_py.script

        def processes():
            return current_process().name

        def fallback():
            return optional is None

        # The host side has them all.
        print(callable(componentize_py.script), current_process().name)
        with wasmpool.Pool(1) as pool:
            print(pool.apply(plain, (1,)), pool.apply(fallback))
            for task in (native, processes):
                try:
                    pool.apply(task)
                except ImportError as err:
                    print(task.__name__, err)
        """,
        tmp_path,
        cache,
    )
    lines = out.splitlines()
    assert lines[:2] == ["True MainProcess", "2 True"]
    native, processes = lines[2:]
    assert native.startswith("native `componentize_py` cannot be loaded in the sandbox")
    line = line_of(tmp_path, "import componentize_py")
    assert f"{tmp_path / 'program.py'}, line {line}" in native
    assert processes.startswith(
        "processes `multiprocessing.current_process` cannot be loaded in the sandbox"
    )


def test_a_top_level_value_the_sandbox_cannot_make_fails_only_the_tasks_that_use_it(
    tmp_path, cache,
):
    out = run_program(
        """
        import wasmpool

        def square(x):
            return x * x

        def uses_pool():
            return pool.map(square, [1])

        pool = wasmpool.Pool(2)
        print(pool.map(square, range(4)))
        try:
            pool.apply(uses_pool)
        except NameError as err:
            print(err)
        pool.close()
        pool.join()
        """,
        tmp_path,
        cache,
    )
    squares, refused = out.splitlines()
    assert squares == "[0, 1, 4, 9]"
    assert refused.startswith("`pool` has no value in the sandbox")
    line = line_of(tmp_path, "pool = wasmpool.Pool(2)")
    assert f"{tmp_path / 'program.py'}, line {line}" in refused
    assert "RuntimeError: a task cannot start a Pool" in refused


def test_a_task_module_with_native_code_is_still_refused(tmp_path):
    from wasmpool._guest_sdk.wasmpool_guest import build

    module = tmp_path / "tasks.py"
    module.write_text("import componentize_py\n")
    with pytest.raises(build.BuildError, match="`componentize_py` uses native code"):
        build.build(module, tmp_path / "tasks.wasm", quiet=True)
