"""The seed programs of `examples/python/`, each the seed's program but for
its import lines (and what its header says besides), run as scripts: their
output is the seed's, from sandboxed workers."""

import ast
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


def test_seed_003_apply_blocks_until_its_task_returns():
    assert run("seed_003_apply.py").splitlines() == [
        "(123, 345)",
        "{'a': 1, 'b': 2}",
        "in func!!!!",
        "in pool!!!",
    ]


def test_seed_003_apply_async_returns_at_once_and_calls_back():
    out = run("seed_003_apply_async.py")
    lines = ["in pool!!!", "(123, 345)", "{'a': 1, 'b': 2}", "in func!!!!", "Run !!!!"]
    # The program prints while its task does, and `print` writes a line's
    # text and its end apart: a line of the task may come between them.
    # So: each line once, and nothing else.
    assert sorted(out.count(line) for line in lines) == [1] * 5, out
    assert re.sub("|".join(map(re.escape, lines)), "", out) == "\n" * 5, out
    at = {line: out.index(line) for line in lines}
    # The program goes on at once, the task sleeps a second before its last
    # line, and the callback runs once it returned.
    assert at["in pool!!!"] < at["in func!!!!"] < at["Run !!!!"]
    assert at["(123, 345)"] < at["{'a': 1, 'b': 2}"] < at["in func!!!!"]


def printed_pids(out):
    """`n : pid` lines, as {n: pid}."""
    seen = [re.fullmatch(r"(\d+) : (\d+)", line) for line in out.splitlines()]
    assert all(seen), out
    return {int(match[1]): int(match[2]) for match in seen}


def test_seed_003_map_in_chunks_of_3_runs_each_chunk_in_one_worker():
    pids = printed_pids(run("seed_003_map_chunksize_3.py"))
    assert sorted(pids) == [1, 2, 3, 4, 5, 6, 7]
    # Items 1-3, 4-6 and 7 are the chunks: each runs in one worker. Two of
    # them may share one (a worker that started first may take two), as
    # under CPython.
    assert len({pids[1], pids[2], pids[3]}) == 1
    assert len({pids[4], pids[5], pids[6]}) == 1
    assert len(set(pids.values())) <= 3


def test_seed_003_map_in_one_chunk_of_7_runs_in_one_worker():
    pids = printed_pids(run("seed_003_map_chunksize_7.py"))
    assert sorted(pids) == [1, 2, 3, 4, 5, 6, 7]
    assert len(set(pids.values())) == 1


def results(out, pattern):
    """The printed list of results, each matching `pattern` (item, pid), as
    [(item, pid)]."""
    printed = ast.literal_eval(out.strip())
    seen = [re.fullmatch(pattern, result) for result in printed]
    assert all(seen), printed
    return [(int(match[1]), int(match[2])) for match in seen]


def test_seed_003_map_returns_the_results_as_a_list_in_order():
    items, pids = zip(*results(run("seed_003_map_results.py"), r"\((\d+):(\d+)\)"))
    assert items == (1, 2, 3, 4, 5, 6, 7)
    assert pids[0:3] == (pids[0],) * 3 and pids[3:6] == (pids[3],) * 3


def test_seed_003_map_async_gets_the_list_of_chunks_of_5():
    items, pids = zip(*results(run("seed_003_map_async.py"), r"(\d+):(\d+)"))
    assert items == (1, 2, 3, 4, 5, 6, 7)
    assert pids[0:5] == (pids[0],) * 5 and pids[5:] == (pids[5],) * 2


def test_seed_003_imap_yields_the_first_two_results():
    (first, first_pid), (second, second_pid) = [
        (int(item), int(pid))
        for item, pid in (line.split(":") for line in run("seed_003_imap.py").splitlines())
    ]
    assert (first, second) == (1, 2)
    assert first_pid == second_pid  # one chunk


def test_seed_003_starmap_unpacks_each_item_once():
    printed = ast.literal_eval(run("seed_003_starmap.py").strip())
    pid = printed[0].rpartition(":")[2]
    # Tuples print as tuples, the list inside as a list; one chunk, one worker.
    assert printed == [f"(1, 2, 3, [1, 2, 3]):{pid}", f"(4, 4, 5, 6):{pid}", f"(43, 432):{pid}"]
    assert pid.isdigit()
