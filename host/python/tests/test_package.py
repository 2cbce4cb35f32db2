"""What the installed package carries: its own copy of the Python guest SDK
(the one of this repository), and componentize-py as a dependency, so that
`pip install host/python` alone runs a program's functions in the sandbox."""

import importlib.metadata
import importlib.util
from pathlib import Path

import wasmpool
from wasmpool._guest_sdk.wasmpool_guest import build

#: The guest SDK the package carries.
SDK = Path(wasmpool.__file__).resolve().parent / "_guest_sdk" / "wasmpool_guest"
#: This repository's guest SDK.
SOURCE = Path(__file__).resolve().parents[3] / "guest-sdk" / "python" / "wasmpool_guest"


def sources(root):
    """The SDK's files under `root`, by relative path: its text."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_package_carries_this_repositorys_guest_sdk_whole():
    carried = sources(SDK)
    assert "build.py" in carried and "wit/wasmpool.wit" in carried
    assert carried == sources(SOURCE)


def test_the_package_requires_the_componentize_py_its_guest_sdk_builds_with():
    assert build.COMPONENTIZE_PY in importlib.metadata.requires("wasmpool")
    assert importlib.util.find_spec("componentize_py") is not None


def test_the_guest_side_has_every_name_of_the_host_package(monkeypatch):
    # As in a component, where the SDK is `wasmpool_guest`.
    monkeypatch.syspath_prepend(str(SDK.parent))
    shim = SDK / "shim" / "wasmpool" / "__init__.py"
    spec = importlib.util.spec_from_file_location("wasmpool_shim", shim)
    guest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guest)
    assert set(wasmpool.__all__) <= set(guest.__all__)
    assert all(hasattr(guest, name) for name in guest.__all__)
