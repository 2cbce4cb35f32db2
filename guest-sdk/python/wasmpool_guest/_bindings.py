"""The component's imports, as componentize-py generates them.

They exist only inside a component built by `python -m wasmpool_guest build`;
imported anywhere else (a test of the task functions on plain CPython), the
module loads and every call of the host says where it works.
"""

try:
    from componentize_py_types import Err, Ok
    from wit_world.imports import context, host, objects, outcomes, types
except ImportError:  # plain CPython, outside a component
    Err = Ok = context = host = objects = outcomes = types = None


def require():
    """Raises `RuntimeError` unless this runs inside a component."""
    if context is None:
        raise RuntimeError(
            "wasmpool_guest talks to the host only inside a task module built by "
            "`python -m wasmpool_guest build` and run by a wasmpool pool"
        )
