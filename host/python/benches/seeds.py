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


#: Seconds a program may take before it is taken to hang (the longest seed
#: sleeps 30 s); CPython's `pipe_eof` under fork never ends.
HANG = 120


def wall(script, cwd):
    """The wall time of running `script`, and its exit status (None if it
    hung and was killed)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, cwd=cwd,
            timeout=HANG,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, None
    return time.perf_counter() - started, done.returncode


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
            print(f"{program.stem}: {ours:.2f} s ({ours_rc}), CPython {theirs:.2f} s ({theirs_rc})",
                  file=sys.stderr)
    print("| program | wasmpool | CPython | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs, ours_rc, theirs_rc in rows:
        if None in (ours_rc, theirs_rc):
            shown = [f"hangs (killed at {HANG} s)" if rc is None else f"{took:.2f} s"
                     for took, rc in ((ours, ours_rc), (theirs, theirs_rc))]
            print(f"| {name} | {shown[0]} | {shown[1]} | — |")
            continue
        note = "" if ours_rc == theirs_rc == 0 else f" (exit {ours_rc} / {theirs_rc})"
        print(f"| {name}{note} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f}× |")


if __name__ == "__main__":
    main()
