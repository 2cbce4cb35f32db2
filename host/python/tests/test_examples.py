"""The seed programs of `examples/python/`, each the seed's program but for
its import line, run as scripts: their output is the seed's, from sandboxed
workers."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


def run(name, timeout=180):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seed_001_apply_async_runs_each_call_in_a_worker_of_its_own():
    lines = run("seed_001_apply_async.py").splitlines()
    seen = [re.fullmatch(r"\((\d+)\)进程正在执行，参数为: (.*)", line) for line in lines]
    assert all(seen), lines
    assert sorted(match[2] for match in seen) == sorted(["default", "位置参数", "关键字参数"])
    pids = {int(match[1]) for match in seen}
    # Three tasks of 3 s on four workers at once: three workers, each its
    # own pid (the worker's, not the sandbox's constant).
    assert len(pids) == 3, lines


def test_seed_001_map_sums_in_workers_and_prints_in_order():
    out = run("seed_001_map.py").splitlines()
    cut = out.index("--------------")
    assert out[cut + 1:] == ["1225", "4950", "11175"]
    assert len(out[:cut]) == 50 + 100 + 150
    assert all(re.fullmatch(r"\(\d+\)进程正在执行: \d+", line) for line in out[:cut])


def test_seed_002_compares_apply_apply_async_map_and_map_async():
    out = run("seed_002_compare.py")
    descending = list(range(20, 0, -1))
    lists = [eval(line) for line in out.splitlines() if line.startswith("[")]  # noqa: S307
    apply, apply_async, mapped, map_async = lists
    assert apply == descending
    assert sorted(apply_async, reverse=True) == descending
    assert mapped == descending
    assert map_async == [descending]
    # What the workers print, a number and a space at a time, reaches the
    # host's stdout: twenty numbers in each of the four parts.
    printed = re.findall(r"^((?:\d+ )+)$", out, re.MULTILINE)
    assert [sorted(map(int, part.split())) for part in printed] == [sorted(descending)] * 4
    assert out.rstrip().endswith("end")
