"""Each seed program of `examples/python/` run whole, under wasmpool and under
CPython's own `multiprocessing` (the same file with its import lines turned
back), one after the other on this machine:
`python3 host/python/benches/seeds.py`.

Prints a table (copied by hand into BENCHMARKS.md, "Python hosts"): each
program's wall time, warm (its component built and compiled by a first run
that is not counted), both ways, and their ratio. Most programs sleep more
than they compute: their times are mostly the seed's own sleeps, and the
ratio shows what a sandbox adds to them.
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"

#: The seeds' import lines, turned back to CPython's.
BACK = [
    (r"^import wasmpool as (\w+)$", r"import multiprocessing as \1"),
    (r"^from wasmpool import ", "from multiprocessing import "),
]


def as_cpython(source):
    for pattern, replacement in BACK:
        source = re.sub(pattern, replacement, source, flags=re.MULTILINE)
    left = re.search(r"^\s*(import|from) wasmpool", source, flags=re.MULTILINE)
    assert left is None, f"an import left to turn back: {left[0]!r}"
    return source


def wall(script, cwd):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=cwd, timeout=600,
    )
    took = time.perf_counter() - started
    return took, done.returncode


def main():
    programs = sorted(EXAMPLES.glob("seed_*.py"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="wasmpool-seeds-") as tmp:
        for program in programs:
            cpython = Path(tmp) / program.name
            cpython.write_text(as_cpython(program.read_text()))
            wall(program, EXAMPLES)  # builds and compiles, once
            ours, ours_rc = wall(program, EXAMPLES)
            theirs, theirs_rc = wall(cpython, tmp)
            rows.append((program.stem, ours, theirs, ours_rc, theirs_rc))
            print(f"{program.stem}: {ours:.2f} s, CPython {theirs:.2f} s", file=sys.stderr)
    print("| program | wasmpool | CPython | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs, ours_rc, theirs_rc in rows:
        note = "" if ours_rc == theirs_rc == 0 else f" (exit {ours_rc} / {theirs_rc})"
        print(f"| {name}{note} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f}× |")


if __name__ == "__main__":
    main()
