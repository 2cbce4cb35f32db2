"""Shared objects a host hands to a task: `Lock`, `RLock`, `Semaphore`,
`BoundedSemaphore`, `Event`, `Queue`, `JoinableQueue`, `Connection` (a pipe's
end), and a manager's `Dict`, `List` and `Value`.

They arrive as task arguments, already of the right class; their methods are
requests to the host, which owns the object and which other tasks (and host
threads) share. The methods follow Python's `multiprocessing` (timeouts in
seconds, `block` and `timeout` as there)::

    from wasmpool_guest import task, worker_pid

    @task
    def work(lock, counts):
        with lock:
            counts.add("count", -1)
        return worker_pid()

A handle is usable only by the task it was handed to, while it runs. What the
task holds when it ends is let go of by the host: a lock is released, and its
next holder learns that its previous holder died.
"""

import queue
import struct

from . import _bindings, msgpack

__all__ = [
    "BoundedSemaphore", "Closed", "Connection", "Dict", "Event", "JoinableQueue",
    "List", "Lock", "ObjectError", "Queue", "RLock", "Refused", "Semaphore",
    "TimedOut", "Value",
]

#: The MessagePack ext type of a handle.
EXT_TYPE = 87


class ObjectError(Exception):
    """An operation on a shared object did not do what it was asked."""


class Refused(ObjectError):
    """The host refused: a handle this task was not handed, a misuse
    (releasing a lock not held, ...), an object over its limit."""


class TimedOut(ObjectError):
    """A wait ran out of time, or a non-blocking call found nothing to do."""


class Closed(ObjectError):
    """A queue closed to `put`, or a pipe whose other end is closed."""


class Empty(TimedOut, queue.Empty):
    """`Queue.get` found no item: also Python's `queue.Empty`."""


class Full(TimedOut, queue.Full):
    """`Queue.put` found no room: also Python's `queue.Full`."""


class EndOfFile(Closed, EOFError):
    """`Connection.recv` at the end of the pipe: also Python's `EOFError`."""


def _seconds_to_ms(timeout):
    if timeout is None:
        return None
    return max(0, min(int(timeout * 1000), (1 << 64) - 1))


#: Whether items keep their tuples: set (`keep_tuples`) in a program built
#: whole for the host package `wasmpool`, whose host gives tuples back as
#: tuples; a host of another language reads arrays.
_KEEP_TUPLES = False


def keep_tuples():
    """From now on, a tuple in an item (put, sent, stored) stays a tuple."""
    global _KEEP_TUPLES
    _KEEP_TUPLES = True


def _pack(value):
    return msgpack.packb(value, tuples=_KEEP_TUPLES)


class _Handle:
    """A shared object: its kind and the host's id for it."""

    __slots__ = ("_kind", "_id")

    def __init__(self, kind, ident):
        self._kind = kind
        self._id = ident

    def _ext(self):
        return EXT_TYPE, struct.pack(">BQ", self._kind, self._id)

    def __repr__(self):
        return f"<{type(self).__name__} {self._id}>"

    def __eq__(self, other):
        return isinstance(other, _Handle) and (self._kind, self._id) == (other._kind, other._id)

    def __hash__(self):
        return hash((self._kind, self._id))

    def _invoke(self, op, *args, timed_out=TimedOut, closed=Closed):
        _bindings.require()
        try:
            reply = _bindings.objects.invoke(self._id, op, msgpack.packb(list(args)))
        except _bindings.Err as err:
            why = err.value
            if isinstance(why, _bindings.objects.ObjectError_TimedOut):
                raise timed_out("timed out") from None
            if isinstance(why, _bindings.objects.ObjectError_Closed):
                raise closed(why.value) from None
            raise Refused(why.value) from None
        return msgpack.unpackb(reply)


class _Acquirable(_Handle):
    """What locks and semaphores share: `acquire`, `release`, `with`."""

    __slots__ = ("previous_holder_died",)

    def __init__(self, kind, ident):
        super().__init__(kind, ident)
        #: Whether the last `acquire` took it from a holder that died (or
        #: whose task ended) holding it: what it protects may be half-updated.
        self.previous_holder_died = False

    def acquire(self, block=True, timeout=None):
        """Takes it, waiting (at most `timeout` seconds, if given) unless
        `block` is false; whether it did."""
        state = self._invoke("acquire", bool(block), _seconds_to_ms(timeout))
        self.previous_holder_died = state == 2
        return state != 0

    def release(self):
        """Gives it back. Raises `Refused` if this task does not hold it."""
        self._invoke("release")

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class Lock(_Acquirable):
    """A lock the host owns: Python's `multiprocessing.Lock` (kind 1)."""

    __slots__ = ()


