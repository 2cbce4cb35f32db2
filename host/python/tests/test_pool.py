"""The `wasmpool` package's Pool, through real sandboxed workers running the
functions of `tasks.py`, built into a component."""

import itertools
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

import tasks
import wasmpool
from conftest import TASKS, interrupted, run_script, running


def test_map_apply_starmap_and_imap_give_what_multiprocessing_gives(pool):
    assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
    assert pool.map(tasks.square, range(10), chunksize=3) == [x * x for x in range(10)]
    assert pool.apply(tasks.divide, (7, 2)) == 3.5
    assert pool.starmap(tasks.divide, [(1, 2), (3, 4)]) == [0.5, 0.75]
    assert list(pool.imap(tasks.square, range(7), chunksize=2)) == [x * x for x in range(7)]
    assert sorted(pool.imap_unordered(tasks.square, range(7))) == [x * x for x in range(7)]
    # By name, as for a module written in another language.
    assert pool.map("square", [3]) == [9]


def test_values_come_back_as_they_went(pool):
    values = [None, True, False, 0, -1, 2**63 - 1, 2**64 - 1, 1.5, "héllo", b"\x00\xff",
              [1, [2, "x"]], {"a": [1, 2], "b": {"c": None}}]
    assert pool.map(tasks.echo, values) == values
    # A tuple stays a tuple, nested and as a key too.
    sent = ((1, (2, [3])), {(1, 2): (3,)})
    assert pool.apply(tasks.echo, (sent,)) == sent
    assert type(pool.apply(tasks.echo, ((1, 2),))) is tuple
    # A task named by string, as of another language, gets arrays.
    assert pool.apply("echo", ((1, 2),)) == [1, 2]


def test_what_a_task_cannot_take_is_refused_before_anything_runs(pool):
    with pytest.raises(OverflowError, match="64 bits"):
        pool.apply(tasks.echo, (2**70,))
    with pytest.raises(TypeError, match="argument 1 of `tasks.echo` is of type `object`"):
        pool.apply(tasks.echo, (object(),))
    with pytest.raises(TypeError, match="lambda"):
        pool.apply(lambda x: x, (1,))

    def nested(x):
        return x

    with pytest.raises(TypeError, match="nested"):
        pool.apply(nested, (1,))
    with pytest.raises(TypeError, match="bound method"):
        pool.apply(tasks.Shapes().area, (2,))
    with pytest.raises(TypeError, match="not found as `__main__._elsewhere`"):
        pool.apply(_elsewhere)


def _elsewhere():
    """A function that claims a module it is not in."""


_elsewhere.__module__ = "__main__"


def test_any_callable_pickle_finds_is_a_task(pool):
    # Functions of *args and **kwargs, static and class methods, built-ins
    # and the standard library's, as pickle finds them.
    assert pool.apply(tasks.spread, (1, (2, 3)), {"k": [4]}) == ((1, (2, 3)), {"k": [4]})
    assert pool.apply(tasks.Shapes.square_area, (3,)) == 9
    assert pool.apply(tasks.Shapes.named, ("box",)) == "Shapes:box"
    assert pool.map(abs, [-1, 2, -3]) == [1, 2, 3]
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    assert pool.apply(str.upper, ("abc",)) == "ABC"
    assert pool.apply(time.sleep, (0,)) is None
    # Python's own errors of a call, as Python raises them.
    with pytest.raises(TypeError, match="unexpected keyword argument 'nickname'"):
        pool.apply(tasks.greet, ("Ada",), {"nickname": "A"})


def test_keyword_arguments_and_defaults(pool):
    assert pool.apply(tasks.greet, ("Ada",)) == "Hello, Ada!"
    assert pool.apply(tasks.greet, ("Ada",), {"greeting": "Hi"}) == "Hi, Ada!"
    # A task named by string is bound by the pool, as any language's.
    assert pool.apply("greet", ("Ada",), {"greeting": "Hi"}) == "Hi, Ada!"
    with pytest.raises(wasmpool.BadArguments, match="nickname"):
        pool.apply("greet", ("Ada",), {"nickname": "A"})


