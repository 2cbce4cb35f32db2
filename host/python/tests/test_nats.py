"""A Python host's pool on NATS agents: `Pool(nats=URL)` runs its tasks on
a real `wasmpool agent` of a real `nats-server` (JetStream, on loopback),
as the Rust tests of the NATS backend do."""

import os

import pytest

import tasks
import wasmpool
from conftest import TASKS, free_port

def test_a_pool_on_nats_agents_runs_the_programs_tasks(nats_url):
    url, agent = nats_url
    with wasmpool.Pool(2, module=TASKS, nats=url) as pool:
        # The worker that ran the task is the agent's, not this process's.
        worker = pool.apply(os.getpid)
        with open(f"/proc/{worker}/stat") as stat:
            assert int(stat.read().rsplit(")", 1)[1].split()[1]) == agent
        assert pool.map(tasks.square, range(20), chunksize=3) == [n * n for n in range(20)]
        assert pool.apply(tasks.greet, ("Ada",), {"greeting": "Hi"}) == "Hi, Ada!"
        assert pool.apply(tasks.echo, ((1, (2,)),)) == (1, (2,))
        with pytest.raises(ZeroDivisionError):
            pool.apply(tasks.divide, (1, 0))


def test_a_nats_url_that_answers_nothing_is_an_error_naming_it():
    port = free_port()
    with pytest.raises(wasmpool.Error, match=f"127.0.0.1:{port}"):
        wasmpool.Pool(1, module=TASKS, nats=f"nats://127.0.0.1:{port}")
