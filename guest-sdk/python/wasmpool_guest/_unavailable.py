"""Stand-ins for what a program's component cannot have: a module the
sandbox cannot load, or a value whose top-level statement failed there.

The program's host side has the real thing; inside the component, the name
is bound to an `Unavailable`, so that the build goes on and a task that
uses the name fails with an error saying what it is and why it is missing,
rather than a bare `NameError`.
"""


class Unavailable:
    """A name the component could not give a value: calling it, reading an
    attribute or an item of it, iterating it, testing it, or computing with
    it raises the error it was made with (an `ImportError` for a module, a
    `NameError` for another value). Its `repr` says what it stands for.

    Attributes spelt as special names (``__wrapped__``, ``__path__``) are
    `AttributeError`s instead, so that code asking whether an object has one
    (`hasattr`, `inspect`, `copy`) gets the usual answer."""

    __slots__ = ("_error", "_message", "_name")

    def __init__(self, error, message, name):
        object.__setattr__(self, "_error", error)
        object.__setattr__(self, "_message", message)
        object.__setattr__(self, "_name", name)

    def _refuse(self, *args, **kwargs):
        raise self._error(self._message, name=self._name)

    def __getattr__(self, attribute):
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)
        self._refuse()

    def __repr__(self):
        return f"<{self._name}: unavailable in the sandbox>"

    __setattr__ = __delattr__ = __call__ = __mro_entries__ = _refuse
    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = __contains__ = _refuse
    __bool__ = __index__ = __int__ = __float__ = __enter__ = __exit__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __neg__ = __pos__ = __abs__ = __invert__ = _refuse
    __add__ = __sub__ = __mul__ = __truediv__ = __floordiv__ = __mod__ = __pow__ = _refuse
    __radd__ = __rsub__ = __rmul__ = __rtruediv__ = __rfloordiv__ = __rmod__ = __rpow__ = _refuse
    __matmul__ = __rmatmul__ = __and__ = __or__ = __xor__ = __rand__ = __ror__ = __rxor__ = _refuse