def test_a_built_in_exception_is_raised_as_itself_with_the_guests_traceback(pool):
    with pytest.raises(ZeroDivisionError, match="division by zero") as caught:
        pool.apply(tasks.divide, (1, 0))
    cause = caught.value.__cause__
    assert isinstance(cause, wasmpool.RemoteTraceback)
    assert "tasks.py" in str(cause) and "in divide" in str(cause)
    with pytest.raises(KeyError):
        pool.apply(tasks.look_up, ("z",))
    with pytest.raises(wasmpool.TaskError) as custom:
        pool.apply(tasks.fail_custom, ("no luck",))
    assert custom.value.type_name == "Custom"
    assert custom.value.kind == "failed"
    assert "no luck" in str(custom.value)
    # A failed map names the task that failed.
    with pytest.raises(ZeroDivisionError):
        pool.starmap(tasks.divide, [(1, 1), (1, 0)])


def test_limits_raise_their_own_errors_and_a_wait_that_runs_out_is_not_one():
    with wasmpool.Pool(1, module=TASKS, timeout=0.5, memory="64M") as limited:
        with pytest.raises(wasmpool.TaskTimeout) as stopped:
            limited.apply(tasks.spin, (30,))
        assert stopped.value.kind == "timeout"
        assert not isinstance(stopped.value, TimeoutError)
        with pytest.raises(wasmpool.MemoryLimit):
            limited.apply(tasks.allocate, (256,))
        waiting = limited.apply_async(tasks.nap, (0.3,))
        with pytest.raises(wasmpool.TimeoutError) as early:
            waiting.get(timeout=0.01)
        assert isinstance(early.value, TimeoutError)
        assert not waiting.ready()
        with pytest.raises(ValueError):
            waiting.successful()
        assert waiting.get(timeout=5) == 0.3
        assert waiting.successful()


def test_callbacks_run_before_get_returns_and_a_raising_one_harms_nothing(pool, capfd):
    seen = []
    result = pool.apply_async(tasks.square, (6,), callback=seen.append)
    assert result.get(5) == 36
    assert seen == [36]
    errors = []
    failed = pool.apply_async(tasks.divide, (1, 0), error_callback=errors.append)
    with pytest.raises(ZeroDivisionError):
        failed.get(5)
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    mapped = []
    assert pool.map_async(tasks.square, [1, 2], callback=mapped.append).get(5) == [1, 4]
    assert mapped == [[1, 4]]

    def raising(_):
        raise RuntimeError("a callback that raises")

    assert pool.apply_async(tasks.square, (2,), callback=raising).get(5) == 4
    assert pool.apply(tasks.square, (3,)) == 9
    assert "a callback that raises" in capfd.readouterr().err


def test_what_a_task_prints_reaches_sys_stdout(pool, capfd):
    assert pool.map(tasks.shout, ["a", "b", "c"], chunksize=1) == [1, 1, 1]
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline and len(out) < 3:
        out += capfd.readouterr().out
        time.sleep(0.05)
    assert sorted(out) == ["a", "b", "c"]


def test_the_initializer_runs_in_each_worker_as_it_starts():
    with wasmpool.Pool(2, tasks.set_base, (40,), module=TASKS, maxtasksperchild=1) as pool:
        # One task a worker: each answer comes from a worker just started.
        assert [pool.apply(tasks.get_base) for _ in range(4)] == [40] * 4


def test_a_task_sees_no_environment_of_the_host(pool):
    assert pool.apply(tasks.environment_size) == 0


def test_a_closed_pool_takes_no_task_and_join_waits():
    pool = wasmpool.Pool(1, module=TASKS)
    running = pool.apply_async(tasks.nap, (0.2,))
    pool.close()
    with pytest.raises(ValueError):
        pool.apply_async(tasks.square, (1,))
    pool.join()
    assert running.get(0) == 0.2


