"""The shared objects, with `multiprocessing`'s names: made on the host,
handed to tasks and processes as arguments, where the guest side of
`wasmpool` (``wasmpool_guest.objects``) gives the same methods. The host
keeps each object's state; a task reaches it through its handle, and only
while it runs (a handle it was not handed is refused).

A lock (or a semaphore's permit) that a task still holds when it ends, or
whose worker dies, is released; the next holder is told."""

from . import _native

__all__ = [
    "BoundedSemaphore", "Event", "JoinableQueue", "Lock", "Manager", "Pipe", "Queue", "RLock",
    "Semaphore", "SyncManager",
]

Lock = _native.Lock
RLock = _native.RLock
Semaphore = _native.Semaphore
BoundedSemaphore = _native.BoundedSemaphore
Event = _native.Event
Queue = _native.Queue
JoinableQueue = _native.JoinableQueue


def Pipe(duplex=True):  # noqa: N802 - multiprocessing's name
    """A pipe's two ends, `(conn1, conn2)`, as `multiprocessing.Pipe`: with
    `duplex` false, `conn1` only receives and `conn2` only sends."""
    return _native.pipe(duplex)


class SyncManager:
    """Makes shared data and objects, as `multiprocessing.Manager()`: the
    host holds them (there is no server process), and tasks reach them
    through the handles they are handed. Also a context manager."""

    def start(self, initializer=None, initargs=()):
        """Accepted, as there is no server process to start."""
        if initializer is not None:
            initializer(*initargs)

    def shutdown(self):
        """Accepted: what it made lives while anything holds it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def dict(self, *args, **kwargs):  # noqa: A003 - the manager's method
        """A shared dict, holding what `dict(*args, **kwargs)` holds."""
        shared = _native.DictProxy()
        shared.update(dict(*args, **kwargs))
        return shared

    def list(self, sequence=()):  # noqa: A003 - the manager's method
        """A shared list, holding the items of `sequence`."""
        shared = _native.ListProxy()
        shared.extend(sequence)
        return shared

    def Value(self, typecode, value):  # noqa: N802 - the manager's method
        """A shared value; `typecode` is kept for its repr."""
        return _native.ValueProxy(typecode, value)

    def Lock(self):  # noqa: N802 - the manager's method
        """A shared `Lock`."""
        return Lock()

    def RLock(self):  # noqa: N802 - the manager's method
        """A shared `RLock`."""
        return RLock()

    def Semaphore(self, value=1):  # noqa: N802 - the manager's method
        """A shared `Semaphore`."""
        return Semaphore(value)

    def BoundedSemaphore(self, value=1):  # noqa: N802 - the manager's method
        """A shared `BoundedSemaphore`."""
        return BoundedSemaphore(value)

    def Event(self):  # noqa: N802 - the manager's method
        """A shared `Event`."""
        return Event()

    def Queue(self, maxsize=0):  # noqa: N802 - the manager's method
        """A shared `Queue`."""
        return Queue(maxsize)

    def JoinableQueue(self, maxsize=0):  # noqa: N802 - the manager's method
        """A shared `JoinableQueue`."""
        return JoinableQueue(maxsize)


def Manager():  # noqa: N802 - multiprocessing's name
    """A manager, started, as `multiprocessing.Manager()`."""
    return SyncManager()
