"""`wasmpool.Process`: a call in a sandboxed worker process of its own, as
`multiprocessing.Process`: its methods, CPython's exit codes, subclasses
whose `run` is their own, and what happens at interpreter exit."""

import os
import signal
import textwrap
import time

import pytest

import tasks
import wasmpool
from conftest import TASKS, interrupted, run_script, running


def test_a_process_runs_its_target_and_ends_with_exit_code_0(capfd):
    process = wasmpool.Process(target=tasks.report, args=("hello",), kwargs={"seconds": 0})
    assert process.pid is None and not process.is_alive() and process.exitcode is None
    process.start()
    assert isinstance(process.pid, int) and process.pid != os.getpid()
    process.join()
    assert not process.is_alive() and process.exitcode == 0
    assert capfd.readouterr().out == "hello\n"
    assert process.name.startswith("Process-")
    with pytest.raises(AssertionError, match="twice"):
        process.start()
    with pytest.raises(AssertionError, match="started"):
        wasmpool.Process(target=tasks.report).join()


@pytest.mark.parametrize(
    "code, exitcode, said", [(0, 0, ""), (3, 3, ""), (None, 0, ""), ("bye", 1, "bye\n")]
)
def test_sys_exit_gives_its_code_as_cpython(code, exitcode, said, capfd):
    process = wasmpool.Process(target=tasks.leave, args=(code,))
    process.start()
    process.join()
    assert process.exitcode == exitcode
    assert capfd.readouterr().err == said


def test_an_exception_exits_with_1_and_prints_its_traceback(capfd):
    process = wasmpool.Process(target=tasks.divide, args=(1, 0), name="divider")
    process.start()
    process.join()
    assert process.exitcode == 1
    err = capfd.readouterr().err
    assert err.startswith("Process divider:\nTraceback (most recent call last):\n"), err
    assert "in divide" in err and err.endswith("ZeroDivisionError: division by zero\n"), err


@pytest.mark.parametrize("stop, exitcode", [("terminate", -signal.SIGTERM), ("kill", -9)])
def test_a_stopped_process_exits_with_minus_its_signal(stop, exitcode):
    process = wasmpool.Process(target=tasks.nap, args=(60,))
    process.start()
    started = time.monotonic()
    process.join(timeout=0.2)
    assert process.is_alive() and process.exitcode is None
    assert time.monotonic() - started >= 0.2
    getattr(process, stop)()
    process.join(timeout=30)
    assert process.exitcode == exitcode


def test_a_subclass_runs_its_own_run_with_its_attributes(capfd):
    greeters = [tasks.Greeter("Hello", "Ada"), tasks.Greeter("Bonjour", "Alan")]
    greeters[1].name = "second"
    for greeter in greeters:
        greeter.start()
    for greeter in greeters:
        greeter.join()
    assert [greeter.exitcode for greeter in greeters] == [0, 0]
    out = sorted(capfd.readouterr().out.splitlines())
    assert out == [
        "Bonjour, Alan! (second, True)", f"Hello, Ada! ({greeters[0].name}, True)",
    ]


def test_processes_share_a_managed_dict_under_a_lock():
    with wasmpool.Manager() as manager:
        lock, shared = wasmpool.Lock(), manager.dict({"count": 10})
        processes = [
            wasmpool.Process(target=tasks.count_under_lock, args=(shared, lock))
            for _ in range(5)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        assert shared["count"] == 5
        assert [process.exitcode for process in processes] == [0] * 5


def test_at_exit_daemons_are_terminated_and_the_others_joined(tmp_path):
    started = time.monotonic()
    done = run_script(
        f"""
        import sys
        sys.path.insert(0, {str(TASKS.parent)!r})
        import tasks
        import wasmpool

        if __name__ == "__main__":
            wasmpool.Process(target=tasks.nap, args=(60,), daemon=True).start()
            wasmpool.Process(target=tasks.report, args=("child", 1)).start()
            print("main done", flush=True)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main done", "child"]
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("blocked", ["queue.get()", "lock.acquire()", "process.join()"])
def test_ctrl_c_in_a_blocking_call_raises_keyboard_interrupt(blocked, tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TASKS.parent)!r})
        import tasks
        import wasmpool

        if __name__ == "__main__":
            queue, lock = wasmpool.Queue(), wasmpool.Lock()
            lock.acquire()
            process = wasmpool.Process(target=tasks.nap, args=(60,), daemon=True)
            process.start()
            print(process.pid, flush=True)
            {blocked}
        """
    ))
    (pid,), err, took = interrupted(script)
    assert "KeyboardInterrupt" in err, err
    assert took < 5
    # The daemon was terminated at exit: no worker left.
    assert not running(pid)