class RLock(Lock):
    """A reentrant lock (kind 2): its holder may acquire it again."""

    __slots__ = ()


class Semaphore(_Acquirable):
    """A counting semaphore the host owns (kind 3)."""

    __slots__ = ()

    def get_value(self):
        """The permits free now."""
        return self._invoke("value")


class BoundedSemaphore(Semaphore):
    """A semaphore whose permits never exceed their initial number (kind 4)."""

    __slots__ = ()


class Event(_Handle):
    """A flag the host owns: Python's `multiprocessing.Event` (kind 5)."""

    __slots__ = ()

    def set(self):
        """Sets the flag, waking every waiter."""
        self._invoke("set")

    def clear(self):
        """Clears the flag."""
        self._invoke("clear")

    def is_set(self):
        """Whether the flag is set."""
        return self._invoke("is-set")

    def wait(self, timeout=None):
        """Waits until the flag is set (at most `timeout` seconds); whether
        it is."""
        return self._invoke("wait", _seconds_to_ms(timeout))


class Queue(_Handle):
    """A queue the host owns: Python's `multiprocessing.Queue` (kind 6).
    Items are any MessagePack-able values."""

    __slots__ = ()

    def put(self, item, block=True, timeout=None):
        """Puts `item`, waiting for room (at most `timeout` seconds) unless
        `block` is false. Raises `queue.Full` if there was none, `Closed` if
        the queue is closed."""
        self._invoke("put", _pack(item), bool(block), _seconds_to_ms(timeout),
                     timed_out=Full)

    def put_nowait(self, item):
        """Puts `item` if there is room now."""
        self.put(item, False)

    def get(self, block=True, timeout=None):
        """Takes the first item, waiting for one (at most `timeout` seconds)
        unless `block` is false. Raises `queue.Empty` if none came, `Closed`
        once the queue is closed and empty."""
        item = self._invoke("get", bool(block), _seconds_to_ms(timeout), timed_out=Empty)
        return msgpack.unpackb(item)

    def get_nowait(self):
        """Takes the first item if there is one."""
        return self.get(False)

    def qsize(self):
        """How many items it holds now."""
        return self._invoke("qsize")

    def empty(self):
        """Whether it is empty now."""
        return self._invoke("empty")

    def full(self):
        """Whether a put would wait now."""
        return self._invoke("full")

    def close(self):
        """Closes the queue to puts."""
        self._invoke("close")


class JoinableQueue(Queue):
    """A queue whose consumers mark items done (kind 7)."""

    __slots__ = ()

    def task_done(self):
        """Marks one item taken with `get` as processed."""
        self._invoke("task-done")

    def join(self, timeout=None):
        """Waits until every item put was taken and marked processed (at most
        `timeout` seconds); whether it was."""
        return self._invoke("join", _seconds_to_ms(timeout))


class Connection(_Handle):
    """One end of a pipe the host owns: Python's `Connection` (kind 8)."""

    __slots__ = ()

    def send(self, obj):
        """Sends `obj` (any MessagePack-able value)."""
        self.send_bytes(_pack(obj))

    def send_bytes(self, data):
        """Sends `data` as one message."""
        self._invoke("send", bytes(data))

    def recv(self):
        """Receives the next message, waiting for one. Raises `EOFError`
        once the other end is closed and every message was read."""
        return msgpack.unpackb(self.recv_bytes())

    def recv_bytes(self):
        """Receives the next message as bytes."""
        return self._invoke("recv", closed=EndOfFile)

    def poll(self, timeout=0.0):
        """Whether a message (or end-of-file) can be received, waiting at
        most `timeout` seconds (None: without end)."""
        return self._invoke("poll", _seconds_to_ms(timeout))

    def close(self):
        """Closes this task's hold on the end."""
        self._invoke("close")


#: What `Dict.compare_and_set` expects of a key that must be absent.
ABSENT = object()