def test_a_killed_worker_fails_only_its_task():
    with wasmpool.Pool(2, module=TASKS, retries=0) as pool:
        pids = pool._native.worker_pids()
        assert len(pids) == 2
        slow = [pool.apply_async(tasks.nap, (2,)) for _ in range(2)]
        time.sleep(0.5)
        os.kill(pids[0], signal.SIGKILL)
        outcomes = []
        for result in slow:
            try:
                outcomes.append(result.get(10))
            except wasmpool.WorkerLost as err:
                outcomes.append(err.kind)
        assert sorted(map(str, outcomes)) == ["2", "worker-lost"]
        assert pool.apply(tasks.square, (5,)) == 25


PROGRAM = """
        import wasmpool as multiprocessing

        def action(name='default'):
            return 'running, argument: %s' % name

        if __name__ == '__main__':
            pool = multiprocessing.Pool(processes=2)
            results = [
                pool.apply_async(action),
                pool.apply_async(action, args=('positional',)),
                pool.apply_async(action, kwds={'name': 'keyword'}),
            ]
            pool.close()
            pool.join()
            for result in results:
                print(result.get())
        """


def test_a_program_runs_sandboxed_after_changing_one_import(tmp_path):
    """The first run builds the program into a component, saying so; the
    next finds it in the cache."""
    cache = tmp_path / "cache"
    for run in ("first", "second"):
        done = run_script(PROGRAM, tmp_path, cache=cache)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "running, argument: default",
            "running, argument: positional",
            "running, argument: keyword",
        ]
        built = "building program.py into a component" in done.stderr
        assert built == (run == "first"), done.stderr


def test_ctrl_c_in_get_raises_keyboard_interrupt_and_leaves_no_worker(tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TASKS.parent)!r})
        import tasks
        import wasmpool

        with wasmpool.Pool(2, module={str(TASKS)!r}) as pool:
            print(*pool._native.worker_pids(), flush=True)
            pool.apply(tasks.nap, (60,))
        """
    ))
    pids, err, took = interrupted(script)
    assert len(pids) == 2
    assert "KeyboardInterrupt" in err, err
    assert took < 5
    for pid in pids:
        assert not running(pid), f"worker {pid} left"


def test_a_pool_left_open_does_not_hold_interpreter_exit(tmp_path):
    started = time.monotonic()
    done = run_script(
        f"""
        import wasmpool
        pool = wasmpool.Pool(2, module={str(TASKS)!r})
        pool.apply_async("nap", (30,))
        print("leaving")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving"
    assert time.monotonic() - started < 20


