"""Shared fixtures: a pool over `tasks.py`, built once for the session."""

import os
import subprocess
import sys
import textwrap
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
