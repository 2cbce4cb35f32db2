"""Shared fixtures: a pool over `tasks.py`, built once for the session."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wasmpool

TASKS = Path(__file__).resolve().parent / "tasks.py"


@pytest.fixture(scope="session")
def pool():
    with wasmpool.Pool(2, module=TASKS) as pool:
        yield pool


def run_script(source, tmp_path, timeout=120, cache=None):
    """Runs `source` (dedented) as a program in `tmp_path`, its cache under
    `cache` if given; the finished process."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ)
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
        cwd=tmp_path, env=env,
    )


def interrupted(script):
    """Runs the program `script`, which prints pids on its first line and
    then blocks, and sends it SIGINT half a second later: the pids, what it
    wrote on stderr, and how long it took to exit after the signal."""
    child = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    pids = [int(pid) for pid in child.stdout.readline().split()]
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = child.communicate(timeout=30)
    return pids, err, time.monotonic() - sent


def running(pid):
    """Whether process `pid` runs (exists, and is no zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
