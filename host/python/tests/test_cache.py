"""What the package keeps in its cache: the components of programs, built
once and kept by content, the least recently used evicted past a limit (each
edit of a program builds another of about 20 MB)."""

import os
import time

import wasmpool
from wasmpool import _components

from conftest import run_script


def component(directory, name, size, age, now):
    """A component file `name` of `size` bytes (sparse), last used `age`
    seconds before `now`."""
    path = directory / name
    with open(path, "wb") as file:
        file.truncate(size)
    os.utime(path, (now - age, now - age))
    return path


def test_eviction_removes_the_least_recently_used_past_the_limit(tmp_path):
    now = time.time()
    kept = component(tmp_path, "new-1.wasm", 400, 0, now)
    recent = component(tmp_path, "recent-2.wasm", 400, 30, now)
    older = component(tmp_path, "older-3.wasm", 400, 3600, now)
    oldest = component(tmp_path, "oldest-4.wasm", 400, 7200, now)
    building = component(tmp_path, ".other-5.wasm.123", 400, 10, now)
    abandoned = component(tmp_path, ".other-6.wasm.456", 400, 7200, now)
    _components.evict(tmp_path, keep=kept, limit=1000, now=now)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (kept, recent, building)
    )
    # Past any limit, the component just built and one in use stay.
    assert not older.exists() and not oldest.exists() and not abandoned.exists()
    _components.evict(tmp_path, keep=kept, limit=0, now=now)
    assert kept.exists() and recent.exists()
    # Within the limit, nothing goes.
    again = component(tmp_path, "again-7.wasm", 100, 7200, now)
    _components.evict(tmp_path, keep=kept, limit=10_000, now=now)
    assert again.exists()


def test_building_a_program_evicts_what_was_built_long_ago(tmp_path):
    cache = tmp_path / "cache"
    components = cache / "wasmpool" / "components"
    components.mkdir(parents=True)
    now = time.time()
    # Two programs built a day ago, over the limit together.
    half = _components.COMPONENTS_LIMIT // 2 + 1
    older = component(components, "older-1.wasm", half, 2 * 86400, now)
    old = component(components, "old-2.wasm", half, 86400, now)
    done = run_script(
        """
        import wasmpool

        def square(x):
            return x * x

        if __name__ == "__main__":
            with wasmpool.Pool(1) as pool:
                print(pool.apply(square, (7,)))
        """,
        tmp_path,
        cache=cache,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "49\n"
    built = [p for p in components.iterdir() if p.name.startswith("program-")]
    assert len(built) == 1
    # The new one and the more recent old one fit; the oldest went.
    assert old.exists() and not older.exists()


def test_a_module_file_written_anew_is_compiled_anew(tmp_path):
    # Two components with a task `which` of different answers.
    built = []
    for answer in (1, 2):
        source = tmp_path / f"answer{answer}.py"
        source.write_text(f"def which():\n    return {answer}\n")
        built.append(_components.component_of(source))
    module = tmp_path / "tasks.wasm"
    answers = []
    for component in built:
        # Written in place, the same path: a pool of it (started from the
        # compiled module kept for the path) must not run what was compiled
        # of the file before.
        module.write_bytes(component.read_bytes())
        with wasmpool.Pool(1, module=module) as pool:
            answers.append(pool.apply("which"))
    assert answers == [1, 2]


def test_finding_a_built_component_marks_it_used_and_leaves_it_unchanged(tmp_path):
    source = tmp_path / "used.py"
    source.write_text("def one():\n    return 1\n")
    built = _components.component_of(source)
    os.utime(built, ns=(0, built.stat().st_mtime_ns))
    changed = built.stat().st_mtime_ns
    assert _components.component_of(source) == built
    # Its time of access says it was used (eviction goes by it); its time of
    # change, by which a program keeps what it compiled of it, stays.
    assert built.stat().st_atime_ns > 0
    assert built.stat().st_mtime_ns == changed
