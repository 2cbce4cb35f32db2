"""Whether the standard streams can hold back what a task wrote.

The CPython inside a component writes `sys.stdout` and `sys.stderr` through
(a text layer with `write_through` over the unbuffered file): what a task
writes is out as soon as it is written, and flushing them after every task
only costs time (a seventh of a tiny task's). A task may still replace them,
or reconfigure them to buffer; then they are flushed after each task, so that
what it wrote goes out before its outcome, as its own. Imported only inside
a component."""

import io
import sys


def _writes_through(stream):
    return (
        type(stream) is io.TextIOWrapper
        and stream.write_through
        and type(stream.buffer) is io.FileIO
    )


#: The streams the component starts with, where they hold nothing back.
stdout = sys.stdout if _writes_through(sys.stdout) else None
stderr = sys.stderr if _writes_through(sys.stderr) else None


def hold_nothing():
    """Whether `sys.stdout` and `sys.stderr` hold nothing a task wrote."""
    out, err = sys.stdout, sys.stderr
    return out is stdout and out.write_through and err is stderr and err.write_through
