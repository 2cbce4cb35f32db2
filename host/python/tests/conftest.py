"""Shared fixtures: a pool over `tasks.py`, built once for the session."""

from pathlib import Path

import pytest

import wasmpool

TASKS = Path(__file__).resolve().parent / "tasks.py"


@pytest.fixture(scope="session")
def pool():
    with wasmpool.Pool(2, module=TASKS) as pool:
        yield pool