class Dict(_Handle):
    """A dict the host owns: a `Manager().dict()` (kind 9)."""

    __slots__ = ()

    def get(self, key, default=None):
        """The value of `key`, or `default`."""
        value = self._invoke("get", _pack(key))
        return default if value is None else msgpack.unpackb(value)

    def __getitem__(self, key):
        value = self._invoke("get", _pack(key))
        if value is None:
            raise KeyError(key)
        return msgpack.unpackb(value)

    def __setitem__(self, key, value):
        self._invoke("set", _pack(key), _pack(value))

    def __delitem__(self, key):
        if not self._invoke("delete", _pack(key)):
            raise KeyError(key)

    def __contains__(self, key):
        return self._invoke("get", _pack(key)) is not None

    def __iter__(self):
        return iter(self.keys())

    def pop(self, key, *default):
        """Removes `key` and returns its value; `default` if it has none,
        else `KeyError` (a read, then a delete)."""
        packed = _pack(key)
        value = self._invoke("get", packed)
        if value is None:
            if default:
                return default[0]
            raise KeyError(key)
        self._invoke("delete", packed)
        return msgpack.unpackb(value)

    def setdefault(self, key, default=None):
        """The value of `key`, set to `default` first (in one step) if it has
        none."""
        self.compare_and_set(key, ABSENT, default)
        return self.get(key, default)

    def clear(self):
        """Removes every key."""
        for key in self.keys():
            self._invoke("delete", _pack(key))

    def copy(self):
        """A plain dict of its entries now."""
        return dict(self.items())

    def __repr__(self):
        return repr(self.copy())

    def __len__(self):
        return self._invoke("len")

    def items(self):
        """Its entries now, in insertion order, as (key, value) pairs."""
        return [(msgpack.unpackb(k), msgpack.unpackb(v)) for k, v in self._invoke("items")]

    def keys(self):
        """Its keys now."""
        return [k for k, _ in self.items()]

    def values(self):
        """Its values now."""
        return [v for _, v in self.items()]

    def update(self, entries):
        """Sets every entry of `entries` (a mapping or (key, value) pairs)."""
        pairs = entries.items() if isinstance(entries, dict) else entries
        self._invoke("update", [[_pack(k), _pack(v)] for k, v in pairs])

    def add(self, key, delta):
        """Adds `delta` to the number at `key` in one step, so that no other
        task's update comes in between; the new number."""
        return self._invoke("add", _pack(key), _pack(delta))

    def compare_and_set(self, key, expected, new):
        """Sets `key` to `new` if it holds `expected` now (`ABSENT`: if it is
        absent); whether it did."""
        expected = None if expected is ABSENT else _pack(expected)
        return self._invoke("compare-and-set", _pack(key), expected, _pack(new))


class List(_Handle):
    """A list the host owns: a `Manager().list()` (kind 10)."""

    __slots__ = ()

    def append(self, item):
        """Appends `item`."""
        self._invoke("append", _pack(item))

    def __getitem__(self, index):
        return msgpack.unpackb(self._invoke("get", index))

    def __setitem__(self, index, item):
        self._invoke("set", index, _pack(item))

    def pop(self):
        """Removes and returns the last item."""
        return msgpack.unpackb(self._invoke("pop"))

    def __len__(self):
        return self._invoke("len")

    def items(self):
        """Its items now, as a Python list."""
        return [msgpack.unpackb(item) for item in self._invoke("items")]

    def extend(self, items):
        """Appends each of `items`."""
        for item in items:
            self.append(item)

    def __iter__(self):
        return iter(self.items())

    def __contains__(self, item):
        return item in self.items()

    def __repr__(self):
        return repr(self.items())


class Value(_Handle):
    """One value the host owns: Python's `Value` (kind 11)."""

    __slots__ = ()

    def get(self):
        """The value now."""
        return msgpack.unpackb(self._invoke("get"))

    def set(self, value):
        """Sets the value."""
        self._invoke("set", _pack(value))

    @property
    def value(self):
        """The value now, as Python's `Value.value`."""
        return self.get()

    @value.setter
    def value(self, value):
        self.set(value)

    def add(self, delta):
        """Adds `delta` to the number in one step; the new number."""
        return self._invoke("add", _pack(delta))

    def compare_and_set(self, expected, new):
        """Sets the value to `new` if it is `expected` now; whether it did."""
        return self._invoke("compare-and-set", _pack(expected), _pack(new))


_KINDS = {
    1: Lock, 2: RLock, 3: Semaphore, 4: BoundedSemaphore, 5: Event, 6: Queue,
    7: JoinableQueue, 8: Connection, 9: Dict, 10: List, 11: Value,
}


def _decode_handle(data):
    if len(data) != 9:
        raise msgpack.UnpackError(f"a handle holds 9 bytes, not {len(data)}")
    kind, ident = struct.unpack(">BQ", data)
    cls = _KINDS.get(kind)
    if cls is None:
        raise msgpack.UnpackError(f"a handle of unknown kind {kind}")
    return cls(kind, ident)


msgpack._ext_decoders[EXT_TYPE] = _decode_handle
msgpack._ext_encodable = (_Handle,)