def test_a_pool_collected_while_its_tasks_print_and_call_back_does_not_hang(tmp_path):
    done = run_script(
        f"""
        import gc, sys
        sys.path.insert(0, {str(TASKS.parent)!r})
        import tasks
        import wasmpool

        def make_and_drop():
            pool = wasmpool.Pool(2, module={str(TASKS)!r})
            pool.map_async(tasks.shout, ["x"] * 200, chunksize=1, callback=print)
            pool.apply_async(tasks.shout, ("y",), callback=print)

        for _ in range(3):
            make_and_drop()
            gc.collect()
        print("collected")
        """,
        tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("collected")


def test_callbacks_are_not_run_on_the_waiting_thread(pool):
    threads = []
    pool.apply_async(tasks.square, (2,), callback=lambda _: threads.append(threading.get_ident())).get(5)
    assert threads and threads[0] != threading.get_ident()


def test_start_methods_and_contexts_are_accepted_and_processes_named(tmp_path):
    done = run_script(
        f"""
        import os
        import wasmpool as multiprocessing
        assert multiprocessing.get_start_method(allow_none=True) is None
        multiprocessing.set_start_method("fork")
        assert multiprocessing.get_start_method() == "fork"
        try:
            multiprocessing.set_start_method("spawn")
        except RuntimeError:
            pass
        else:
            raise AssertionError("set twice")
        context = multiprocessing.get_context("spawn")
        with context.Pool(1, module={str(TASKS)!r}) as pool:
            print(pool.apply("square", (4,)))
        me = multiprocessing.current_process()
        print(me.name, me.pid == os.getpid(), multiprocessing.cpu_count() >= 1)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["16", "MainProcess", "True", "True"]


def test_imap_submits_as_it_reads_and_its_results_come_as_they_are_ready(pool):
    # An endless input: results come while it is read. Its own pool, whose
    # end stops the submitting (on the shared pool it would go on for ever).
    with wasmpool.Pool(2, module=TASKS) as own:
        squares = own.imap(tasks.square, itertools.count(), chunksize=7)
        assert [next(squares) for _ in range(50)] == [n * n for n in range(50)]
    # `next(timeout)` that runs out raises, and the result still comes.
    slow = pool.imap(tasks.nap, [0.5, 0])
    with pytest.raises(wasmpool.TimeoutError):
        slow.next(timeout=0.05)
    assert slow.next(timeout=30) == 0.5 and list(slow) == [0]
    # A failed item raises where its result would be; the rest follow.
    mixed = pool.imap(tasks.look_up, ["a", "z", "a"])
    assert next(mixed) == 1
    with pytest.raises(KeyError):
        next(mixed)
    assert list(mixed) == [1]
    unordered = pool.imap_unordered(tasks.nap, [0.5, 0])
    assert list(unordered) == [0, 0.5]


def test_an_imap_started_before_close_runs_to_its_end():
    with wasmpool.Pool(2, module=TASKS) as pool:
        squares = pool.imap(tasks.square, (n for n in range(300)), chunksize=2)
        pool.close()
        pool.join()
        assert list(squares) == [n * n for n in range(300)]
        with pytest.raises(ValueError, match="Pool not running"):
            pool.imap(tasks.square, [1])


def test_a_loaded_module_gives_handles_to_its_tasks():
    module = wasmpool.load(TASKS)
    assert repr(module.square) == "<wasmpool task square of tasks.py>"
    with wasmpool.Pool(1, module=module) as pool:
        assert pool.map(module.square, [2, 3]) == [4, 9]
        with pytest.raises(TypeError, match="not a task of tasks.py"):
            pool.apply(wasmpool.load(Path(__file__)).square, (2,))
        with pytest.raises(wasmpool.UnknownTask):
            pool.apply(module.no_such_task)
    process = wasmpool.Process(target=module.nap, args=(0,))
    process.start()
    process.join()
    assert process.exitcode == 0
    with pytest.raises(ValueError, match=".wasm component or a .py file"):
        wasmpool.load("tasks.txt")


def test_fresh_instance_gives_every_task_an_instance_of_its_own():
    def found(**settings):
        with wasmpool.Pool(1, module=TASKS, initializer=tasks.set_base, initargs=(5,),
                           **settings) as pool:
            return [pool.apply(tasks.swap_secret, (1,)), *pool.map(tasks.swap_secret, [2, 3])]

    # Kept, the instance shows each task what the one before left.
    assert found() == [None, 1, 2]
    assert found(fresh_instance=True) == [None, None, None]
    with wasmpool.Pool(1, module=TASKS, initializer=tasks.set_base, initargs=(5,),
                       fresh_instance=True) as pool:
        # Each fresh instance is initialized before its task.
        assert [pool.apply(tasks.get_base) for _ in range(3)] == [5, 5, 5]


def test_dirs_give_tasks_a_host_directory_read_only_or_to_write(tmp_path):
    (tmp_path / "in.txt").write_text("from the host")
    with wasmpool.Pool(1, module=TASKS, dirs={"/data": tmp_path}) as pool:
        assert pool.apply(tasks.read_text, ("/data/in.txt",)) == "from the host"
        with pytest.raises(OSError):
            pool.apply(tasks.write_text, ("/data/out.txt", "no"))
        with pytest.raises(OSError):
            pool.apply(tasks.read_text, ("/etc/passwd",))
    with wasmpool.Pool(1, module=TASKS, dirs={"/out": (tmp_path, "rw")}) as pool:
        assert pool.apply(tasks.write_text, ("/out/out.txt", "from a task")) == 11
    assert (tmp_path / "out.txt").read_text() == "from a task"
    with pytest.raises(ValueError, match="not a directory"):
        wasmpool.Pool(1, module=TASKS, dirs={"/data": tmp_path / "in.txt"})
